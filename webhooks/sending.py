"""The HTTP side of deliveries: many signed POSTs at once, each bounded in time, none able to slow the others.

One aiohttp session per batch; its connector allows `concurrency` connections, resolves names through
targets.CheckedResolver (no DNS cache, so every batch resolves and checks again) and never follows redirects
(a redirect could point anywhere, the checks would not see it). Nothing is raised per request: each outcome
says what the receiver answered, or why there was no answer, in input order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
from django.utils.translation import gettext as _

from webhooks.targets import CheckedResolver, TargetRefused, url_problem

USER_AGENT = "wxplatform-webhooks/1"
# Answers are not read beyond this: the status code is what counts.
_MAX_ANSWER_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Request:
    key: int
    url: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Outcome:
    key: int
    status_code: int | None
    duration_ms: int
    error: str

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def send_all(requests: Sequence[Request], *, concurrency: int, timeout: float, allow_private: bool) -> list[Outcome]:
    if not requests:
        return []
    return asyncio.run(_send_all(requests, concurrency=concurrency, timeout=timeout, allow_private=allow_private))


async def _send_all(
    requests: Sequence[Request], *, concurrency: int, timeout: float, allow_private: bool
) -> list[Outcome]:
    connector = aiohttp.TCPConnector(
        limit=max(1, concurrency), resolver=CheckedResolver(allow_private=allow_private), use_dns_cache=False
    )
    gate = asyncio.Semaphore(max(1, concurrency))
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout, trust_env=False) as session:
        return list(await asyncio.gather(*(_send(session, gate, r, timeout, allow_private) for r in requests)))


async def _send(
    session: aiohttp.ClientSession, gate: asyncio.Semaphore, request: Request, timeout: float, allow_private: bool
) -> Outcome:
    async with gate:
        started = time.monotonic()

        def outcome(status_code: int | None, error: str = "") -> Outcome:
            duration = int((time.monotonic() - started) * 1000)
            return Outcome(request.key, status_code, duration, error[:255])

        # Checked again at delivery: the setting may have changed, and literal addresses skip the resolver.
        problem = url_problem(request.url, allow_private=allow_private)
        if problem is not None:
            return outcome(None, problem)
        headers = {"content-type": "application/json", "user-agent": USER_AGENT, **request.headers}
        try:
            async with session.post(request.url, data=request.body, headers=headers, allow_redirects=False) as answer:
                await answer.content.read(_MAX_ANSWER_BYTES)
                return outcome(answer.status)
        except TimeoutError:
            return outcome(None, _("No answer within %(seconds)s s.") % {"seconds": f"{timeout:g}"})
        except aiohttp.ClientConnectorError as exc:
            cause = exc.__cause__
            if isinstance(cause, TargetRefused):
                return outcome(None, str(cause))
            return outcome(None, _("Could not connect: %(reason)s") % {"reason": exc.strerror or type(exc).__name__})
        except aiohttp.ClientError as exc:
            return outcome(None, _("The connection failed: %(reason)s") % {"reason": type(exc).__name__})
