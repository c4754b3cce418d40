"""`python manage.py issue_api_key APPID [--name NAME] [--component COMPONENT_APPID]`: prints a new API key for
the account, alone on stdout.

The key is shown this once (only its hash is stored), so stdout carries nothing else and can be piped
straight into a secret store; anything for people goes to stderr. An account that authorized several of the
provider's platforms is one tenant per platform: `--component` says which one.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from tenants.models import Tenant, TenantAPIKey, TenantStatus
from tenants.services import api_key_issue

_NAME_MAX = TenantAPIKey._meta.get_field("name").max_length or 50


class Command(BaseCommand):
    help = "Issue an API key for an authorized account and print it (shown once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("appid", help="The account's AppID (authorizer_appid).")
        parser.add_argument("--name", default="Command line", help=f"A label for the key (at most {_NAME_MAX}).")
        parser.add_argument(
            "--component",
            default="",
            metavar="COMPONENT_APPID",
            help="The platform the account authorized, when it authorized more than one.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        appid: str = options["appid"].strip()
        name: str = options["name"].strip()
        if not name or len(name) > _NAME_MAX:
            raise CommandError(_("--name must be 1 to %(max)d characters.") % {"max": _NAME_MAX})
        tenants = Tenant.objects.filter(authorizer_appid=appid).select_related("component").order_by("pk")
        if options["component"]:
            tenants = tenants.filter(component__component_appid=options["component"])
        found = list(tenants[:10])
        if not found:
            raise CommandError(_("No authorized account has AppID '%(appid)s'.") % {"appid": appid})
        if len(found) > 1:
            platforms = ", ".join(t.component.component_appid for t in found)
            raise CommandError(
                _("AppID %(appid)s authorized several platforms (%(platforms)s): name one with --component.")
                % {"appid": appid, "platforms": platforms}
            )
        tenant = found[0]
        if tenant.status != TenantStatus.ACTIVE:
            self.stderr.write(
                _(
                    "Note: account %(appid)s is %(status)s; the key reads its profile and history, "
                    "but draft-count requests are refused until it authorizes again."
                )
                % {"appid": appid, "status": str(tenant.get_status_display()).lower()}
            )
        key, raw = api_key_issue(tenant=tenant, name=name)
        self.stdout.write(raw)
        self.stderr.write(
            _("Issued key %(prefix)s… (%(name)s) for %(appid)s. It will not be shown again.")
            % {"prefix": key.prefix, "name": name, "appid": appid}
        )
