"""The merchant API's per-key throttle: a fixed window per API key, counted in each process and added to the
shared counter in Redis in batches rather than one round trip per request.

Each process keeps, per key and window, the window's total as Redis last returned it (`known_total`) and
the requests it has counted since (`pending`). A request adds 1 to `pending` and is decided locally, unless
one of these makes the process add its pending count to Redis first (SET NX EX + INCRBY, one round trip):
- `pending` reached the batch size, max(1, (limit - known_total) // 16): a sixteenth of what the process
  knows is left of the limit, so batches shrink to 1 as the window fills and the last requests before the
  limit are counted exactly (at 3/min the 4th request is refused, as with a plain counter);
- API_THROTTLE_SYNC_INTERVAL seconds passed since this counter last synced (a new counter has never
  synced, so a process's first request of a window always asks Redis);
- known_total + pending would exceed the limit: a request is refused only on a total Redis returned.
A request is admitted iff the total, after the sync if there was one, is within the limit. Once Redis has
returned a total over the limit, the rest of the window is refused without asking it again (the count
only grows within a window), so traffic past the limit costs no round trips. At 600/min a
busy key starts its window with one round trip per 37 requests instead of one per request.

Over-admission bound. Between two syncs a process admits at most B - 1 requests on its own, where
B = max(1, (limit - K) // 16) is fixed by the total K of its last sync; its next sync returns the true total
and from then on the process refuses. So with N processes sharing a key (threads of one process share its
counters and count as one), a window admits at most limit + N x (B - 1) < limit x (1 + N / 16) requests.
A process decides on its own only within one sync interval of its last sync, so it admits extra requests
only if the rest of the window's budget (limit - K) is spent within that interval: a burst. At 600/min
with 8 processes the worst case is 8 x 36 = 288 extra requests in that minute; with traffic spread over
the window a process's K is at most 0.25 s old and the excess is what arrives in that time. That is fine
for abuse protection, which needs "about the rate, never unbounded" rather than exactness: the fixed
window already lets up to twice the rate through across a window boundary, and the bound holds in every
window, so sustained abuse is held to the rate plus a fixed excess.

If Redis is unreachable (or the cache fails) the request is let through: throttling must not turn a cache
outage into an API outage. The failed batch is dropped, the counter does not try again for one sync
interval, and the warning is logged at most once a minute per process. Without REDIS_URL the Django cache
(the file cache of a Redis-less development setup) holds the counters, batched in the same way.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol

import redis
from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from tenants.authentication import APIKeyPrincipal

if TYPE_CHECKING:
    # Not at run time: DRF imports this module while rest_framework.views is still being imported.
    from rest_framework.views import APIView

logger = logging.getLogger(__name__)

# A batch is this fraction of what is left of the limit; the over-admission bound above depends on it.
BATCH_DIVISOR = 16
# A process logs that the counters are unreachable at most this often (seconds).
WARNING_INTERVAL = 60.0
# Counters kept per process; past windows are dropped first, then all (see ThrottleCounters._evict).
MAX_COUNTERS = 10_000
# What an unreachable Redis or cache raises; ValueError is the cache's incr() on a key that just expired.
UNAVAILABLE = (RedisError, OSError, ValueError)


class CounterStore(Protocol):
    def add(self, key: str, delta: int, *, ttl: int) -> int:
        """Adds `delta` to the counter `key` (created with `ttl` seconds to live) and returns the new total."""
        ...


@lru_cache(maxsize=4)
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)


@dataclass(frozen=True)
class RedisCounterStore:
    url: str

    def add(self, key: str, delta: int, *, ttl: int) -> int:
        pipeline = _redis(self.url).pipeline(transaction=False)
        pipeline.set(key, 0, ex=ttl, nx=True)
        pipeline.incrby(key, delta)
        return int(pipeline.execute()[1])


class CacheCounterStore:
    """Django's cache: add() then incr(), atomic enough for one machine (no REDIS_URL)."""

    def add(self, key: str, delta: int, *, ttl: int) -> int:
        cache.add(key, 0, timeout=ttl)
        return int(cache.incr(key, delta))


@dataclass(eq=False)
class _Counter:
    window_index: int
    window_end: float  # on the wall clock, like the window index
    known_total: int = 0
    pending: int = 0
    synced_at: float = -math.inf  # on ThrottleCounters' clock, as is retry_at
    retry_at: float = -math.inf
    lock: threading.Lock = field(default_factory=threading.Lock)


