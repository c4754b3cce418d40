"""The process's Redis client, for everything that talks to Redis directly (readiness probe, queue depths,
the draft/count rate limit, the API throttle). Celery and Django's cache make their own connections from
the same URL and the same timeouts (settings.REDIS_CONNECT_TIMEOUT / REDIS_SOCKET_TIMEOUT).

One client per process and URL: it holds a connection pool, so that a request does not pay a TCP
handshake. It holds no data. Tests that point REDIS_URL elsewhere get a client of their own (the key is
the URL).

With Redis Sentinel (settings.REDIS_SENTINELS) the pool asks the sentinels for the master's address whenever it
opens a connection, and redis-py turns a reply of a demoted master (READONLY) into a connection error, so that
a failover costs the commands in flight at that moment and nothing after (docs/deploy/redis-sentinel.md).
Django's cache gets the same kind of pool through `SentinelPool` (its OPTIONS' pool_class).
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

import redis
from django.conf import settings
from redis.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection

# How often a process asks the sentinels where the master is, while it uses Redis (one SENTINEL query per pool).
MASTER_CHECK_SECONDS = 0.5
# Replies of a master that is being demoted: NOREPLICAS (it lost its replica, with min-replicas-to-write set),
# UNBLOCKED (it turned replica under a blocked BRPOP). Like READONLY, they mean "ask the sentinels again".
_DEMOTED = ("NOREPLICAS", "UNBLOCKED")


class FollowingConnection(SentinelManagedConnection):
    """A connection to the master the sentinels name, that moves when they name another.

    redis-py asks the sentinels only when it opens a connection. After `SENTINEL FAILOVER` the old master stays
    up and answers as a master until the sentinels reconfigure it, about 10 s later; meanwhile a connection
    kept open (a pooled one, the worker's BRPOP, the producer's) would go on writing there, and what it wrote is
    dropped when the old master resyncs as a replica (measured: 10.4 s, tests/ha/test_sentinel.py). So before a
    command, a connection whose address is no longer the master's, as the sentinels said at most
    MASTER_CHECK_SECONDS ago, reconnects to the new one.
    """

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        proxy = self.connection_pool
        if proxy.is_master:
            if self._sock is not None:
                now = time.monotonic()
                if proxy.master_address is None or now - getattr(proxy, "checked_at", 0.0) >= MASTER_CHECK_SECONDS:
                    proxy.checked_at = now
                    # Also disconnects the pool's idle connections when the master moved.
                    proxy.get_master_address()
                if proxy.master_address != (self.host, self.port):
                    self.disconnect()
            if self._sock is None:
                # Through the sentinels: redis-py's own reconnect here would go back to the last address.
                self.connect()  # type: ignore[no-untyped-call]
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)
        except ResponseError as exc:
            if self.connection_pool.is_master and str(exc).startswith(_DEMOTED):
                self.disconnect()  # type: ignore[no-untyped-call]
                raise RedisConnectionError(f"the master is being demoted ({str(exc).split(' ', 1)[0]})") from exc
            raise


def sentinel_pool(url: str, **connection_kwargs: Any) -> SentinelConnectionPool:
    """A pool of connections to the master the sentinels name; the URL gives only password and database."""
    params = {k: v for k, v in parse_url(url).items() if k not in ("host", "port")}  # type: ignore[no-untyped-call]
    sentinel_kwargs: dict[str, Any] = {
        "socket_connect_timeout": settings.REDIS_CONNECT_TIMEOUT,
        "socket_timeout": settings.REDIS_SOCKET_TIMEOUT,
    }
    if settings.REDIS_SENTINEL_PASSWORD:
        sentinel_kwargs["password"] = settings.REDIS_SENTINEL_PASSWORD
    manager = Sentinel(settings.REDIS_SENTINELS, sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
    return SentinelConnectionPool(  # type: ignore[no-untyped-call]
        settings.REDIS_SENTINEL_MASTER, manager, connection_class=FollowingConnection, **params, **connection_kwargs
    )


class SentinelPool(SentinelConnectionPool):
    """pool_class of Django's RedisCache with Sentinel: Django calls `pool_class.from_url(LOCATION, **OPTIONS)`."""

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> SentinelConnectionPool:  # type: ignore[override]
        return sentinel_pool(url, **kwargs)


@lru_cache(maxsize=4)
def _client(
    url: str, connect_timeout: float, socket_timeout: float, sentinels: tuple[tuple[str, int], ...]
) -> redis.Redis:
    if sentinels:
        pool = sentinel_pool(url, socket_connect_timeout=connect_timeout, socket_timeout=socket_timeout)
        return redis.Redis(connection_pool=pool)
    return redis.Redis.from_url(url, socket_connect_timeout=connect_timeout, socket_timeout=socket_timeout)


def redis_client() -> redis.Redis:
    """The client for settings.REDIS_URL; callers check that REDIS_URL is set (it is optional)."""
    return _client(
        settings.REDIS_URL,
        settings.REDIS_CONNECT_TIMEOUT,
        settings.REDIS_SOCKET_TIMEOUT,
        tuple(settings.REDIS_SENTINELS),
    )
