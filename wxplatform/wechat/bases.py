"""Another door to WeChat: the API bases in order of preference, each behind a circuit breaker.

WeChat documents `api2.weixin.qq.com` for when `api.weixin.qq.com` cannot be reached, and regional domains
(`sh.`, `sz.`, `hk.api.weixin.qq.com`) (docs/wechat/endpoints.md#api-domains). A call goes to the first base
whose breaker is closed. A connection that could not be made (refused, unreachable, name not resolved, connect
timeout) opens that base's breaker for `cooldown` seconds and the call moves to the next base; WeChat's own
answers, errcodes included, never do. When every breaker is open the base that reopens first is tried anyway, so
a call is never refused for want of a door. After its cool-down an open base is tried again (half-open): one
success closes it.

One instance per process, shared by the requests client, the aiohttp fan-out and the gateway: breaker state
is a per-process view of which door works, rebuilt within one cool-down after a restart. `on_change` is told
when the base in use changes, so the Django side can show it (status page, /readyz).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

__all__ = ["Bases"]

BaseChange = Callable[[str, str], None]  # (previous base, new base)


class Bases:
    def __init__(
        self,
        primary: str,
        fallbacks: Sequence[str] = (),
        *,
        cooldown: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: BaseChange | None = None,
    ) -> None:
        ordered: list[str] = []
        for base in (primary, *fallbacks):
            cleaned = base.strip().rstrip("/")
            if cleaned and cleaned not in ordered:
                ordered.append(cleaned)
        if not ordered:
            raise ValueError("at least one WeChat API base is needed")
        self._bases = tuple(ordered)
        self._cooldown = cooldown
        self._clock = clock
        self._on_change = on_change
        self._open_until: dict[str, float] = {}
        self._lock = threading.Lock()
        self._current = self._bases[0]

    @property
    def all(self) -> tuple[str, ...]:
        return self._bases

    @property
    def primary(self) -> str:
        return self._bases[0]

    def order(self) -> list[str]:
        """The bases to try, in order: closed (or cooled-down) ones by preference, then the open ones by the
        time they reopen."""
        now = self._clock()
        with self._lock:
            closed = [b for b in self._bases if self._open_until.get(b, 0.0) <= now]
            still_open = sorted((b for b in self._bases if b not in closed), key=lambda b: self._open_until[b])
        return closed + still_open

    def current(self) -> str:
        """The base a call would try first now."""
        return self.order()[0]

    def failed(self, base: str) -> None:
        """No connection could be made to `base`: keep it out for the cool-down."""
        with self._lock:
            self._open_until[base] = self._clock() + self._cooldown
        self._note(self.current())

    def succeeded(self, base: str) -> None:
        """`base` answered (whatever it answered): its breaker closes."""
        with self._lock:
            self._open_until.pop(base, None)
        self._note(base)

    def _note(self, base: str) -> None:
        with self._lock:
            previous, self._current = self._current, base
        if previous != base and self._on_change is not None:
            self._on_change(previous, base)