class ThrottleCounters:
    """One process's share of the request counters: what Redis last said per key, and what it was not told yet.

    A memo of counts, not a source of truth: the store holds the totals, and a forgotten counter learns its
    key's total again on its next request. It holds no secret and at most `max_counters` counters.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, max_counters: int = MAX_COUNTERS) -> None:
        self._clock = clock
        self._max_counters = max_counters
        self._counters: dict[str, _Counter] = {}
        self._lock = threading.Lock()
        self._warned_at = -math.inf

    def __len__(self) -> int:
        return len(self._counters)

    def clear(self) -> None:
        with self._lock:
            self._counters.clear()
            self._warned_at = -math.inf

    def hit(self, store: CounterStore, *, key: str, limit: int, window: int, now: float, sync_interval: float) -> bool:
        """Counts one request on `key` in the window holding `now` (time.time()); True if it is within `limit`.

        The store's counter is named `<key>:<window index>` and lives a second longer than its window.
        """
        counter = self._counter(key, window, now)
        # Held through the round trip: a thread that needs the total waits for the one being fetched, so
        # threads of one process never admit more than the process would alone.
        with counter.lock:
            if counter.known_total > limit:
                # Redis said this window is spent, and its count only grows until the window ends: refusing
                # here costs nothing, so a client hammering past its limit costs no round trips.
                return False
            tick = self._clock()
            if tick < counter.retry_at:
                return True  # the store failed moments ago: let requests through without waiting on it again
            counter.pending += 1
            batch = max(1, (limit - counter.known_total) // BATCH_DIVISOR)
            if (
                counter.pending < batch
                and tick - counter.synced_at < sync_interval
                and counter.known_total + counter.pending <= limit  # implied by the batch rule; the invariant
            ):
                return True
            delta, counter.pending, counter.synced_at = counter.pending, 0, tick
            try:
                counter.known_total = store.add(f"{key}:{counter.window_index}", delta, ttl=window + 1)
            except UNAVAILABLE as exc:
                counter.retry_at = tick + sync_interval
                self._warn(exc, tick)
                return True
            return counter.known_total <= limit

    def _counter(self, key: str, window: int, now: float) -> _Counter:
        window_index = int(now // window)
        counter = self._counters.get(key)
        if counter is not None and counter.window_index == window_index:
            return counter
        with self._lock:
            counter = self._counters.get(key)
            if counter is not None and counter.window_index > window_index:
                # A request that read the clock just before the window turned: counted in its own window
                # by a counter of its own, which asks the store at once.
                return _Counter(window_index=window_index, window_end=(window_index + 1) * window)
            if counter is None or counter.window_index < window_index:
                if counter is None and len(self._counters) >= self._max_counters:
                    self._evict(now)
                counter = _Counter(window_index=window_index, window_end=(window_index + 1) * window)
                self._counters[key] = counter  # the key's past window is dropped here
            return counter

    def _evict(self, now: float) -> None:
        """Drops the counters of past windows, or all of them if that frees nothing (their pending counts are lost)."""
        for key in [key for key, counter in self._counters.items() if counter.window_end <= now]:
            del self._counters[key]
        if len(self._counters) >= self._max_counters:
            self._counters.clear()

    def _warn(self, exc: Exception, tick: float) -> None:
        with self._lock:
            if tick - self._warned_at < WARNING_INTERVAL:
                return
            self._warned_at = tick
        logger.warning(
            "API throttle unavailable, requests let through (logged at most once a minute): %s", type(exc).__name__
        )


# This process's counters (see the module docstring); never a source of truth, and bounded.
_counters = ThrottleCounters()


def throttle_counters_clear() -> None:
    """Forgets this process's counters and when it last warned (tests)."""
    _counters.clear()


def _store() -> CounterStore:
    return RedisCounterStore(settings.REDIS_URL) if settings.REDIS_URL else CacheCounterStore()


class APIKeyRateThrottle(BaseThrottle):
    """A fixed-window request counter per API key, batched into Redis (the Django cache without it)."""

    scope = "api_key"

    def __init__(self) -> None:
        self.wait_seconds: float | None = None

    def parse_rate(self) -> tuple[int, int]:
        # Read on every request rather than at import, so that settings overrides (tests, bench) apply.
        rate = str(api_settings.DEFAULT_THROTTLE_RATES[self.scope])
        count, _slash, period = rate.partition("/")
        seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[0]]
        return int(count), seconds

    def allow_request(self, request: Request, view: APIView) -> bool:
        principal = request.user
        if not isinstance(principal, APIKeyPrincipal):
            return True
        limit, window = self.parse_rate()
        now = time.time()
        key = f"{settings.REDIS_KEY_PREFIX}:throttle:{self.scope}:{principal.key.prefix}:{window}"
        sync_interval = float(settings.API_THROTTLE_SYNC_INTERVAL)
        if _counters.hit(_store(), key=key, limit=limit, window=window, now=now, sync_interval=sync_interval):
            return True
        self.wait_seconds = (int(now // window) + 1) * window - now
        return False

    def wait(self) -> float | None:
        return self.wait_seconds
