"""Fetch resources of the sync engine: the event loop and keep-alive aiohttp session of each worker process,
and the platform-wide rate limit in front of them.

A worker syncs chunk after chunk; reusing one session keeps its connections to WeChat warm (a new TLS
handshake per chunk would cost more than the chunk's calls). The session holds no tenant state: tokens pass
through. Idle connections older than _SESSION_IDLE_SECONDS are not reused, because WeChat may have closed
them meanwhile; a process closes its sessions at exit (DraftsConfig.ready registers close_fetchers).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence

import aiohttp
from django.conf import settings

from drafts.ratelimit import draft_count_limiter
from wxplatform.component.clients import wechat_bases
from wxplatform.core import egress, metrics
from wxplatform.wechat.bulk import DRAFT_COUNT_PATH, DraftCountResult, fetch_draft_counts_async

_SESSION_IDLE_SECONDS = 25.0


class _Fetcher:
    """An event loop and a keep-alive aiohttp session for one process and configuration."""

    def __init__(
        self, base_url: str, concurrency: int, connect_timeout: float, read_timeout: float, proxy: str
    ) -> None:
        self.base_url = base_url
        self.proxy = proxy or None
        self.concurrency = concurrency
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.loop = asyncio.new_event_loop()
        self.session: aiohttp.ClientSession | None = None
        self.last_used = 0.0

    def fetch(self, items: Sequence[tuple[int, str]]) -> list[DraftCountResult[int]]:
        return self.loop.run_until_complete(self._fetch(items))

    def close(self) -> None:
        if self.session is not None:
            self.loop.run_until_complete(self.session.close())
            self.session = None
        self.loop.close()

    async def _fetch(self, items: Sequence[tuple[int, str]]) -> list[DraftCountResult[int]]:
        now = time.monotonic()
        if self.session is not None and now - self.last_used > _SESSION_IDLE_SECONDS:
            await self.session.close()
            self.session = None
        if self.session is None:
            connector = aiohttp.TCPConnector(limit=self.concurrency, keepalive_timeout=_SESSION_IDLE_SECONDS)
            self.session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
        try:
            return await fetch_draft_counts_async(
                self.base_url,
                items,
                concurrency=self.concurrency,
                connect_timeout=self.connect_timeout,
                read_timeout=self.read_timeout,
                session=self.session,
                on_call=metrics.observe_wechat_call,
                proxy=self.proxy,
                bases=wechat_bases(),
            )
        finally:
            self.last_used = time.monotonic()


# One per process and configuration. Keyed by pid: a prefork child must not use an event loop or sockets
# inherited from its parent. Keyed by the settings it was built from, so that a changed setting (tests)
# gets a new one rather than a stale session.
_fetchers: dict[tuple[int, str, int, float, float, str], _Fetcher] = {}


def _fetcher() -> _Fetcher:
    key = (
        os.getpid(),
        settings.WECHAT_API_BASE,
        settings.DRAFT_SYNC_CONCURRENCY,
        settings.WECHAT_CONNECT_TIMEOUT,
        settings.WECHAT_READ_TIMEOUT,
        settings.WECHAT_HTTP_PROXY,
    )
    fetcher = _fetchers.get(key)
    if fetcher is None:
        fetcher = _fetchers[key] = _Fetcher(*key[1:])
    return fetcher


def close_fetchers() -> None:
    """Closes this process's HTTP sessions (at exit, and between tests that change settings)."""
    pid = os.getpid()
    for key, fetcher in list(_fetchers.items()):
        del _fetchers[key]
        if key[0] == pid:
            fetcher.close()


def draft_counts_fetch(items: Sequence[tuple[int, str]]) -> list[DraftCountResult[int]]:
    """draft/count for each (key, access token), once the platform-wide rate limit lets the batch start."""
    metrics.observe_rate_limit_wait(draft_count_limiter().acquire(len(items)))
    results = _fetcher().fetch(items)
    # Outside the event loop, where the cache may be written: 61004s are diagnosed (wxplatform/core/egress.py).
    egress.observe_errors(DRAFT_COUNT_PATH, (result.error for result in results))
    return results
