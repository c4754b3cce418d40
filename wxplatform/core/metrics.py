"""Prometheus event series: the emitters every layer calls (WeChat calls, syncs, token refreshes, lock
waits, task durations).

Web and Celery run as many processes (gunicorn workers, prefork children), so these counters and
histograms use prometheus_client's multiprocess mode: every process writes its own small mmap file under
PROMETHEUS_MULTIPROC_DIR, and a scrape of /metrics (wxplatform/console/metrics.py, which also computes the
state series from the database) sums them all. Web and workers on one host must share that directory;
empty it when the whole stack (re)starts (files of dead processes are kept so that totals do not drop).

`setup()` prepares the directory, chooses the multiprocess value storage and connects the Celery task
signals. It runs from WxPlatformConfig.ready() in every process that loads Django (web, worker, beat,
management commands), never at import. Emitting a metric never raises into the work it measures.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec

from celery import signals
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from prometheus_client import Counter, Histogram, values

logger = logging.getLogger(__name__)

P = ParamSpec("P")

# Files are named after the process. Containers sharing the directory (web, worker) each have their own pid 1,
# 7, ..., so the host name (a container's id) is part of the name.
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:64] or "host"


def _process_identifier() -> str:
    return f"{_HOST}-{os.getpid()}"


class _Series:
    """The event series of this process. Created by setup(), after the multiprocess value storage is chosen:
    prometheus_client picks a metric's storage when the metric (or a labelled child) is created."""

    def __init__(self) -> None:
        self.wechat_calls = Counter(
            "wxp_wechat_calls_total",
            "Calls to WeChat by endpoint and outcome: errcode 0 is a success; non-numeric values are transport "
            "failures (timeout, connection, http_5xx, malformed, broken_response).",
            ["endpoint", "errcode"],
        )
        self.wechat_call_seconds = Histogram(
            "wxp_wechat_call_duration_seconds",
            "Duration of calls to WeChat.",
            ["endpoint"],
            buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
        )
        self.token_refreshes = Counter(
            "wxp_token_refreshes_total",
            "Token refresh calls to WeChat (component: api_component_token; authorizer: api_authorizer_token) "
            "by errcode.",
            ["token", "errcode"],
        )
        self.draft_syncs = Counter(
            "wxp_draft_syncs_total",
            "Draft-count syncs of one tenant, by trigger and result (changed, unchanged, cached, skipped, failed).",
            ["trigger", "result"],
        )
        self.lock_wait_seconds = Histogram(
            "wxp_lock_wait_seconds",
            "Time spent waiting for a row lock (tenant_token, component_token).",
            ["lock"],
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0),
        )
        self.rate_limit_wait_seconds = Histogram(
            "wxp_draft_rate_limit_wait_seconds",
            "Time a draft/count batch waited for the platform-wide rate limit.",
            buckets=(0.0, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0),
        )
        self.task_seconds = Histogram(
            "wxp_task_duration_seconds",
            "Run time of Celery tasks by name and final state (SUCCESS, FAILURE, RETRY).",
            ["task", "state"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0),
        )
        self.pushes = Counter(
            "wxp_pushes_total",
            "Pushes received from WeChat by platform (component appid), URL (component: the authorization event "
            "URL; authorizer: the "
            "message-and-event URL), kind (InfoType, MsgType or Event; 'unverified' before the signature "
            "verifies) and outcome (ok, bad_signature, undecryptable, rejected, unavailable: answered 503 because the "
            "database is unreachable, error).",
            ["component", "url", "kind", "outcome"],
        )
        self.push_log_dropped = Counter(
            "wxp_push_log_dropped_total",
            "Pushes answered but not written to the push log, by reason (budget: a refused push beyond "
            "PUSH_LOG_REJECTED_PER_MINUTE; database: the database refused the row or was unreachable).",
            ["reason"],
        )
        self.push_seconds = Histogram(
            "wxp_push_duration_seconds",
            "Time to answer a push from WeChat (WeChat waits 5 seconds).",
            ["url"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0),
        )
        self.sync_job_wait_seconds = Histogram(
            "wxp_draft_sync_job_wait_seconds",
            "Time from an on-demand sync request to a worker starting it (queue latency).",
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0),
        )
        self.token_handouts = Counter(
            "wxp_token_handouts_total",
            "Token requests of the provider's other services to the token authority, by token kind (component, "
            "authorizer), component appid ('unknown' when it names no platform here) and outcome (issued, "
            "not_found, forbidden, unavailable, throttled).",
            ["kind", "component", "outcome"],
        )
        self.gateway_calls = Counter(
            "wxp_gateway_calls_total",
            "Calls of the provider's other services to WeChat through the gateway, by service key (its prefix), "
            "component appid ('unknown' when it names no platform here), the key's path pattern that allowed "
            "the call ('refused' when none did) and outcome ('0', WeChat's errcode, 'http_<status>', "
            "'transport', or the gateway's refusal code).",
            ["key", "component", "pattern", "outcome"],
        )


_series: _Series | None = None
_setup_lock = threading.Lock()


