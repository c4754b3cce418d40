"""Prometheus metrics, served at /metrics.

Two kinds of series, because web and Celery run as many processes (gunicorn workers, prefork children):

- Events (WeChat calls, syncs, token refreshes, lock waits, task durations) are counters and histograms in
  prometheus_client's multiprocess mode: every process writes its own small mmap file under
  PROMETHEUS_MULTIPROC_DIR and a scrape sums them all. Web and workers on one host must share that directory;
  empty it when the whole stack (re)starts (files of dead processes are kept so that totals do not drop).
- States (ticket age, token expiry, tenants by status, quota used, stale counts, open jobs) are read from the
  database at scrape time by `DatabaseCollector`. The database is the source of truth for all of them, so the
  numbers are exact whichever process answers the scrape, and no process has to keep a gauge up to date.

Access: METRICS_TOKEN (bearer) and/or METRICS_ALLOWED_NETWORKS (CIDRs); with neither, /metrics exists only
with DEBUG on. Emitting a metric never raises into the work it measures.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import re
import socket
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

# prometheus_client picks its value storage when a metric is created, from this variable: it must be set
# before the metrics below exist. It is read from settings so that .env and the environment agree.
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(settings.PROMETHEUS_MULTIPROC_DIR)
Path(settings.PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)
if not os.access(settings.PROMETHEUS_MULTIPROC_DIR, os.W_OK):
    raise ImproperlyConfigured(f"PROMETHEUS_MULTIPROC_DIR {settings.PROMETHEUS_MULTIPROC_DIR} is not writable")

from prometheus_client import (  # noqa: E402 - after the variable above, on purpose
    CollectorRegistry,
    Counter,
    Histogram,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric  # noqa: E402
from prometheus_client.exposition import choose_encoder  # noqa: E402
from prometheus_client.registry import Collector  # noqa: E402

# Files are named after the process. Containers sharing the directory (web, worker) each have their own pid 1,
# 7, ..., so the host name (a container's id) is part of the name.
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:64] or "host"


def _process_identifier() -> str:
    return f"{_HOST}-{os.getpid()}"


values.ValueClass = values.MultiProcessValue(process_identifier=_process_identifier)  # type: ignore[no-untyped-call]

logger = logging.getLogger(__name__)

P = ParamSpec("P")

# --- Event series (multiprocess) ---------------------------------------------------------------------

WECHAT_CALLS = Counter(
    "wxp_wechat_calls_total",
    "Calls to WeChat by endpoint and outcome: errcode 0 is a success; non-numeric values are transport "
    "failures (timeout, connection, http_5xx, malformed, broken_response).",
    ["endpoint", "errcode"],
)
WECHAT_CALL_SECONDS = Histogram(
    "wxp_wechat_call_duration_seconds",
    "Duration of calls to WeChat.",
    ["endpoint"],
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
TOKEN_REFRESHES = Counter(
    "wxp_token_refreshes_total",
    "Token refresh calls to WeChat (component: api_component_token; authorizer: api_authorizer_token) by errcode.",
    ["token", "errcode"],
)
DRAFT_SYNCS = Counter(
    "wxp_draft_syncs_total",
    "Draft-count syncs of one tenant, by trigger and result (changed, unchanged, cached, skipped, failed).",
    ["trigger", "result"],
)
LOCK_WAIT_SECONDS = Histogram(
    "wxp_lock_wait_seconds",
    "Time spent waiting for a row lock (tenant_token, component_token).",
    ["lock"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0),
)
RATE_LIMIT_WAIT_SECONDS = Histogram(
    "wxp_draft_rate_limit_wait_seconds",
    "Time a draft/count batch waited for the platform-wide rate limit.",
    buckets=(0.0, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0),
)
TASK_SECONDS = Histogram(
    "wxp_task_duration_seconds",
    "Run time of Celery tasks by name and final state (SUCCESS, FAILURE, RETRY).",
    ["task", "state"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0),
)
SYNC_JOB_WAIT_SECONDS = Histogram(
    "wxp_draft_sync_job_wait_seconds",
    "Time from an on-demand sync request to a worker starting it (queue latency).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0),
)

_TOKEN_ENDPOINTS = {
    "/cgi-bin/component/api_component_token": "component",
    "/cgi-bin/component/api_authorizer_token": "authorizer",
}


def _never_raises(emit: Callable[P, None]) -> Callable[P, None]:
    """Metrics are written to files; a full disk or a removed directory must not fail a sync."""

    @wraps(emit)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            emit(*args, **kwargs)
        except (OSError, ValueError) as exc:
            logger.warning("metric not recorded: %s", type(exc).__name__)

    return guarded


@_never_raises
def observe_wechat_call(endpoint: str, errcode: str, seconds: float) -> None:
    """The WeChat client's and the fan-out's `on_call` observer (wxplatform.wechat.client.CallObserver)."""
    WECHAT_CALLS.labels(endpoint, errcode).inc()
    WECHAT_CALL_SECONDS.labels(endpoint).observe(seconds)
    token = _TOKEN_ENDPOINTS.get(endpoint)
    if token is not None:
        TOKEN_REFRESHES.labels(token, errcode).inc()


@_never_raises
def record_sync_results(trigger: str, outcomes: Iterable[str]) -> None:
    """One batch's results (drafts.sync.TenantResult.outcome for each tenant)."""
    for outcome, count in Tally(str(o) for o in outcomes).items():
        DRAFT_SYNCS.labels(str(trigger), outcome).inc(count)


