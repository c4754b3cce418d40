"""/metrics: the Prometheus scrape endpoint, and the state series computed from the database at scrape time.

The event series (counters and histograms written by every process) are defined in wxplatform/core/metrics.py and
summed here from PROMETHEUS_MULTIPROC_DIR. The state series (ticket age, token expiry, tenants by status,
quota used, stale counts, open jobs) are read from the database by `DatabaseCollector`: the database is the
source of truth for all of them, so the numbers are exact whichever process answers the scrape, and no
process has to keep a gauge up to date.

Access: METRICS_TOKEN (bearer) and/or METRICS_ALLOWED_NETWORKS (CIDRs); with neither, /metrics exists only
with DEBUG on.
"""

from __future__ import annotations

import glob
import hmac
import ipaddress
import logging
import os
import struct
from collections.abc import Iterable, Iterator
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count, Max, Min, Q, Sum
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.registry import Collector

from drafts.models import JobState, SyncJob, SyncRun, SyncTrigger
from drafts.quota import attributions_with_others_today, others_over_share
from drafts.rules import quota_budget, quota_day
from tenants.selectors import failing_tenants, merchant_tenants, syncable_tenants
from wxplatform.component.models import Platform
from wxplatform.component.services import default_component
from wxplatform.core import degradation
from wxplatform.core.egress import refusals

logger = logging.getLogger(__name__)


