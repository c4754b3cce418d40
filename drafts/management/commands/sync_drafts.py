"""`python manage.py sync_drafts --all | --tenant APPID [APPID ...]`: sync draft counts in the foreground.

The same services as the beat and the merchant API, so the same rules apply (quota budget, minimum interval,
pauses, coalescing with a sync already running). A progress bar goes to stderr, the summary to stdout.
Unknown AppIDs stop the command before anything is synced, with a non-zero exit code.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _
from tqdm import tqdm

from drafts.models import SkipReason, SyncTrigger
from drafts.rules import SyncReport
from drafts.services import draft_count_chunk_sync, draft_count_run_start, draft_count_sync_tenant
from tenants.models import Tenant
from tenants.selectors import syncable_tenants
from wxplatform.core.progress import CommandStream
from wxplatform.core.summary import failure_rows, summary_table


class Command(BaseCommand):
    help = "Sync draft counts now: of every eligible account, or of the given AppIDs."

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--all", action="store_true", help="Every eligible, active account.")
        which.add_argument("--tenant", nargs="+", metavar="APPID", help="These accounts (authorizer AppIDs).")
        parser.add_argument(
            "--component",
            default="",
            metavar="COMPONENT_APPID",
            help="With --tenant: only the accounts' authorizations of this platform (default: of every platform).",
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar on stderr.")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.monotonic()
        if options["all"]:
            report = self._sync_all(progress=not options["no_progress"])
        else:
            report = self._sync_tenants(
                options["tenant"], component=options["component"], progress=not options["no_progress"]
            )
        self.stdout.write(_format_summary(report, seconds=time.monotonic() - started))

    def _sync_all(self, *, progress: bool) -> SyncReport:
        report = SyncReport()
        start = draft_count_run_start(trigger=SyncTrigger.CLI, enqueue_chunks=False)
        total = syncable_tenants().count()
        with tqdm(total=total, unit="account", file=CommandStream(self.stderr), disable=not progress) as bar:
            for chunk_id in start.run.chunks.order_by("index").values_list("pk", flat=True):
                chunk_report = draft_count_chunk_sync(chunk_id=chunk_id, chain=False)
                if chunk_report is not None:
                    report.extend(chunk_report)
                    bar.update(len(chunk_report.results))
        return report

    def _sync_tenants(self, appids: list[str], *, component: str, progress: bool) -> SyncReport:
        """Each named account on every platform it authorized (an account may have authorized two), or on
        `component` only."""
        wanted = list(dict.fromkeys(a.strip() for a in appids))
        matching = Tenant.objects.filter(authorizer_appid__in=wanted).order_by("authorizer_appid", "component_id")
        if component:
            matching = matching.filter(component__component_appid=component)
        tenants = list(matching)
        found = {t.authorizer_appid for t in tenants}
        unknown = [appid for appid in wanted if appid not in found]
        if unknown:
            raise CommandError(_("Unknown AppID: %(appids)s. Nothing was synced.") % {"appids": ", ".join(unknown)})
        report = SyncReport()
        for tenant in tqdm(tenants, unit="account", file=CommandStream(self.stderr), disable=not progress):
            report.results.append(draft_count_sync_tenant(tenant=tenant, trigger=SyncTrigger.CLI))
        return report


def _format_summary(report: SyncReport, *, seconds: float) -> str:
    labels = dict(SkipReason.choices)
    heading = _("%(count)s accounts in %(seconds).1f s") % {"count": len(report.results), "seconds": seconds}
    return summary_table(
        heading,
        [
            (_("synced (changed)"), report.changed),
            (_("unchanged"), report.unchanged),
            (_("skipped"), sum(report.skipped.values())),
            *((f"  {labels.get(reason, reason)}", n) for reason, n in sorted(report.skipped.items())),
            (_("failed"), sum(report.failed.values())),
            *failure_rows(report.failed),
        ],
    )
