"""`python manage.py issue_service_key NAME [--component APPID]`: prints a new service key, alone on stdout.

The key is shown this once (only its hash is stored), so stdout carries nothing else and can be piped straight
into a secret store; anything for people goes to stderr. Without --component the key may fetch the tokens of
every platform.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from wxplatform.authority.models import ServiceKey
from wxplatform.authority.services import InvalidPathPattern, service_key_issue
from wxplatform.component.models import Platform
from wxplatform.component.services import ComponentUnknown, component_get

_NAME_MAX = ServiceKey._meta.get_field("name").max_length or 50


class Command(BaseCommand):
    help = "Issue a key for one of the provider's services to fetch tokens from the token authority (shown once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help=f"Which service the key is for (at most {_NAME_MAX} characters).")
        parser.add_argument("--component", default="", help="Scope the key to this platform (component appid).")
        parser.add_argument(
            "--allow",
            action="append",
            default=[],
            metavar="PATTERN",
            help="A WeChat path the key may call through the gateway, such as /cgi-bin/draft/* (repeatable).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name: str = options["name"].strip()
        appid: str = options["component"].strip()
        if not name or len(name) > _NAME_MAX:
            raise CommandError(_("NAME must be 1 to %(max)s characters.") % {"max": _NAME_MAX})
        component: Platform | None = None
        if appid:
            try:
                component = component_get(appid)
            except ComponentUnknown:
                raise CommandError(_("No platform with component AppID %(appid)s.") % {"appid": appid}) from None
        try:
            key, raw = service_key_issue(name=name, component=component, allowed_paths=options["allow"])
        except InvalidPathPattern as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(raw)
        scope = _("platform %(appid)s") % {"appid": appid} if appid else _("every platform")
        self.stderr.write(
            _("Issued service key %(prefix)s… (%(name)s) for %(scope)s. It will not be shown again.")
            % {"prefix": key.prefix, "name": name, "scope": scope}
        )
