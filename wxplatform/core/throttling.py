"""Fixed-window request counters in Redis: the per-key throttles and the per-address limits count here.

One Redis round trip per request: SET NX EX creates the window's counter with its expiry, INCR counts the
request, pipelined. DRF's SimpleRateThrottle would cost two (a get, then a set of every request time of the
window, which grows with the rate). A fixed window may let up to twice the rate through across a window
boundary, which is fine for abuse protection.

If Redis is unreachable (or the cache fails), the limits that guard what an anonymous client may cost (WeChat
calls of the authorization pages, key guessing at the token authority, rows of the push log) count in the
process instead (LocalWindows), so they stay bounded: per process rather than per deployment, i.e. at most
the limit times the number of web processes. Only the merchant API's per-key throttle lets requests through,
so that a cache outage does not become an API outage for merchants who hold a key. The warning is logged at
most once a minute per process. Without REDIS_URL the Django cache (the file cache of a Redis-less
development setup) holds the counters.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

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


class LocalWindows:
    """Fixed-window counters in this process's memory, used only while Redis is unreachable.

    A counter's key names its window (see _window), so a new window starts a new count; a counter is dropped
    once its window has ended (swept when the table is full), and the table never holds more than `max_keys`
    counters: past that, new clients of a scope share one overflow counter for the window, so a flood of
    addresses costs no memory, only the overflow's allowance. Nothing here outlives the window, so nothing needs
    invalidating when Redis comes back: the counts simply stop being consulted.
    """

    def __init__(self, max_keys: int = 10_000, *, clock: Callable[[], float] = time.time) -> None:
        self._max_keys = max_keys
        self._clock = clock
        self._counts: dict[str, tuple[int, float]] = {}  # key -> (count, end of its window)
        self._lock = threading.Lock()

    def count(self, key: str, *, overflow_key: str, expires_at: float) -> int:
        """Counts one request on `key` (or on `overflow_key` when the table is full) and returns the count."""
        with self._lock:
            if key not in self._counts and len(self._counts) >= self._max_keys:
                self._sweep()
                if len(self._counts) >= self._max_keys:
                    key = overflow_key
            count = self._counts.get(key, (0, expires_at))[0] + 1
            self._counts[key] = (count, expires_at)
            return count

    def peek(self, key: str, *, overflow_key: str) -> int:
        """What count() would have counted on so far, without counting."""
        with self._lock:
            if key not in self._counts and len(self._counts) >= self._max_keys:
                key = overflow_key
            count, expires_at = self._counts.get(key, (0, 0.0))
            return count if expires_at > self._clock() else 0

    def _sweep(self) -> None:
        now = self._clock()
        self._counts = {k: v for k, v in self._counts.items() if v[1] > now}


_local_windows = LocalWindows()


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
            "rate-limit counters unreachable: limits count in this process, the merchant API's per-key limit lets "
            "requests through (logged at most once a minute): %s",
            type(exc).__name__,
        )


_outage_warning = OutageWarning()


def parse_rate(rate: str) -> tuple[int, int]:
    """Parses a rate such as 600/min into (600, 60): requests per window of seconds."""
    count, _slash, period = rate.partition("/")
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[0]]
    return int(count), seconds


class _Window(NamedTuple):
    limit: int
    seconds: int
    key: str
    # The counter that new clients of the scope share while the in-process table is full (LocalWindows).
    overflow_key: str
    remaining: float


def _window(scope: str, ident: str, rate: str) -> _Window:
    limit, seconds = parse_rate(rate)
    return _window_at(scope, ident, limit, seconds, time.time())


def _window_at(scope: str, ident: str, limit: int, seconds: int, now: float) -> _Window:
    index = int(now // seconds)
    prefix = f"{settings.REDIS_KEY_PREFIX}:throttle:{scope}"
    key, overflow_key = f"{prefix}:{ident}:{seconds}:{index}", f"{prefix}:*:{seconds}:{index}"
    return _Window(limit, seconds, key, overflow_key, (index + 1) * seconds - now)


def window_count_or_local(key: str, *, ttl: int, remaining: float, overflow_key: str) -> int:
    """window_count, or, while Redis is unreachable, this process's own count of `key` (LocalWindows), whose
    window ends in `remaining` seconds."""
    try:
        return window_count(key, ttl=ttl)
    except UNAVAILABLE as exc:
        _outage_warning(exc)
        return _local_windows.count(key, overflow_key=overflow_key, expires_at=time.time() + remaining)


def window_exceeded(*, scope: str, ident: str, rate: str, open_when_unavailable: bool = False) -> float | None:
    """Counts one request of `ident` (an API key prefix, a client address) in `scope`'s current window:
    None while within `rate`, else the seconds until the window ends. While Redis is unreachable, counted in
    this process; or let through with `open_when_unavailable`."""
    window = _window(scope, ident, rate)
    ttl = window.seconds + 1  # the counter outlives its window by a second
    if open_when_unavailable:
        try:
            count = window_count(window.key, ttl=ttl)
        except UNAVAILABLE as exc:
            _outage_warning(exc)
            return None
    else:
        count = window_count_or_local(window.key, ttl=ttl, remaining=window.remaining, overflow_key=window.overflow_key)
    return None if count <= window.limit else window.remaining


def window_already_exceeded(*, scope: str, ident: str, rate: str) -> float | None:
    """Like window_exceeded, without counting: whether `ident` went over `rate` in this window already (a
    counter of failures is read before the next attempt and counted only when that attempt fails too). While
    Redis is unreachable, this process's count is read."""
    window = _window(scope, ident, rate)
    try:
        value: Any = redis_client().get(window.key) if settings.REDIS_URL else cache.get(window.key)
    except UNAVAILABLE as exc:
        _outage_warning(exc)
        value = _local_windows.peek(window.key, overflow_key=window.overflow_key)
    return None if value is None or int(value) <= window.limit else window.remaining


def windows_take(scope: str, budgets: Sequence[tuple[str, int, int]]) -> list[bool]:
    """Counts one call for each (ident, limit, seconds) in ident's current fixed window of `seconds` and says
    whether it stays within `limit`: one budget per ident shared by every worker, in one Redis round trip for
    the whole list (a sync batch plans hundreds of accounts at once). A call refused here has been counted too,
    which only brings a spent window's count further past its limit. While Redis is unreachable, counted in
    this process (the budget then holds per process)."""
    if not budgets:
        return []
    now = time.time()
    windows = [_window_at(scope, ident, limit, seconds, now) for ident, limit, seconds in budgets]
    try:
        if settings.REDIS_URL:
            pipeline = redis_client().pipeline(transaction=False)
            for window in windows:
                pipeline.set(window.key, 0, ex=window.seconds + 1, nx=True)
                pipeline.incr(window.key)
            counts = [int(count) for count in pipeline.execute()[1::2]]
        else:
            counts = [window_count(window.key, ttl=window.seconds + 1) for window in windows]
    except UNAVAILABLE as exc:
        _outage_warning(exc)
        counts = [
            _local_windows.count(w.key, overflow_key=w.overflow_key, expires_at=now + w.remaining) for w in windows
        ]
    return [count <= window.limit for count, window in zip(counts, windows, strict=True)]
