"""Fixed-window request counters in Redis: the per-key throttles and the per-address limits count here.

One Redis round trip per request: SET NX EX creates the window's counter with its expiry, INCR counts the
request, pipelined. DRF's SimpleRateThrottle would cost two (a get, then a set of every request time of the
window, which grows with the rate). A fixed window may let up to twice the rate through across a window
boundary, which is fine for abuse protection.

If Redis is unreachable (or the cache fails) the request is let through: throttling must not turn a cache
outage into an API outage. The warning is logged at most once a minute per process. Without REDIS_URL the
Django cache (the file cache of a Redis-less development setup) holds the counters.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError

from wxplatform.core.redis_client import redis_client

logger = logging.getLogger(__name__)

# What an unreachable Redis or cache raises; ValueError is the cache's incr() on a key that just expired.
UNAVAILABLE = (RedisError, OSError, ValueError)


def window_count(key: str, *, ttl: int) -> int:
    """Counts one request on `key` (created with `ttl` seconds to live) and returns the count so far."""
    if settings.REDIS_URL:
        pipeline = redis_client().pipeline(transaction=False)
        pipeline.set(key, 0, ex=ttl, nx=True)
        pipeline.incr(key)
        return int(pipeline.execute()[1])
    cache.add(key, 0, timeout=ttl)
    return int(cache.incr(key))


class OutageWarning:
    """Logs that the counters are unreachable at most once per `interval` seconds, not on every request."""

    def __init__(self, interval: float = 60.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._warned_at = -math.inf
        self._lock = threading.Lock()

    def __call__(self, exc: Exception) -> None:
        now = self._clock()
        with self._lock:
            if now - self._warned_at < self._interval:
                return
            self._warned_at = now
        logger.warning(
            "rate limits unavailable, requests let through (logged at most once a minute): %s", type(exc).__name__
        )


_outage_warning = OutageWarning()


def parse_rate(rate: str) -> tuple[int, int]:
    """Parses a rate such as 600/min into (600, 60): requests per window of seconds."""
    count, _slash, period = rate.partition("/")
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[0]]
    return int(count), seconds


def _window(scope: str, ident: str, rate: str) -> tuple[int, int, str, float]:
    limit, window = parse_rate(rate)
    now = time.time()
    window_index = int(now // window)
    key = f"{settings.REDIS_KEY_PREFIX}:throttle:{scope}:{ident}:{window}:{window_index}"
    return limit, window, key, (window_index + 1) * window - now


def window_exceeded(*, scope: str, ident: str, rate: str) -> float | None:
    """Counts one request of `ident` (an API key prefix, a client address) in `scope`'s current window:
    None while within `rate`, else the seconds until the window ends. Let through when Redis is down."""
    limit, window, key, remaining = _window(scope, ident, rate)
    try:
        count = window_count(key, ttl=window + 1)  # the counter outlives its window by a second
    except UNAVAILABLE as exc:
        _outage_warning(exc)
        return None
    return None if count <= limit else remaining


def window_already_exceeded(*, scope: str, ident: str, rate: str) -> float | None:
    """Like window_exceeded, without counting: whether `ident` went over `rate` in this window already (a
    counter of failures is read before the next attempt and counted only when that attempt fails too)."""
    limit, _window_seconds, key, remaining = _window(scope, ident, rate)
    try:
        value: Any = redis_client().get(key) if settings.REDIS_URL else cache.get(key)
    except UNAVAILABLE as exc:
        _outage_warning(exc)
        return None
    return None if value is None or int(value) <= limit else remaining