@_never_raises
def observe_rate_limit_wait(seconds: float) -> None:
    RATE_LIMIT_WAIT_SECONDS.observe(seconds)


@_never_raises
def observe_job_wait(seconds: float) -> None:
    SYNC_JOB_WAIT_SECONDS.observe(max(0.0, seconds))


@_never_raises
def _observe_lock_wait(lock: str, seconds: float) -> None:
    LOCK_WAIT_SECONDS.labels(lock).observe(seconds)


@contextmanager
def lock_wait(lock: str) -> Iterator[None]:
    """Wrap the statement that takes a lock (SELECT … FOR UPDATE): its duration is the wait."""
    started = time.perf_counter()
    try:
        yield
    finally:
        _observe_lock_wait(lock, time.perf_counter() - started)


# --- Celery task durations ---------------------------------------------------------------------------

_task_started: dict[str, float] = {}


def _task_prerun(task_id: str | None = None, **_kwargs: Any) -> None:
    if task_id:
        _task_started[task_id] = time.perf_counter()


@_never_raises
def _task_postrun(task_id: str | None = None, task: Any = None, state: str | None = None, **_kwargs: Any) -> None:
    started = _task_started.pop(task_id or "", None)
    if started is not None and task is not None:
        TASK_SECONDS.labels(getattr(task, "name", "unknown"), state or "UNKNOWN").observe(time.perf_counter() - started)


def _connect_task_signals() -> None:
    from celery import signals

    signals.task_prerun.connect(_task_prerun, weak=False, dispatch_uid="wxp-metrics-prerun")
    signals.task_postrun.connect(_task_postrun, weak=False, dispatch_uid="wxp-metrics-postrun")


_connect_task_signals()


# --- State series (read from the database at scrape time) --------------------------------------------


class DatabaseCollector(Collector):
    """Gauges computed from the database on every scrape: a handful of aggregate queries on indexed columns."""

    def describe(self) -> list[Metric]:
        # Nothing to declare up front: registering must not query the database.
        return []

    def collect(self) -> Iterator[Metric]:
        from django.db import DatabaseError

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


