"""The console's landing page (/admin/): the platform's state at a glance, the pictures staff would rather look
at than read, and the entry points, above Django's app list.

Read-only and cheap: a handful of aggregate queries on indexed columns. Like the status page, it renders when
a dependency is down (the broker is not asked at all here).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.contrib import admin
from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from drafts.models import AttemptOutcome, SkipReason, SyncAttempt, SyncRun, SyncTrigger
from drafts.rules import quota_day
from tenants.models import Eligibility, Tenant, TenantStatus
from tenants.selectors import failing_tenants
from wxplatform.component.services import component_list, component_readiness, component_status
from wxplatform.core.charts import bar_chart_svg
from wxplatform.core.errcodes import errcode_label

HISTORY_DAYS = 7
# The home's bar charts, drawn for a column of a grid (the page scales each to its box).
CHART_WIDTH = 420


def _accounts_chart() -> Any:
    """One bar per status; active accounts are split by eligibility (an inactive one's eligibility is moot)."""
    rows = Tenant.objects.values("status", "eligibility").annotate(n=Count("id")).order_by("status", "eligibility")
    bars: dict[str, int] = {}
    for row in rows:
        label = str(TenantStatus(row["status"]).label)
        if row["status"] == TenantStatus.ACTIVE:
            label = f"{label} · {Eligibility(row['eligibility']).label}"
        bars[label] = bars.get(label, 0) + row["n"]
    return bar_chart_svg(list(bars.items()), label=_("Accounts by status and eligibility"), width=CHART_WIDTH)


def _platforms() -> dict[str, Any]:
    """A line per platform and how many of the active ones can call WeChat (as /readyz judges it)."""
    rows = []
    for platform in component_list():
        status = component_status(platform)
        ready = bool(status["active"]) and component_readiness(platform) is None
        if not status["active"]:
            state = _("switched off")
        elif ready:
            state = _("ready")
        elif status["problem_code"] is not None:
            state = errcode_label(status["problem_code"])  # type: ignore[arg-type]
        elif not status["has_ticket"]:
            state = _("no ticket yet")
        else:
            state = str(status["problem"])
        rows.append(
            {
                "label": platform.name or platform.component_appid,
                "title": str(platform),
                "state": state,
                "ready": ready,
                "active": status["active"],
            }
        )
    active = sum(1 for row in rows if row["active"])
    return {"rows": rows, "active": active, "ready": sum(1 for row in rows if row["ready"]), "off": len(rows) - active}


@dataclass
class DayCounts:
    synced: int = 0
    skipped: int = 0
    failed: int = 0


# Outcomes of an account that was not called on purpose (drafts.rules: skipped, or answered from storage).
NOT_CALLED = (AttemptOutcome.SKIPPED, AttemptOutcome.CACHED)


def _history_days(now: datetime) -> list[date]:
    today = timezone.localdate(now)
    return [today - timedelta(days=n) for n in range(HISTORY_DAYS - 1, -1, -1)]


def syncs_by_day(now: datetime) -> dict[date, DayCounts]:
    """What the syncs of the last HISTORY_DAYS days did, per local day, whatever started them.

    Every sync is counted once, from the one record its path keeps of it (drafts.sync._write): a scheduled
    run's results are only its SyncRun's counters (a routine success writes no attempt), every other sync (the
    command line, "Sync now", the merchant API, the first sync after an authorization, WeChat's events) writes a
    SyncAttempt of its own, even inside a command-line run. So: scheduled runs' counters plus the attempts of
    every other trigger. (Counting runs alone missed `make run`'s start-up sync, which is no run.)
    """
    days = _history_days(now)
    counts = {day: DayCounts() for day in days}
    zone = timezone.get_current_timezone()
    since = datetime.combine(days[0], time.min, tzinfo=zone)
    runs = (
        SyncRun.objects.filter(trigger=SyncTrigger.SCHEDULE, started_at__gte=since)
        .annotate(day=TruncDate("started_at", tzinfo=zone))
        .values("day")
        .annotate(changed=Sum("changed"), unchanged=Sum("unchanged"), failed=Sum("failed"), skipped=Sum("skipped"))
    )
    # A day outside the window (a row stamped by a host whose clock runs ahead, just after midnight) is left out.
    for row in runs:
        day = counts.get(row["day"])
        if day is None:
            continue
        day.synced += (row["changed"] or 0) + (row["unchanged"] or 0)
        day.skipped += row["skipped"] or 0
        day.failed += row["failed"] or 0
    attempts = (
        SyncAttempt.objects.filter(at__gte=since)
        .exclude(trigger=SyncTrigger.SCHEDULE)
        .annotate(day=TruncDate("at", tzinfo=zone))
        .values("day", "outcome")
        .annotate(n=Count("id"))
    )
    for row in attempts:
        day = counts.get(row["day"])
        if day is None:
            continue
        if row["outcome"] in (AttemptOutcome.CHANGED, AttemptOutcome.UNCHANGED):
            day.synced += row["n"]
        elif row["outcome"] in NOT_CALLED:
            day.skipped += row["n"]
        else:
            day.failed += row["n"]
    return counts


def _skip_reasons_chart(now: datetime) -> Any:
    """Accounts not called on purpose in the last HISTORY_DAYS days, by reason in words: every such sync, scheduled
    or not, writes an attempt with its reason (drafts.sync._write)."""
    since = datetime.combine(_history_days(now)[0], time.min, tzinfo=timezone.get_current_timezone())
    rows = (
        SyncAttempt.objects.filter(at__gte=since, outcome__in=NOT_CALLED)
        .values("skip_reason")
        .annotate(n=Count("id"))
        .order_by("-n", "skip_reason")
    )
    labels = dict(SkipReason.choices)
    return bar_chart_svg(
        [(str(labels.get(row["skip_reason"], _("no reason recorded"))), row["n"]) for row in rows],
        label=_("Accounts not called on purpose, by reason, last %(days)d days") % {"days": HISTORY_DAYS},
        width=CHART_WIDTH,
    )


def last_sync(now: datetime, today: DayCounts) -> dict[str, Any] | None:
    """The latest sync of any kind: a run (scheduled or from the command line) or a sync of one account, with
    what today's syncs did so far."""
    run = SyncRun.objects.order_by("-started_at").first()
    attempt = SyncAttempt.objects.exclude(trigger=SyncTrigger.SCHEDULE).order_by("-at").first()
    if run is None and attempt is None:
        return None
    if run is not None and (attempt is None or run.started_at >= attempt.at):
        at, trigger, running = run.started_at, run.get_trigger_display(), run.finished_at is None
    else:
        assert attempt is not None
        at, trigger, running = attempt.at, attempt.get_trigger_display(), False
    return {"at": at, "trigger": trigger, "running": running, "today": today}


def console_home(request: HttpRequest) -> HttpResponse:
    """/admin/: Django's index with the dashboard as extra context (staff login required by admin_view)."""
    now = timezone.now()
    context: dict[str, Any] = {}
    if request.user.has_perm("tenants.view_tenant"):
        days = syncs_by_day(now)
        quota = Tenant.objects.filter(quota_day=quota_day(now)).aggregate(used=Sum("quota_used"))
        label = {day: date_format(day, "DATE_FORMAT") for day in days}
        context["dashboard"] = {
            "platforms": _platforms(),
            "accounts": Tenant.objects.count(),
            "failing": failing_tenants().count(),
            "quota_used": quota["used"] or 0,
            "last_sync": last_sync(now, days[timezone.localdate(now)]),
            "accounts_chart": _accounts_chart(),
            "syncs_chart": bar_chart_svg(
                [(label[day], counts.synced) for day, counts in days.items()],
                label=_("Accounts synced per day, last %(days)d days") % {"days": HISTORY_DAYS},
                width=CHART_WIDTH,
            ),
            "errors_chart": bar_chart_svg(
                [(label[day], counts.failed) for day, counts in days.items()],
                label=_("Failed syncs per day, last %(days)d days") % {"days": HISTORY_DAYS},
                width=CHART_WIDTH,
            ),
            "skipped_chart": _skip_reasons_chart(now),
            "days": HISTORY_DAYS,
        }
    return admin.site.index(request, extra_context=context)
