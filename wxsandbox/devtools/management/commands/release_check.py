"""`python manage.py release_check`: WeChat's full-release test (全网发布), played by the sandbox against a
running service, with WeChat's result table (docs/wechat/message-url.md#test-steps).

The sandbox pushes a ticket, authorizes one of WeChat's test accounts (an `authorized` push no merchant
started), sends the three message cases to the message-and-event URL, and revokes the authorization again;
the service answers as it would answer WeChat. However the test ends, WeChat's test account is then deleted
from the service's database (which the command shares: var/dev.env under `make run`), so that the merchant
list stays as it was. Exit status 1 when a step failed, 2 when the sandbox could not run the test at all.
Against `make run` it needs no option.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tenants.services import tenant_test_accounts_delete
from wxplatform.component.services import default_component
from wxsandbox.control import SandboxControl, SandboxControlError

_RESULT_STYLE = {"pass": "SUCCESS", "fail": "ERROR", "skipped": "WARNING"}
_RESULT_WORDS = {"pass": gettext_lazy("pass"), "fail": gettext_lazy("fail"), "skipped": gettext_lazy("skipped")}
# The sandbox's fixed explanations of a passed step (wxsandbox/release.py), in the terminal's language; a failure's
# explanation quotes what the service answered and is printed as it is.
_DETAILS = {
    "answered success": gettext_lazy("answered success"),
    "passive reply received": gettext_lazy("passive reply received"),
    "customer-service message received": gettext_lazy("customer-service message received"),
    "api_query_auth called with the pushed code": gettext_lazy("api_query_auth called with the pushed code"),
    "the platform created one through api_create_preauthcode": gettext_lazy(
        "the platform created one through api_create_preauthcode"
    ),
    "the platform has created none lately; the test created its own": gettext_lazy(
        "the platform has created none lately; the test created its own"
    ),
    "message_url is not set": gettext_lazy("message_url is not set"),
}


class Command(BaseCommand):
    help = "Run WeChat's full-release test through the sandbox against a running service and print its table."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--sandbox", default=None, help="the sandbox's base URL (default: WECHAT_API_BASE)")
        parser.add_argument("--service", default=None, help="the service's public base URL (default: PUBLIC_BASE_URL)")
        parser.add_argument("--group", type=int, default=None, help="test group 0-4 (default: WeChat's random pick)")
        parser.add_argument(
            "--window", type=float, default=None, help="seconds the test waits for the service's own calls"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        sandbox = (options["sandbox"] or settings.WECHAT_API_BASE).rstrip("/")
        service = (options["service"] or settings.PUBLIC_BASE_URL).rstrip("/")
        control = SandboxControl(sandbox)
        try:
            control.set_event_url(f"{service}/wechat/component/events")
            control.set_message_url(f"{service}/wechat/authorizers/$APPID$/events")
            result = control.release_test(group=options["group"], window=options["window"])
        except (SandboxControlError, OSError) as exc:
            raise CommandError(
                _("The sandbox at %(url)s could not run the test: %(error)s") % {"url": sandbox, "error": exc},
                returncode=2,
            ) from None
        finally:
            # WeChat's test account is nobody's merchant: however the test ended (passed, failed, interrupted),
            # what it left in the service's database goes, so that the merchant list stays as it was.
            tenant_test_accounts_delete(component=default_component())
        self._print(result)
        if not result["passed"]:
            raise CommandError(_("The full-release test failed."), returncode=1)

    def _print(self, result: dict[str, Any]) -> None:
        rows = result["rows"]
        self.stdout.write(
            _("Full-release test, group %(group)s: %(appid)s (%(user_name)s), %(ms)s ms")
            % {
                "group": result["group"],
                "appid": result["authorizer_appid"],
                "user_name": result["user_name"],
                "ms": result["duration_ms"],
            }
        )
        headers = (_("step"), _("result"), _("why"))
        cells = [
            (f"{row['step']} · {row['name']}", str(_RESULT_WORDS.get(row["result"], row["result"])), row)
            for row in rows
        ]
        widths = [max(len(headers[i]), *(len(cell[i]) for cell in cells)) for i in range(2)]
        self.stdout.write(f"{headers[0]:<{widths[0]}}  {headers[1]:<{widths[1]}}  {headers[2]}")
        for step, outcome, row in cells:
            style = getattr(self.style, _RESULT_STYLE.get(row["result"], "NOTICE"))
            why = str(_DETAILS.get(row["detail"], row["detail"]))
            self.stdout.write(f"{step:<{widths[0]}}  {style(f'{outcome:<{widths[1]}}')}  {why}")
        self.stdout.write(self.style.SUCCESS(_("PASSED")) if result["passed"] else self.style.ERROR(_("FAILED")))
