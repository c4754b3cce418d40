"""`python manage.py issue_api_key APPID [--name NAME]`: prints a new API key for the account, alone on stdout.

The key is shown this once (only its hash is stored), so stdout carries nothing else and can be piped
straight into a secret store; anything for people goes to stderr.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.models import Tenant, TenantAPIKey, TenantStatus
from tenants.services import api_key_issue

_NAME_MAX = TenantAPIKey._meta.get_field("name").max_length or 50


class Command(BaseCommand):
    help = "Issue an API key for an authorized account and print it (shown once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("appid", help="The account's AppID (authorizer_appid).")
        parser.add_argument("--name", default="Command line", help=f"A label for the key (at most {_NAME_MAX}).")

    def handle(self, *args: Any, **options: Any) -> None:
        appid: str = options["appid"].strip()
        name: str = options["name"].strip()
        if not name or len(name) > _NAME_MAX:
            raise CommandError(f"--name must be 1 to {_NAME_MAX} characters.")
        tenant = Tenant.objects.filter(authorizer_appid=appid).first()
        if tenant is None:
            raise CommandError(f"No authorized account has AppID {appid!r}.")
        if tenant.status != TenantStatus.ACTIVE:
            self.stderr.write(
                f"Note: account {appid} is {tenant.status}; the key reads its profile and history, "
                "but draft-count requests are refused until it authorizes again."
            )
        key, raw = api_key_issue(tenant=tenant, name=name)
        self.stdout.write(raw)
        self.stderr.write(f"Issued key {key.prefix}… ({name!r}) for {appid}. It will not be shown again.")