def _component_families() -> Iterator[Metric]:
    from django.utils import timezone

    from wxplatform.component.models import ComponentCredential

    now = timezone.now()
    credential = ComponentCredential.objects.filter(component_appid=settings.WECHAT_COMPONENT_APPID).first()
    present = GaugeMetricFamily("wxp_component_ticket_present", "Whether a component_verify_ticket is stored.")
    present.add_metric([], 1 if credential is not None and credential.ticket_received_at else 0)
    yield present
    if credential is None:
        return
    if credential.ticket_received_at is not None:
        # WeChat pushes a ticket every 10 minutes: an old one means the pushes stopped reaching us.
        age = GaugeMetricFamily("wxp_component_ticket_age_seconds", "Seconds since the last ticket was received.")
        age.add_metric([], (now - credential.ticket_received_at).total_seconds())
        yield age
    if credential.access_token_expires_at is not None:
        expires = GaugeMetricFamily(
            "wxp_component_token_expires_in_seconds", "Seconds until the component access token expires."
        )
        expires.add_metric([], (credential.access_token_expires_at - now).total_seconds())
        yield expires
    problem = GaugeMetricFamily(
        "wxp_component_problem",
        "1 while the platform cannot obtain a component token (no ticket, 61005/61006, configuration errors).",
        labels=["errcode"],
    )
    if credential.problem:
        problem.add_metric([str(credential.problem_code) if credential.problem_code is not None else "none"], 1)
    yield problem


def _tenant_families() -> Iterator[Metric]:
    from django.db.models import Count, F, Max, Q, Sum
    from django.utils import timezone

    from drafts.models import SyncTrigger
    from drafts.sync import quota_budget, quota_day
    from tenants.models import Eligibility, Tenant, TenantStatus

    now = timezone.now()
    tenants = GaugeMetricFamily("wxp_tenants", "Tenants by status and eligibility.", labels=["status", "eligibility"])
    for row in Tenant.objects.values("status", "eligibility").annotate(n=Count("id")).order_by():
        tenants.add_metric([row["status"], row["eligibility"]], row["n"])
    yield tenants

    # A tenant's error is current when nothing succeeded after it (needs_reauth tenants: 61023).
    failing = GaugeMetricFamily(
        "wxp_tenants_failing", "Tenants whose last sync or token refresh failed, by errcode.", labels=["errcode"]
    )
    current_error = Q(last_error_at__isnull=False) & (
        Q(draft_count_fetched_at__isnull=True) | Q(last_error_at__gt=F("draft_count_fetched_at"))
    )
    rows = Tenant.objects.filter(current_error).values("last_error_code").annotate(n=Count("id")).order_by()
    for row in rows:
        code = row["last_error_code"]
        failing.add_metric([str(code) if code is not None else "transport"], row["n"])
    yield failing

    today = quota_day(now)
    quota = Tenant.objects.filter(quota_day=today).aggregate(
        used=Sum("quota_used"),
        peak=Max("quota_used"),
        scheduled_spent=Count("id", filter=Q(quota_used__gte=quota_budget(SyncTrigger.SCHEDULE))),
        on_demand_spent=Count("id", filter=Q(quota_used__gte=quota_budget(SyncTrigger.API))),
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
    paused = GaugeMetricFamily(
        "wxp_tenants_paused", "Tenants paused until their quota resets, after WeChat answered 45009."
    )
    paused.add_metric([], Tenant.objects.filter(paused_until__gt=now).count())
    yield paused

    stale_before = now - timedelta(seconds=settings.API_DRAFT_COUNT_STALE_AFTER)
    stale = GaugeMetricFamily(
        "wxp_draft_counts_stale",
        "Active, eligible tenants whose stored count is stale (older than API_DRAFT_COUNT_STALE_AFTER) or missing.",
    )
    stale.add_metric(
        [],
        Tenant.objects.filter(status=TenantStatus.ACTIVE, eligibility=Eligibility.ELIGIBLE)
        .filter(Q(draft_count_fetched_at__isnull=True) | Q(draft_count_fetched_at__lt=stale_before))
        .count(),
    )
    yield stale


def _sync_families() -> Iterator[Metric]:
    from django.db.models import Count, Max, Min
    from django.utils import timezone

    from drafts.models import JobState, SyncJob, SyncRun, SyncTrigger

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


@require_GET
@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(settings.PROMETHEUS_MULTIPROC_DIR))  # type: ignore[no-untyped-call]
    registry.register(DatabaseCollector())
    # The text format by default, OpenMetrics when the scraper asks for it.
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encode(registry), content_type=content_type)
