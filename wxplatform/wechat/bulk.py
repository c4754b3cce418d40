"""draft/count for many authorizers at once: the throughput path (docs/wechat/endpoints.md#draft_count).

A fixed pool of `concurrency` workers shares one keep-alive aiohttp session whose connector is capped at the
same number, so at most `concurrency` requests are in flight however long the input. Nothing is raised per
item: each result carries either the count or the typed error, in input order, for the caller to classify.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import quote

import aiohttp
from yarl import URL

from wxplatform.wechat.bases import Bases
from wxplatform.wechat.client import CallObserver, call_outcome
from wxplatform.wechat.errors import TransportError, WeChatError
from wxplatform.wechat.http import parse_body, required_int

__all__ = ["DRAFT_COUNT_PATH", "DraftCountResult", "fetch_draft_counts", "fetch_draft_counts_async"]

K = TypeVar("K")

DRAFT_COUNT_PATH = "/cgi-bin/draft/count"
_DRAFT_COUNT = DRAFT_COUNT_PATH + "?access_token="
_KEEPALIVE_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class DraftCountResult(Generic[K]):
    """Exactly one of `total_count` and `error` is set."""

    key: K
    total_count: int | None
    error: WeChatError | None


async def fetch_draft_counts_async(
    base_url: str,
    items: Sequence[tuple[K, str]],
    *,
    concurrency: int = 128,
    connect_timeout: float = 3.05,
    read_timeout: float = 10.0,
    session: aiohttp.ClientSession | None = None,
    on_call: CallObserver | None = None,
    proxy: str | None = None,
    bases: Bases | None = None,
) -> list[DraftCountResult[K]]:
    """draft/count for each (key, authorizer access token), results in input order. `on_call` is told of
    every call as it ends (see client.CallObserver). `proxy`: the egress proxy every request goes through
    (an http:// URL; HTTPS is tunnelled with CONNECT), as for the requests client. `bases`: the fallback bases
    and their breakers, shared with the requests client (wxplatform/wechat/bases.py); without, `base_url` only."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if not items:
        return []
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=read_timeout)
    doors = bases if bases is not None else Bases(base_url)
    if session is not None:
        return await _fan_out(session, doors, items, concurrency, timeout, on_call, proxy)
    connector = aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=_KEEPALIVE_SECONDS)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()
    ) as own_session:
        return await _fan_out(own_session, doors, items, concurrency, timeout, on_call, proxy)


def fetch_draft_counts(
    base_url: str,
    items: Sequence[tuple[K, str]],
    *,
    concurrency: int = 128,
    connect_timeout: float = 3.05,
    read_timeout: float = 10.0,
    on_call: CallObserver | None = None,
    proxy: str | None = None,
    bases: Bases | None = None,
) -> list[DraftCountResult[K]]:
    """Blocking form for code with no event loop in its thread (Celery prefork workers, management commands)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("fetch_draft_counts() called inside a running event loop; await fetch_draft_counts_async()")
    return asyncio.run(
        fetch_draft_counts_async(
            base_url,
            items,
            concurrency=concurrency,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            on_call=on_call,
            proxy=proxy,
            bases=bases,
        )
    )


async def _fan_out(
    session: aiohttp.ClientSession,
    bases: Bases,
    items: Sequence[tuple[K, str]],
    concurrency: int,
    timeout: aiohttp.ClientTimeout,
    on_call: CallObserver | None = None,
    proxy: str | None = None,
) -> list[DraftCountResult[K]]:
    results: list[DraftCountResult[K] | None] = [None] * len(items)
    # One shared iterator: workers take the next index between awaits, so no locking is needed and
    # there are never more than `concurrency` coroutines however many items there are.
    indices = iter(range(len(items)))

    async def worker() -> None:
        for index in indices:
            key, access_token = items[index]
            token = quote(access_token, safe="")
            started = time.perf_counter()
            # draft/count is a GET: any transport failure may move it to the next base.
            for base in bases.order():
                # The URL is assembled as an already-encoded string: yarl then skips its re-quoting pass.
                url = URL(base + _DRAFT_COUNT + token, encoded=True)
                total_count, error = await _draft_count(session, url, timeout, proxy)
                if isinstance(error, TransportError) and error.unreachable:
                    bases.failed(base)
                    continue
                bases.succeeded(base)
                break
            if on_call is not None:
                on_call(DRAFT_COUNT_PATH, call_outcome(error), time.perf_counter() - started)
            results[index] = DraftCountResult(key, total_count, error)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(items)))))
    return [result for result in results if result is not None]


async def _draft_count(
    session: aiohttp.ClientSession, url: URL, timeout: aiohttp.ClientTimeout, proxy: str | None
) -> tuple[int | None, WeChatError | None]:
    try:
        async with session.get(
            url, timeout=timeout, allow_redirects=False, raise_for_status=False, proxy=proxy or None
        ) as response:
            status = response.status
            body = await response.read()
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return None, _transport_error(exc)
    try:
        return required_int(parse_body(status, body), "total_count"), None
    except WeChatError as exc:
        return None, exc


def _transport_error(exc: BaseException) -> TransportError:
    # Reasons are built from the exception kind: aiohttp messages can include the URL and so the token.
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return TransportError("connect timeout")
    if isinstance(exc, TimeoutError):
        return TransportError("read timeout")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return TransportError(f"connection error: {_os_reason(exc.os_error)}")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return TransportError("connection error: server disconnected")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return TransportError("broken response")
    if isinstance(exc, aiohttp.ClientResponseError):
        return TransportError("invalid HTTP response")
    if isinstance(exc, OSError):
        return TransportError(f"connection error: {_os_reason(exc)}")
    return TransportError(f"request failed ({type(exc).__name__})")


def _os_reason(error: OSError) -> str:
    # A DNS failure (socket.gaierror) carries getaddrinfo's negative EAI_* code, for which os.strerror reads
    # "Unknown error -2": its own text ("Name or service not known") is what the sync client reports too.
    if isinstance(error, socket.gaierror):
        return error.strerror or "name resolution failed"
    # asyncio's strerror reads "Connect call failed ('host', port)"; the errno text matches the sync client.
    return os.strerror(error.errno) if error.errno else type(error).__name__
