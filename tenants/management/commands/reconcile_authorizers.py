"""`python manage.py reconcile_authorizers`: reconcile the tenants with WeChat's authorizer list now.

The same service as the daily beat entry (tenants.reconcile). A progress bar goes to stderr, the summary table
to stdout. A page of the list that cannot be read stops that platform's pass (pages read before it stay written
and nothing is revoked); the other platforms are reconciled all the same, and the command then exits non-zero
naming the platforms that failed. An account whose reading cannot be stored is left out, counted and logged.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _
from tqdm import tqdm

from tenants.reconcile import ReconcileReport, authorizers_reconcile
from wxplatform.component.models import Platform
from wxplatform.component.services import ComponentNotReady, ComponentUnknown, active_components, component_get
from wxplatform.core.errcodes import errcode_label
from wxplatform.core.progress import CommandStream
from wxplatform.core.summary import failure_rows, summary_table
from wxplatform.wechat.errors import TransportError, WeChatError


class Command(BaseCommand):
    help = "Reconcile merchant accounts with WeChat's authorizer list: add, revoke, replace refresh tokens, re-read."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-progress", action="store_true", help="No progress bar on stderr.")
        parser.add_argument("--no-quota", action="store_true", help="Do not read each account's quota.")
        parser.add_argument("--concurrency", type=int, default=None, help="Calls in flight (RECONCILE_CONCURRENCY).")
        parser.add_argument(
            "--component", default="", help="Only this platform's component AppID (default: every active platform)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["component"]:
            try:
                components = [component_get(options["component"])]
            except ComponentUnknown:
                raise CommandError(
                    _("No platform with component AppID %(appid)s.") % {"appid": options["component"]}
                ) from None
        else:
            components = list(active_components())
        failed: list[str] = []
        for component in components:
            if len(components) > 1:
                self.stdout.write(str(component))
            try:
                self._reconcile(component, options)
            except CommandError as exc:
                if len(components) == 1:
                    raise
                # One platform that cannot be reconciled now must not keep the others from it.
                self.stderr.write(f"{component.component_appid}: {exc}")
                failed.append(component.component_appid)
        if failed:
            raise CommandError(
                _("Reconciliation failed for %(count)s platform(s): %(appids)s.")
                % {"count": len(failed), "appids": ", ".join(failed)}
            )

    def _reconcile(self, component: Platform, options: dict[str, Any]) -> None:
        started = time.monotonic()
        bar = tqdm(unit="account", file=CommandStream(self.stderr), disable=options["no_progress"])

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            report = authorizers_reconcile(
                component, concurrency=options["concurrency"], read_quota=not options["no_quota"], on_progress=progress
            )
        except ComponentNotReady as exc:
            raise CommandError(_("The platform cannot obtain its token: %(reason)s") % {"reason": exc.reason}) from None
        except TransportError as exc:
            # No answer from WeChat is not WeChat's refusal: the network (a DNS failure, a refused connection, a
            # timeout) or WECHAT_API_BASE is the thing to check.
            raise CommandError(
                _(
                    "WeChat could not be reached at %(base)s (%(reason)s): a network failure, not a refusal; "
                    "nothing was revoked."
                )
                % {"base": settings.WECHAT_API_BASE, "reason": exc.errmsg}
            ) from None
        except WeChatError as exc:
            raise CommandError(
                _("WeChat refused a page of the authorizer list (errcode %(code)s); nothing was revoked.")
                % {"code": errcode_label(exc.errcode)}
            ) from None
        finally:
            bar.close()
        self.stdout.write(format_summary(report, seconds=time.monotonic() - started))


def format_summary(report: ReconcileReport, *, seconds: float) -> str:
    heading = _("%(count)s accounts listed by WeChat in %(seconds).1f s") % {
        "count": report.listed,
        "seconds": seconds,
    }
    table = summary_table(
        heading,
        [
            (_("added"), report.added),
            (_("revoked"), report.revoked),
            (_("refresh tokens replaced"), report.tokens_replaced),
            (_("profiles changed"), report.profiles_changed),
            (_("unchanged"), report.unchanged),
            (_("failed"), sum(report.failed.values())),
            *failure_rows(report.failed),
            (_("quotas read"), report.quotas_read),
            (_("not stored (see the log)"), len(report.not_stored)),
        ],
    )
    lines = [table]
    if report.not_stored:
        shown = ", ".join(report.not_stored[:_NOT_STORED_SHOWN])
        more = "…" if len(report.not_stored) > _NOT_STORED_SHOWN else ""
        lines.append(_("Not stored: %(appids)s") % {"appids": shown + more})
    return "\n".join(lines)


# AppIDs named under the table; the log names every one.
_NOT_STORED_SHOWN = 20