class DatabaseCollector(Collector):
    """Gauges computed from the database on every scrape: a handful of aggregate queries on indexed columns."""

    def describe(self) -> list[Metric]:
        # Nothing to declare up front: registering must not query the database.
        return []

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("wxp_metrics_database_up", "Whether the database answered this scrape (1) or not (0).")
        try:
            families = list(self._families())
        except DatabaseError as exc:
            logger.warning("metrics: database unavailable: %s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self) -> Iterator[Metric]:
        yield from _component_families()
        yield from _tenant_families()
        yield from _sync_families()
        yield _whitelist_family()


def _component_families() -> Iterator[Metric]:
    """One series per platform, switched-off ones included (wxp_component_active tells them apart, so that the
    alerts can leave them out: a platform switched off neither refreshes nor is expected to)."""
    now = timezone.now()
    default_component()
    platforms = list(Platform.objects.defer("appsecret", "token", "aes_key").order_by("pk"))
    labels = ["component"]
    active = GaugeMetricFamily(
        "wxp_component_active", "1 for a platform that refreshes and syncs, 0 for one switched off.", labels=labels
    )
    present = GaugeMetricFamily(
        "wxp_component_ticket_present", "Whether a component_verify_ticket is stored.", labels=labels
    )
    # WeChat pushes a ticket every 10 minutes: an old one means the pushes stopped reaching us.
    age = GaugeMetricFamily(
        "wxp_component_ticket_age_seconds", "Seconds since the last ticket was received.", labels=labels
    )
    expires = GaugeMetricFamily(
        "wxp_component_token_expires_in_seconds", "Seconds until the component access token expires.", labels=labels
    )
    problem = GaugeMetricFamily(
        "wxp_component_problem",
        "1 while the platform cannot obtain a component token (no ticket, 61005/61006, configuration errors).",
        labels=["component", "errcode"],
    )
    degraded = GaugeMetricFamily(
        "wxp_wechat_degraded",
        "1 while WeChat (or the way to it) is judged degraded for the platform: the sync backs off and probes "
        "(wxplatform/core/degradation.py).",
        labels=labels,
    )
    degraded_now = degradation.states(credential.pk for credential in platforms)
    for credential in platforms:
        appid = [credential.component_appid]
        degraded.add_metric(appid, 1 if credential.pk in degraded_now else 0)
        active.add_metric(appid, 1 if credential.active else 0)
        present.add_metric(appid, 1 if credential.ticket_received_at else 0)
        if credential.ticket_received_at is not None:
            age.add_metric(appid, (now - credential.ticket_received_at).total_seconds())
        if credential.access_token_expires_at is not None:
            expires.add_metric(appid, (credential.access_token_expires_at - now).total_seconds())
        if credential.problem:
            code = str(credential.problem_code) if credential.problem_code is not None else "none"
            problem.add_metric([*appid, code], 1)
    yield from (active, present, age, expires, problem, degraded)


def _whitelist_family() -> Metric:
    # From the cache, not the database (wxplatform/core/egress.py); one series per refused address, at most 20.
    refused = GaugeMetricFamily(
        "wxp_whitelist_refused_last_seen_timestamp_seconds",
        "When WeChat last refused this egress IP with 61004 (not on the platform's IP whitelist); present for an "
        "hour after the last refusal. request_ip is empty when WeChat did not name it.",
        labels=["request_ip"],
    )
    for refusal in refusals():
        refused.add_metric([refusal.request_ip], refusal.last_seen.timestamp())
    return refused


def _tenant_families() -> Iterator[Metric]:
    now = timezone.now()
    # WeChat's release-test accounts are not merchants: no tenant series counts them.
    tenants = GaugeMetricFamily(
        "wxp_tenants",
        "Tenants by platform (component appid), status and eligibility.",
        labels=["component", "status", "eligibility"],
    )
    rows = merchant_tenants().values("component__component_appid", "status", "eligibility").annotate(n=Count("id"))
    for row in rows.order_by():
        tenants.add_metric([row["component__component_appid"], row["status"], row["eligibility"]], row["n"])
    yield tenants

    # A tenant's error is current when nothing succeeded after it (needs_reauth tenants: 61023).
    failing = GaugeMetricFamily(
        "wxp_tenants_failing", "Tenants whose last sync or token refresh failed, by errcode.", labels=["errcode"]
    )
    rows = failing_tenants().filter(is_test_account=False).values("last_error_code").annotate(n=Count("id")).order_by()
    for row in rows:
        code = row["last_error_code"]
        failing.add_metric([str(code) if code is not None else "transport"], row["n"])
    yield failing

    today = quota_day(now)
    quota = (
        merchant_tenants()
        .filter(quota_day=today)
        .aggregate(
            used=Sum("quota_used"),
            peak=Max("quota_used"),
            scheduled_spent=Count("id", filter=Q(quota_used__gte=quota_budget(SyncTrigger.SCHEDULE))),
            on_demand_spent=Count("id", filter=Q(quota_used__gte=quota_budget(SyncTrigger.API))),
        )
    )
    used = GaugeMetricFamily("wxp_draft_quota_calls_today", "draft/count calls made today, all tenants together.")
    used.add_metric([], quota["used"] or 0)
    yield used
    peak = GaugeMetricFamily(
        "wxp_draft_quota_used_ratio_max", "The highest share of the daily draft/count quota any tenant used today."
    )
    peak.add_metric([], (quota["peak"] or 0) / max(1, settings.DRAFT_QUOTA_DAILY_LIMIT))
    yield peak
    spent = GaugeMetricFamily(
        "wxp_tenants_quota_budget_spent",
        "Tenants that spent today's quota budget of the scheduler or of on-demand syncs.",
        labels=["budget"],
    )
    spent.add_metric(["schedule"], quota["scheduled_spent"])
    spent.add_metric(["on_demand"], quota["on_demand_spent"])
    yield spent
    # Who else spends the accounts' quota: bounded families, no label per account.
    others = attributions_with_others_today(now=now).values()
    shares = [a.others_share for a in others if a.others_share is not None]
    others_max = GaugeMetricFamily(
        "wxp_draft_quota_used_by_others_ratio_max",
        "The highest share of an account's daily draft/count limit that others (other third parties, the merchant's "
        "own tools) used today, at the last reading.",
    )
    others_max.add_metric([], max(shares, default=0.0))
    yield others_max
    over = GaugeMetricFamily(
        "wxp_draft_quota_others_over_share",
        "Accounts whose daily draft/count quota others used over DRAFT_QUOTA_OTHERS_ALERT_SHARE today.",
    )
    over.add_metric([], sum(1 for a in others if others_over_share(a)))
    yield over
    paused = GaugeMetricFamily(
        "wxp_tenants_paused", "Tenants paused until their quota resets, after WeChat answered 45009."
    )
    paused.add_metric([], merchant_tenants().filter(paused_until__gt=now).count())
    yield paused

    stale_before = now - timedelta(seconds=settings.API_DRAFT_COUNT_STALE_AFTER)
    stale = GaugeMetricFamily(
        "wxp_draft_counts_stale",
        "Active, eligible tenants whose stored count is stale (older than API_DRAFT_COUNT_STALE_AFTER) or missing.",
    )
    stale.add_metric(
        [],
        syncable_tenants()
        .filter(Q(draft_count_fetched_at__isnull=True) | Q(draft_count_fetched_at__lt=stale_before))
        .count(),
    )
    yield stale


def _sync_families() -> Iterator[Metric]:
    now = timezone.now()
    jobs = GaugeMetricFamily("wxp_draft_sync_jobs_open", "On-demand sync jobs not finished yet.", labels=["state"])
    oldest = GaugeMetricFamily(
        "wxp_draft_sync_job_oldest_open_seconds", "Age of the oldest unfinished on-demand sync job."
    )
    open_jobs = {
        row["state"]: row
        for row in SyncJob.objects.filter(state__in=[JobState.PENDING, JobState.RUNNING])
        .values("state")
        .annotate(n=Count("id"), since=Min("requested_at"))
        .order_by()
    }
    for state in (JobState.PENDING, JobState.RUNNING):
        jobs.add_metric([state.value], open_jobs[state]["n"] if state in open_jobs else 0)
    starts = [row["since"] for row in open_jobs.values() if row["since"] is not None]
    oldest.add_metric([], (now - min(starts)).total_seconds() if starts else 0)
    yield jobs
    yield oldest

    finished = SyncRun.objects.filter(trigger=SyncTrigger.SCHEDULE, finished_at__isnull=False).aggregate(
        last=Max("finished_at")
    )["last"]
    if finished is not None:
        last = GaugeMetricFamily(
            "wxp_draft_sync_last_run_finished_timestamp_seconds", "When the last scheduled sync run finished."
        )
        last.add_metric([], finished.timestamp())
        yield last


# --- /metrics ----------------------------------------------------------------------------------------


def _client_address(request: HttpRequest) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    # REMOTE_ADDR only: X-Forwarded-For is whatever the client says unless a proxy rewrote it.
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return None


def _bearer_token(request: HttpRequest) -> str:
    scheme, _space, credentials = request.headers.get("Authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


def _refusal(request: HttpRequest) -> HttpResponse | None:
    """None when the request may read the metrics; otherwise the answer. Every configured check must pass."""
    token: str = settings.METRICS_TOKEN
    networks: list[str] = settings.METRICS_ALLOWED_NETWORKS
    if not token and not networks:
        # Unprotected metrics are for development only: in production the URL does not exist.
        if settings.DEBUG:
            return None
        raise Http404
    if networks:
        address = _client_address(request)
        if address is None or not any(address in ipaddress.ip_network(n, strict=False) for n in networks):
            raise Http404
    if token and not hmac.compare_digest(_bearer_token(request).encode(), token.encode()):
        response = HttpResponse("bearer token required\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return None


class ProcessFilesCollector(multiprocess.MultiProcessCollector):
    """prometheus_client's merge of every process's metric files (PROMETHEUS_MULTIPROC_DIR), less the files it
    cannot read. A file is empty for the moment between its process creating it and sizing it, and stays empty
    if the process is killed in that moment; a disk error can cut one short. prometheus_client then fails the
    whole scrape (struct.error), so one such file would turn every scrape into a 500 until it is removed. It is
    left out instead, named in a warning, and the scrape answers with the rest: an empty file holds no count yet,
    and what a cut-short one held cannot be read either way."""

    def collect(self) -> Iterable[Metric]:
        files = sorted(glob.glob(os.path.join(self._path, "*.db")))
        try:
            merged: Iterable[Metric] = self.merge(files, accumulate=True)  # type: ignore[no-untyped-call]
        except (struct.error, RuntimeError, ValueError, OSError):
            readable = [path for path in files if _readable_metrics_file(path)]
            merged = self.merge(readable, accumulate=True)  # type: ignore[no-untyped-call]
        return merged


def _readable_metrics_file(path: str) -> bool:
    try:
        MmapedDict.read_all_values_from_file(path)  # type: ignore[no-untyped-call]
    except FileNotFoundError:
        return False  # removed meanwhile
    except (struct.error, RuntimeError, ValueError, OSError) as exc:
        logger.warning(
            "metrics file left out of the scrape: unreadable",
            extra={"file": os.path.basename(path), "error": type(exc).__name__},
        )
        return False
    return True


@require_GET
@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    registry = CollectorRegistry()
    ProcessFilesCollector(registry, path=str(settings.PROMETHEUS_MULTIPROC_DIR))  # type: ignore[no-untyped-call]
    registry.register(DatabaseCollector())
    # The text format by default, OpenMetrics when the scraper asks for it.
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encode(registry), content_type=content_type)
