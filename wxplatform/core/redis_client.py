"""The process's Redis client, for everything that talks to Redis directly (readiness probe, queue depths,
the draft/count rate limit, the API throttle). Celery and Django's cache make their own connections from
the same URL and the same timeouts (settings.REDIS_CONNECT_TIMEOUT / REDIS_SOCKET_TIMEOUT).

One client per process and URL: it holds a connection pool, so that a request does not pay a TCP
handshake. It holds no data. Tests that point REDIS_URL elsewhere get a client of their own (the key is
the URL).
"""

from __future__ import annotations

from functools import lru_cache

import redis
from django.conf import settings


@lru_cache(maxsize=4)
def _client(url: str, connect_timeout: float, socket_timeout: float) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=connect_timeout, socket_timeout=socket_timeout)


def redis_client() -> redis.Redis:
    """The client for settings.REDIS_URL; callers check that REDIS_URL is set (it is optional)."""
    return _client(settings.REDIS_URL, settings.REDIS_CONNECT_TIMEOUT, settings.REDIS_SOCKET_TIMEOUT)