def setup() -> None:
    """Prepares this process for multiprocess metrics; idempotent. Fails start-up with a clear message when
    PROMETHEUS_MULTIPROC_DIR cannot be written."""
    global _series
    with _setup_lock:
        if _series is not None:
            return
        directory = Path(settings.PROMETHEUS_MULTIPROC_DIR)
        directory.mkdir(parents=True, exist_ok=True)
        if not os.access(directory, os.W_OK):
            raise ImproperlyConfigured(f"PROMETHEUS_MULTIPROC_DIR {directory} is not writable")
        # The scrape (MultiProcessCollector) reads the directory it is given; the variable is for any other
        # prometheus_client code in this process that looks for it.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
        values.ValueClass = values.MultiProcessValue(process_identifier=_process_identifier)  # type: ignore[no-untyped-call]
        _series = _Series()
        _connect_task_signals()


def _get() -> _Series:
    if _series is None:
        setup()
    assert _series is not None
    return _series


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
        except (OSError, ValueError, ImproperlyConfigured) as exc:
            logger.warning("metric not recorded: %s", type(exc).__name__)

    return guarded


@_never_raises
def observe_wechat_call(endpoint: str, errcode: str, seconds: float) -> None:
    """The WeChat client's and the fan-out's `on_call` observer (wxplatform.wechat.client.CallObserver)."""
    series = _get()
    series.wechat_calls.labels(endpoint, errcode).inc()
    series.wechat_call_seconds.labels(endpoint).observe(seconds)
    token = _TOKEN_ENDPOINTS.get(endpoint)
    if token is not None:
        series.token_refreshes.labels(token, errcode).inc()


@_never_raises
def record_sync_results(trigger: str, outcomes: Iterable[str]) -> None:
    """One batch's results (drafts.rules.TenantResult.outcome for each tenant)."""
    series = _get()
    for outcome, count in Tally(str(o) for o in outcomes).items():
        series.draft_syncs.labels(str(trigger), outcome).inc(count)


# Push labels are bounded here: a push's kind is known only once its signature verified, and an outcome
# outside this set is counted as "error", so no request can create series at will.
PUSH_URLS = frozenset({"component", "authorizer"})
PUSH_OUTCOMES = frozenset({"ok", "bad_signature", "undecryptable", "rejected", "unavailable", "error"})
PUSH_UNVERIFIED = "unverified"
_PUSH_KIND = re.compile(r"[A-Za-z0-9_]{1,40}")


@_never_raises
def record_push(url: str, *, component: str, kind: str | None, outcome: str, seconds: float) -> None:
    """One push answered at `url` ("component" or "authorizer") of the platform `component` (a configured
    component appid: unknown platforms are refused before this). `kind` is the verified push's InfoType,
    MsgType or Event (None, or anything else unverified: "unverified"); `outcome` one of PUSH_OUTCOMES."""
    series = _get()
    url_label = url if url in PUSH_URLS else "other"
    kind_label = kind if kind is not None and _PUSH_KIND.fullmatch(kind) else PUSH_UNVERIFIED
    outcome_label = outcome if outcome in PUSH_OUTCOMES else "error"
    series.pushes.labels(component[:64], url_label, kind_label, outcome_label).inc()
    series.push_seconds.labels(url_label).observe(max(0.0, seconds))


PUSH_LOG_DROP_REASONS = frozenset({"budget", "database"})


@_never_raises
def record_push_log_dropped(reason: str) -> None:
    """One push the push log did not store (`reason` one of PUSH_LOG_DROP_REASONS)."""
    _get().push_log_dropped.labels(reason if reason in PUSH_LOG_DROP_REASONS else "other").inc()


HANDOUT_KINDS = frozenset({"component", "authorizer"})
HANDOUT_OUTCOMES = frozenset({"issued", "not_found", "forbidden", "unavailable", "throttled"})


@_never_raises
def record_token_handout(kind: str, component: str, outcome: str) -> None:
    """One answer of the token authority. The caller passes a known platform's appid or "unknown"."""
    _get().token_handouts.labels(
        kind if kind in HANDOUT_KINDS else "other",
        component[:64],
        outcome if outcome in HANDOUT_OUTCOMES else "other",
    ).inc()


@_never_raises
def record_gateway_call(key: str, component: str, pattern: str, outcome: str) -> None:
    """One call through the gateway. Every label is bounded by the caller: a key prefix, a known platform or
    "unknown", one of the key's own patterns or "refused", an errcode or a fixed word."""
    _get().gateway_calls.labels(key[:16], component[:64], pattern[:128], outcome[:48]).inc()


@_never_raises
def observe_rate_limit_wait(seconds: float) -> None:
    _get().rate_limit_wait_seconds.observe(seconds)


@_never_raises
def observe_job_wait(seconds: float) -> None:
    _get().sync_job_wait_seconds.observe(max(0.0, seconds))


@_never_raises
def _observe_lock_wait(lock: str, seconds: float) -> None:
    _get().lock_wait_seconds.labels(lock).observe(seconds)


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
        _get().task_seconds.labels(getattr(task, "name", "unknown"), state or "UNKNOWN").observe(
            time.perf_counter() - started
        )


def _connect_task_signals() -> None:
    signals.task_prerun.connect(_task_prerun, weak=False, dispatch_uid="wxp-metrics-prerun")
    signals.task_postrun.connect(_task_postrun, weak=False, dispatch_uid="wxp-metrics-postrun")
