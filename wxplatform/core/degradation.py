"""One fact instead of a thousand errors: deciding that WeChat (or the way to it) is degraded for a platform.

The sync reports what its calls of each batch ended as (`observe`). Calls and retryable failures (-1, 45011,
timeouts, connection errors, 5xx: the boundary's call_outcome labels) are counted per platform in one-minute
buckets in Redis, and the distinct accounts that failed in a HyperLogLog per failure kind. A platform is
degraded when, over the last WINDOW, at least DEGRADED_MIN_CALLS calls were made, one retryable failure kind
took at least DEGRADED_SHARE of them, and it hit at least DEGRADED_MIN_ACCOUNTS distinct accounts: one
account's errors, however many, never trip it.

While degraded the sync calls WeChat for a few probe accounts per batch only (`probes_allowed`) and retries
nothing account by account; the other accounts are skipped, their quota unspent. Probes that succeed clear the
state at once; without any sync it lapses after HOLD and is decided again from fresh failures. The state is
shown as `wxp_wechat_degraded{component}`, on the status page, and by the WeChatDegraded alert.

Without Redis (a development setup) or with Redis unreachable nothing is decided: the sync behaves as before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from django.conf import settings
from django.utils.translation import gettext as _
from redis.exceptions import RedisError

from wxplatform.core.errcodes import errcode_label
from wxplatform.core.redis_client import redis_client

logger = logging.getLogger(__name__)

BUCKET_SECONDS = 60
# Retryable outcomes that say "WeChat or the way to it", as labelled by wxplatform.wechat.client.call_outcome.
RETRYABLE_OUTCOMES = frozenset({"-1", "45011", "timeout", "connection", "http_500", "http_502", "http_503", "http_504"})
_UNAVAILABLE = (RedisError, OSError, ValueError)


@dataclass(frozen=True)
class Degraded:
    component_id: int
    since: datetime
    kind: str  # the failure kind that tripped it

    @property
    def kind_label(self) -> str:
        return kind_label(self.kind)


def kind_label(kind: str) -> str:
    """A failure kind in words: an errcode with its meaning, or what the transport saw."""
    if kind.lstrip("-").isdigit():
        return errcode_label(int(kind))
    if kind == "timeout":
        return _("timeouts")
    if kind == "connection":
        return _("connection errors")
    if kind.startswith("http_"):
        return _("HTTP %(status)s answers") % {"status": kind[5:]}
    return kind


def _key(*parts: object) -> str:
    return ":".join([settings.REDIS_KEY_PREFIX, "degraded", *(str(p) for p in parts)])


def _outcome_kind(outcome: str) -> str | None:
    if outcome in RETRYABLE_OUTCOMES:
        return outcome
    if outcome.startswith("http_5"):
        return outcome
    return None


def observe(component_id: int, outcomes: Iterable[tuple[int, str]]) -> Degraded | None:
    """Counts one batch's calls, as (tenant id, call_outcome label) pairs, and decides again; the state after."""
    if not settings.REDIS_URL:
        return None
    pairs = list(outcomes)
    if not pairs:
        return None
    bucket = int(time.time() // BUCKET_SECONDS)
    ttl = settings.WECHAT_DEGRADED_WINDOW + BUCKET_SECONDS
    failures: dict[str, list[int]] = {}
    for tenant_id, outcome in pairs:
        kind = _outcome_kind(outcome)
        if kind is not None:
            failures.setdefault(kind, []).append(tenant_id)
    try:
        client = redis_client()
        pipe = client.pipeline(transaction=False)
        counts = _key(component_id, "calls", bucket)
        pipe.hincrby(counts, "calls", len(pairs))
        for kind, tenants in failures.items():
            pipe.hincrby(counts, f"f:{kind}", len(tenants))
            accounts = _key(component_id, "accounts", kind, bucket)
            pipe.pfadd(accounts, *tenants)
            pipe.expire(accounts, ttl)
        pipe.expire(counts, ttl)
        pipe.execute()
        if not failures:
            # A batch with no retryable failure is a successful probe: the platform is well again.
            if client.delete(_key(component_id)):
                logger.warning("WeChat is answering again for platform %s: the sync resumes", component_id)
            return None
        return _decide(client, component_id, bucket)
    except _UNAVAILABLE as exc:
        logger.warning("degradation not counted: %s", type(exc).__name__)
        return None


def _decide(client: redis.Redis, component_id: int, bucket: int) -> Degraded | None:
    buckets = range(bucket - settings.WECHAT_DEGRADED_WINDOW // BUCKET_SECONDS + 1, bucket + 1)
    calls = 0
    by_kind: dict[str, int] = {}
    for b in buckets:
        fields: dict[bytes, bytes] = client.hgetall(_key(component_id, "calls", b))  # type: ignore[assignment]
        for field, value in fields.items():
            name = field.decode()
            if name == "calls":
                calls += int(value)
            elif name.startswith("f:"):
                by_kind[name[2:]] = by_kind.get(name[2:], 0) + int(value)
    flag = _key(component_id)
    if calls >= settings.WECHAT_DEGRADED_MIN_CALLS and by_kind:
        kind, failed = max(by_kind.items(), key=lambda item: item[1])
        accounts = client.pfcount(*(_key(component_id, "accounts", kind, b) for b in buckets))
        if failed / calls >= settings.WECHAT_DEGRADED_SHARE and accounts >= settings.WECHAT_DEGRADED_MIN_ACCOUNTS:
            now = time.time()
            if client.set(flag, f"{now}:{kind}", nx=True, ex=settings.WECHAT_DEGRADED_HOLD):
                logger.warning(
                    "WeChat looks degraded for platform %s: %d of %d calls failed with %s across %d accounts; "
                    "the sync backs off for the platform and probes",
                    component_id,
                    failed,
                    calls,
                    kind,
                    accounts,
                )
            else:
                client.expire(flag, settings.WECHAT_DEGRADED_HOLD)
    return state(component_id)


def state(component_id: int) -> Degraded | None:
    """The platform's state now: None when not degraded (or when Redis cannot tell)."""
    if not settings.REDIS_URL:
        return None
    try:
        raw: bytes | None = redis_client().get(_key(component_id))  # type: ignore[assignment]
    except _UNAVAILABLE:
        return None
    if raw is None:
        return None
    since, _colon, kind = raw.decode().partition(":")
    return Degraded(component_id, datetime.fromtimestamp(float(since), tz=UTC), kind)


def states(component_ids: Iterable[int]) -> dict[int, Degraded]:
    """The degraded platforms among these, in one round trip."""
    ids = list(component_ids)
    if not settings.REDIS_URL or not ids:
        return {}
    try:
        values: list[bytes | None] = redis_client().mget([_key(i) for i in ids])  # type: ignore[assignment]
    except _UNAVAILABLE:
        return {}
    found: dict[int, Degraded] = {}
    for component_id, raw in zip(ids, values, strict=True):
        if raw is not None:
            since, _colon, kind = raw.decode().partition(":")
            found[component_id] = Degraded(component_id, datetime.fromtimestamp(float(since), tz=UTC), kind)
    return found


def probes_allowed() -> int:
    """How many accounts of a batch may still call WeChat while their platform is degraded."""
    return int(settings.WECHAT_DEGRADED_PROBES)
