"""The IP whitelist diagnosis: which of our addresses WeChat refused with 61004, and when it last did.

Any call to WeChat can answer 61004 `access clientip is not registered requestIP: 1.2.3.4 rid: …`: the
component token refresh, an authorizer token refresh, a sync. The requests client reports every error to
`observe_error` (its on_error observer) and the draft/count fan-out's errors are passed here once a batch
ends, so every refusal is recorded with the IP it names (docs/wechat/flow.md#ip-whitelist). The platform
status page and the `whitelist` condition of /readyz show what to add to the platform's whitelist; the state
series `wxp_whitelist_refused_last_seen_timestamp_seconds{request_ip}` is what the alert reads.

Refusals are kept in Django's cache (Redis, or the file cache without it), not in the database: they are
recorded in whatever transaction the failed call ran in, and a diagnosis must survive that transaction
rolling back. A refusal is shown for WINDOW after it was last seen: an address that is still refused is
refused again on the next call (syncs and token refreshes run every few minutes), and one that was added
to the whitelist drops off by itself. Two processes recording different addresses at the same instant may
lose one of them until its next refusal; that is the price of no lock on a diagnostic.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from django.core.cache import cache
from django.utils import timezone

from wxplatform.wechat.errors import WHITELIST_REFUSED, WeChatError, refused_ip

logger = logging.getLogger(__name__)

CACHE_KEY = "wxp:egress:whitelist-refusals"
WINDOW = timedelta(hours=1)
# WeChat's whitelist holds at most 100 addresses; a deployment has a handful of egress IPs.
MAX_ADDRESSES = 20
# A 61004 whose errmsg names no address.
UNKNOWN = ""


@dataclass(frozen=True)
class Refusal:
    request_ip: str  # UNKNOWN when WeChat did not name it
    endpoint: str
    first_seen: datetime
    last_seen: datetime
    count: int


def observe_error(endpoint: str, error: WeChatError) -> None:
    """The WeChat client's on_error observer; records 61004s, ignores the rest. Never raises."""
    if error.errcode != WHITELIST_REFUSED:
        return
    address = refused_ip(error) or UNKNOWN
    logger.warning(
        "WeChat refused this server's IP (61004): add %s to the platform's IP whitelist",
        address or "the egress IP",
        extra={"endpoint": endpoint, "request_ip": address},
    )
    now = timezone.now().timestamp()
    try:
        entries = _load()
        entry = entries.get(address) or {"first": now, "count": 0}
        count = int(entry["count"]) + 1
        entries[address] = {"first": entry["first"], "last": now, "endpoint": endpoint[:64], "count": count}
        newest = sorted(entries.items(), key=lambda item: item[1]["last"], reverse=True)[:MAX_ADDRESSES]
        cache.set(CACHE_KEY, dict(newest), timeout=int(WINDOW.total_seconds()))
    except (redis.RedisError, OSError, ValueError, TypeError, KeyError) as exc:
        logger.warning("61004 diagnosis not recorded: %s", type(exc).__name__)


def observe_errors(endpoint: str, errors: Iterable[WeChatError | None]) -> None:
    """The same for a batch (the draft/count fan-out, whose observer runs inside its event loop)."""
    for error in errors:
        if error is not None and error.errcode == WHITELIST_REFUSED:
            observe_error(endpoint, error)


def refusals(*, now: datetime | None = None) -> list[Refusal]:
    """Addresses refused within WINDOW, most recent first. Empty when the cache cannot be read."""
    now = now or timezone.now()
    try:
        entries = _load()
        found = [
            Refusal(
                request_ip=address,
                endpoint=str(entry["endpoint"]),
                first_seen=datetime.fromtimestamp(float(entry["first"]), tz=UTC),
                last_seen=datetime.fromtimestamp(float(entry["last"]), tz=UTC),
                count=int(entry["count"]),
            )
            for address, entry in entries.items()
        ]
    except (redis.RedisError, OSError, ValueError, TypeError, KeyError) as exc:
        logger.warning("61004 diagnosis unavailable: %s", type(exc).__name__)
        return []
    return sorted((r for r in found if now - r.last_seen <= WINDOW), key=lambda r: r.last_seen, reverse=True)


def whitelist_readiness() -> str | None:
    """The `whitelist` condition of /readyz: None, or what to add to the platform's whitelist."""
    found = refusals()
    if not found:
        return None
    return "; ".join(
        f"add {r.request_ip or 'the egress IP WeChat saw'} to the platform's IP whitelist "
        f"(WeChat refused it with 61004, last seen {r.last_seen:%Y-%m-%dT%H:%M:%SZ})"
        for r in found
    )


# --- Which door to WeChat is in use (wxplatform/wechat/bases.py) ---------------------------------------

BASE_CACHE_KEY = "wxp:egress:base"


def record_base_change(previous: str, current: str) -> None:
    """The bases' on_change observer: logs the switch and records the base now in use and since when, for the
    status page and /readyz. Several processes each keep their own breakers; the newest switch is shown."""
    logger.warning("WeChat API base changed from %s to %s", previous, current, extra={"base": current})
    try:
        cache.set(BASE_CACHE_KEY, {"base": current, "since": timezone.now().timestamp()}, timeout=None)
    except (redis.RedisError, OSError, ValueError, TypeError) as exc:
        logger.warning("WeChat base change not recorded: %s", type(exc).__name__)


@dataclass(frozen=True)
class BaseInUse:
    base: str
    since: datetime | None  # None: the primary, never switched away from


def base_in_use(primary: str) -> BaseInUse:
    stored = cache.get(BASE_CACHE_KEY)
    if not isinstance(stored, dict) or not isinstance(stored.get("base"), str):
        return BaseInUse(primary, None)
    since = datetime.fromtimestamp(float(stored.get("since", 0)), tz=UTC)
    return BaseInUse(str(stored["base"]), since)


def base_readiness(primary: str) -> str | None:
    """The `wechat_base` condition of /readyz: None on the primary base, else which base and since when."""
    used = base_in_use(primary)
    if used.base == primary.rstrip("/"):
        return None
    assert used.since is not None
    return f"calls go to {used.base} since {used.since:%Y-%m-%dT%H:%M:%SZ} ({primary} could not be reached)"


def _load() -> dict[str, dict[str, Any]]:
    stored = cache.get(CACHE_KEY)
    return dict(stored) if isinstance(stored, dict) else {}
