"""The platform status page of the admin: what an operator checks first when syncs go wrong.

Everything here is read-only and must render even when a dependency is down: a Redis outage shows
"unavailable" for the queue depth, it never turns the page into an error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Max, Q, Sum
from django.db.models.functions import TruncHour
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from drafts.models import AttemptOutcome, SyncAttempt
from drafts.quota import others_over_share_list
from drafts.rules import quota_day
from tenants.models import PushLog, PushOutcome
from tenants.selectors import merchant_tenants
from wxplatform.component.services import component_list, component_status
from wxplatform.core import degradation
from wxplatform.core.charts import bar_chart_svg
from wxplatform.core.egress import base_in_use, refusals
from wxplatform.core.errcodes import errcode_label
from wxplatform.core.redis_client import redis_client

logger = logging.getLogger(__name__)

# kombu's Redis transport keeps a queue with priorities in up to four lists: the queue's own name for
# priority 0, and "<queue>\x06\x16<step>" for the other steps (kombu.transport.redis, priority_steps).
_KOMBU_PRIORITY_SEP = "\x06\x16"
_KOMBU_PRIORITY_STEPS = (3, 6, 9)
ERRORS_WINDOW = timedelta(hours=24)
TOP_QUOTA_TENANTS = 10


@dataclass(frozen=True)
class QueueDepth:
    queue: str
    # None when unknown; `state` says why ("n/a" without Redis, "unavailable" when Redis does not answer).
    depth: int | None
    state: str


def celery_queue_names() -> list[str]:
    """The default queue and every queue named in the task routes."""
    names = {settings.CELERY_TASK_DEFAULT_QUEUE}
    routes = getattr(settings, "CELERY_TASK_ROUTES", None) or {}
    if isinstance(routes, dict):
        names.update(r["queue"] for r in routes.values() if isinstance(r, dict) and r.get("queue"))
    return sorted(names)


def queue_depths() -> list[QueueDepth]:
    """Messages waiting in each Celery queue (LLEN in Redis, under the broker's global_keyprefix)."""
    queues = celery_queue_names()
    if not settings.REDIS_URL:
        # The filesystem broker keeps one file per message; counting them is not worth a directory scan.
        return [QueueDepth(q, None, "n/a") for q in queues]
    prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", "")
    client = redis_client()
    try:
        pipe = client.pipeline(transaction=False)
        for queue in queues:
            for key in [queue, *(f"{queue}{_KOMBU_PRIORITY_SEP}{step}" for step in _KOMBU_PRIORITY_STEPS)]:
                pipe.llen(f"{prefix}{key}")
        lengths = pipe.execute()
    except (redis.RedisError, OSError) as exc:
        logger.warning("queue depth unavailable: %s", type(exc).__name__)
        return [QueueDepth(q, None, "unavailable") for q in queues]
    per_queue = 1 + len(_KOMBU_PRIORITY_STEPS)
    return [QueueDepth(q, int(sum(lengths[i * per_queue : (i + 1) * per_queue])), "ok") for i, q in enumerate(queues)]


def errors_by_errcode(*, since: datetime) -> list[tuple[int | None, int]]:
    """(errcode, attempts) of failed sync attempts since `since`, most frequent first."""
    rows = (
        SyncAttempt.objects.filter(at__gte=since)
        .filter(Q(outcome=AttemptOutcome.FAILED) | Q(errcode__isnull=False))
        .values("errcode")
        .annotate(n=Count("id"))
        .order_by("-n", "errcode")
    )
    return [(row["errcode"], row["n"]) for row in rows]


PUSH_WINDOW = timedelta(hours=24)
# Kinds in the "last push of each kind" table: WeChat's InfoTypes and MsgTypes are few, a forger's are not.
LAST_PUSH_KINDS = 30


def pushes_per_hour(*, since: datetime) -> list[tuple[datetime, int, int]]:
    """(hour, pushes, refused) for each hour since `since` that had pushes, newest first."""
    rows = (
        PushLog.objects.filter(received_at__gte=since)
        .annotate(hour=TruncHour("received_at"))
        .values("hour")
        .annotate(n=Count("id"), refused=Count("id", filter=Q(outcome=PushOutcome.REJECTED)))
        .order_by("-hour")
    )
    return [(row["hour"], row["n"], row["refused"]) for row in rows]


def last_push_of_each_kind() -> list[PushLog]:
    """The newest accepted push of each (URL, kind)."""
    latest = (
        PushLog.objects.exclude(outcome=PushOutcome.REJECTED)
        .values("endpoint", "kind")
        .annotate(last=Max("id"))
        .order_by("endpoint", "kind")
        .values_list("last", flat=True)[:LAST_PUSH_KINDS]
    )
    return list(PushLog.objects.filter(pk__in=list(latest)).order_by("endpoint", "kind"))


# What the kinds of push mean (InfoType for the authorization event URL; MsgType or event:<Event> for the
# message URL), so that staff read words rather than WeChat's codes; the code stays in brackets.
PUSH_KINDS = {
    "component_verify_ticket": gettext_lazy("verify ticket"),
    "authorized": gettext_lazy("authorization"),
    "updateauthorized": gettext_lazy("authorization updated"),
    "unauthorized": gettext_lazy("authorization revoked"),
    "notify_third_fasteregister": gettext_lazy("fast registration"),
    "text": gettext_lazy("text message"),
    "image": gettext_lazy("image message"),
    "voice": gettext_lazy("voice message"),
    "event": gettext_lazy("event"),
}


def push_kind_label(kind: str) -> str:
    """'authorization (authorized)'; an event is named by its Event; an unknown kind is shown as it is."""
    if not kind:
        return "—"
    if kind.startswith("event:"):
        return f"{PUSH_KINDS['event']} ({kind.split(':', 1)[1]})"
    label = PUSH_KINDS.get(kind)
    return f"{label} ({kind})" if label is not None else kind


def platforms_status() -> list[dict[str, object]]:
    """component_status() of every platform, switched-off ones included, the default first, with what the page
    shows in words (the problem's errcode with its meaning, the last push's kind)."""
    rows = []
    platforms = component_list()
    degraded = degradation.states(platform.pk for platform in platforms)
    for platform in platforms:
        status = component_status(platform)
        status["degraded"] = degraded.get(platform.pk)
        code = status["problem_code"]
        status["problem_code_label"] = errcode_label(code) if isinstance(code, int) else ""
        status["last_push_kind"] = push_kind_label(str(status["last_push_info_type"] or ""))
        status["label"] = str(platform)
        rows.append(status)
    return rows


def platform_status(request: HttpRequest) -> HttpResponse:
    """GET /admin/status/: for every staff user who may look at tenants (support included)."""
    if not request.user.has_perm("tenants.view_tenant"):
        raise PermissionDenied
    now = timezone.now()
    day = quota_day(now)
    quota = merchant_tenants().filter(quota_day=day).aggregate(used=Sum("quota_used"), accounts=Count("id"))
    top_quota = list(
        merchant_tenants()
        .filter(quota_day=day, quota_used__gt=0)
        .order_by("-quota_used", "id")
        .values_list("nickname", "authorizer_appid", "quota_used")[:TOP_QUOTA_TENANTS]
    )
    errors = errors_by_errcode(since=now - ERRORS_WINDOW)
    context = {
        **admin.site.each_context(request),
        "title": _("Platform status"),
        "platforms": platforms_status(),
        "whitelist_refusals": refusals(),
        "wechat_base": base_in_use(settings.WECHAT_API_BASE),
        "wechat_primary_base": settings.WECHAT_API_BASE.rstrip("/"),
        "wechat_fallback_bases": settings.WECHAT_API_FALLBACK_BASES,
        "queues": queue_depths(),
        "quota_day": day,
        "quota_used": quota["used"] or 0,
        "quota_accounts": quota["accounts"],
        "quota_limit": settings.DRAFT_QUOTA_DAILY_LIMIT,
        # Accounts whose quota others (other third parties, the merchant's own tools) used over the set share today.
        "others_over_share": others_over_share_list(now=now)[:TOP_QUOTA_TENANTS],
        "others_share": settings.DRAFT_QUOTA_OTHERS_ALERT_SHARE,
        "quota_bars": bar_chart_svg(
            [(nickname or appid, used) for nickname, appid, used in top_quota],
            label=_("draft/count calls today, by account"),
        ),
        "errors": [(code, errcode_label(code), n) for code, n in errors],
        "errors_total": sum(n for _code, n in errors),
        "errors_bars": bar_chart_svg(
            [(errcode_label(code), n) for code, n in errors],
            label=_("Sync errors by errcode, last 24 hours"),
        ),
        "pushes_per_hour": pushes_per_hour(since=now - PUSH_WINDOW),
        "last_pushes": [(push, push_kind_label(push.kind)) for push in last_push_of_each_kind()],
        "now": now,
    }
    return TemplateResponse(request, "admin/console/platform_status.html", context)
