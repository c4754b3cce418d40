"""`python manage.py add_component --appid A --secret S --token T --aes-key K [--name N] [--inactive]`: adds a
third-party platform (switched off with --inactive), or updates the credentials of one added before.

The default platform (WECHAT_COMPONENT_*) is refused: its credentials come from the settings. The values are
checked as WeChat will check them (wxplatform.component.validation); the output names the platform, never a
secret. The secrets are arguments, so they land in the shell history: clear it, or type them from a file
(`--secret "$(cat secret.txt)"`).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from wxplatform.component.models import Platform
from wxplatform.component.services import component_add
from wxplatform.component.validation import (
    validate_aes_key,
    validate_appsecret,
    validate_component_appid,
    validate_not_default,
    validate_token,
)


class Command(BaseCommand):
    help = "Add a third-party platform (or update one added before): its AppID, AppSecret, token and EncodingAESKey."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--appid", required=True, help="The platform's component AppID (wx…).")
        parser.add_argument("--secret", required=True, help="Its AppSecret.")
        parser.add_argument("--token", required=True, help="Its message verification token.")
        parser.add_argument("--aes-key", required=True, help="Its EncodingAESKey (43 characters).")
        parser.add_argument("--name", default="", help="A name for staff (kept when omitted on an update).")
        parser.add_argument(
            "--inactive",
            action="store_true",
            help=_(
                "Create the platform switched off (or switch an existing one off): it receives pushes but refreshes "
                "and syncs nothing until it is switched on in the console."
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        appid = options["appid"].strip()
        checks = [
            (appid, (validate_component_appid, validate_not_default)),
            (options["secret"], (validate_appsecret,)),
            (options["token"], (validate_token,)),
            (options["aes_key"], (validate_aes_key,)),
        ]
        errors: list[str] = []
        for value, validators in checks:
            for validator in validators:
                try:
                    validator(value)
                except ValidationError as exc:
                    errors.extend(exc.messages)
                    break
        if len(options["name"]) > Platform._meta.get_field("name").max_length:  # type: ignore[operator]
            errors.append(_("The name must be at most 100 characters."))
        if errors:
            raise CommandError("\n".join(errors))
        existed = Platform.objects.filter(component_appid=appid).exists()
        component = component_add(
            appid=appid,
            secret=options["secret"],
            token=options["token"],
            aes_key=options["aes_key"],
            name=options["name"].strip(),
            active=False if options["inactive"] else None,
        )
        if existed:
            message = _("Updated platform %(platform)s: AppSecret, token and EncodingAESKey replaced.")
        else:
            message = _("Added platform %(platform)s.")
        self.stdout.write(message % {"platform": component})
        if not component.active:
            self.stdout.write(_("It is switched off: switch it on in the console to refresh and sync."))
