"""Platform-wide rate limit on draft/count calls: a token bucket shared by every worker through Redis.

Callers reserve a whole batch at once and learn how long to wait before starting it. The bucket may go
into debt, so a reservation is never refused, only delayed: a batch of 500 at 3000/s with an empty
bucket waits 1/6 s, and the next caller waits behind it. The sustained rate across all workers therefore
never exceeds the configured limit, whatever the chunk sizes, while a quiet platform may start one burst
at once.

Without REDIS_URL (one machine, development) each process keeps its own bucket: the limit then holds per
process, not per platform. That degraded mode is documented in .env.example.
"""

from __future__ import annotations

import logging
import threading
import time
from functools import lru_cache

import redis
from django.conf import settings

from wxplatform.core.redis_client import redis_client

logger = logging.getLogger(__name__)

# KEYS[1] bucket; ARGV rate (tokens/s), burst (bucket size), n (tokens wanted). Redis' own clock is used so
# that workers on hosts with skewed clocks share one notion of time. Returns the wait in seconds, as text
# (a Lua number would be truncated to an integer reply).
_RESERVE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate) - n
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil((burst - tokens) / rate) + 60)
if tokens >= 0 then
  return '0'
end
return tostring(-tokens / rate)
"""


class RateLimiter:
    """A token bucket of `burst` tokens refilled at `rate` per second."""

    def __init__(self, *, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst

    def reserve(self, n: int) -> float:
        """Takes `n` tokens and returns the seconds to wait before using them."""
        raise NotImplementedError

    def acquire(self, n: int) -> float:
        """Takes `n` tokens, sleeping as long as needed; returns the seconds slept."""
        if n <= 0:
            return 0.0
        wait = self.reserve(n)
        if wait > 0:
            time.sleep(wait)
        return wait


class RedisRateLimiter(RateLimiter):
    def __init__(self, *, client: redis.Redis, key: str, rate: float, burst: int) -> None:
        super().__init__(rate=rate, burst=burst)
        self.key = key
        self._script = client.register_script(_RESERVE)
        # Used only while Redis is unreachable, so that a Redis outage slows syncs down rather than stopping them.
        self._fallback = LocalRateLimiter(rate=rate, burst=burst)

    def reserve(self, n: int) -> float:
        try:
            return float(self._script(keys=[self.key], args=[self.rate, self.burst, n]))
        except redis.RedisError as exc:
            logger.warning("rate limiter falls back to this process: %s", type(exc).__name__)
            return self._fallback.reserve(n)


class LocalRateLimiter(RateLimiter):
    """The same bucket in process memory (degraded mode without Redis)."""

    def __init__(self, *, rate: float, burst: int) -> None:
        super().__init__(rate=rate, burst=burst)
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._ts = time.monotonic()

    def reserve(self, n: int) -> float:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(float(self.burst), self._tokens + (now - self._ts) * self.rate) - n
            self._ts = now
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


@lru_cache(maxsize=8)
def _limiter(redis_url: str, key_prefix: str, rate: float, burst: int) -> RateLimiter:
    if not redis_url:
        return LocalRateLimiter(rate=rate, burst=burst)
    return RedisRateLimiter(client=redis_client(), key=f"{key_prefix}:drafts:draft-count-rate", rate=rate, burst=burst)


def draft_count_limiter() -> RateLimiter:
    """The limiter for draft/count calls, per the current settings (one per process and configuration)."""
    return _limiter(
        settings.REDIS_URL, settings.REDIS_KEY_PREFIX, settings.DRAFT_SYNC_RATE_LIMIT, settings.DRAFT_SYNC_RATE_BURST
    )
