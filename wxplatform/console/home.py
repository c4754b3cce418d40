"""The console's landing page (/admin/): the platform's state at a glance, the pictures staff would rather look
at than read, and the entry points, above Django's app list.

Read-only and cheap: a handful of aggregate queries on indexed columns. Like the status page, it renders when
a dependency is down (the broker is not asked at all here).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.contrib import admin
from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _

from drafts.models import SyncRun
from drafts.rules import quota_day
from tenants.models import Eligibility, Tenant, TenantStatus
from tenants.selectors import failing_tenants
from wxplatform.component.services import component_list, component_readiness, component_status
from wxplatform.core.charts import bar_chart_svg
from wxplatform.core.errcodes import errcode_label

HISTORY_DAYS = 7


def _accounts_chart() -> Any:
    """One bar per status; active accounts are split by eligibility (an inactive one's eligibility is moot)."""
    rows = Tenant.objects.values("status", "eligibility").annotate(n=Count("id")).order_by("status", "eligibility")
    bars: dict[str, int] = {}
    for row in rows:
        label = str(TenantStatus(row["status"]).label)
        if row["status"] == TenantStatus.ACTIVE:
            label = f"{label} · {Eligibility(row['eligibility']).label}"
        bars[label] = bars.get(label, 0) + row["n"]
    return bar_chart_svg(list(bars.items()), label=_("Accounts by status and eligibility"))


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


def _runs_by_day(now: datetime) -> list[dict[str, Any]]:
    since = now - timedelta(days=HISTORY_DAYS)
    rows = (
        SyncRun.objects.filter(started_at__gte=since)
        .annotate(day=TruncDate("started_at", tzinfo=timezone.get_current_timezone()))
        .values("day")
        .annotate(changed=Sum("changed"), unchanged=Sum("unchanged"), failed=Sum("failed"), skipped=Sum("skipped"))
        .order_by("day")
    )
    return list(rows)


def console_home(request: HttpRequest) -> HttpResponse:
    """/admin/: Django's index with the dashboard as extra context (staff login required by admin_view)."""
    now = timezone.now()
    context: dict[str, Any] = {}
    if request.user.has_perm("tenants.view_tenant"):
        runs = _runs_by_day(now)
        last_run = SyncRun.objects.order_by("-started_at").first()
        quota = Tenant.objects.filter(quota_day=quota_day(now)).aggregate(used=Sum("quota_used"))
        context["dashboard"] = {
            "platforms": _platforms(),
            "accounts": Tenant.objects.count(),
            "failing": failing_tenants().count(),
            "quota_used": quota["used"] or 0,
            "last_run": last_run,
            "accounts_chart": _accounts_chart(),
            "syncs_chart": bar_chart_svg(
                [(f"{row['day']:%m-%d}", (row["changed"] or 0) + (row["unchanged"] or 0)) for row in runs],
                label=_("Accounts synced per day, last %(days)d days") % {"days": HISTORY_DAYS},
            ),
            "errors_chart": bar_chart_svg(
                [(f"{row['day']:%m-%d}", row["failed"] or 0) for row in runs],
                label=_("Failed syncs per day, last %(days)d days") % {"days": HISTORY_DAYS},
            ),
            "days": HISTORY_DAYS,
        }
    return admin.site.index(request, extra_context=context)
