"""The push log: every push to either WeChat URL, as received (the query and the encrypted envelope), with
what it was answered and how long that took. Kept PUSH_LOG_RETENTION_DAYS days.

Anyone can post garbage to the public URLs, so rejected pushes are bounded: at most
PUSH_LOG_REJECTED_PER_MINUTE of them are stored per minute (a Redis counter, as the API throttle uses; while
Redis is unreachable, each process's own count), with the body cut short; the rest are only counted, in
wxp_pushes_total and, as rows not stored, in wxp_push_log_dropped_total. Writing the log never fails a push.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from tenants.models import PushEndpoint, PushLog, PushOutcome
from tenants.receiving import Answer, receive_push
from wxplatform.component.models import Platform
from wxplatform.component.services import component_get
from wxplatform.core import metrics
from wxplatform.core.throttling import window_count_or_local

logger = logging.getLogger(__name__)

# Only these query parameters are kept: what WeChat sends (docs/wechat/message-url.md#message-request).
_QUERY_KEPT = ("signature", "timestamp", "nonce", "openid", "encrypt_type", "msg_signature")
_QUERY_VALUE_MAX = 128


# The labels of wxp_pushes_total (wxplatform.core.metrics.record_push, deploy/prometheus/alerts.yml).
_PUSH_URL_LABELS = {PushEndpoint.COMPONENT: "component", PushEndpoint.MESSAGE: "authorizer"}


def _push_outcome(answer: Answer) -> str:
    if answer.outcome != PushOutcome.REJECTED:
        return "ok"
    if answer.error_code == "bad_signature":
        return "bad_signature"
    if answer.error_code == "bad_message":
        return "undecryptable"
    return "rejected"


def rejected_budget_key(at: float) -> str:
    return f"{settings.REDIS_KEY_PREFIX}:pushlog:rejected:{int(at // 60)}"


def _rejected_budget_left() -> bool:
    now = time.time()
    key = rejected_budget_key(now)
    count = window_count_or_local(key, ttl=61, remaining=60 - now % 60, overflow_key=key)
    return count <= int(settings.PUSH_LOG_REJECTED_PER_MINUTE)


def push_unavailable_record(*, endpoint: PushEndpoint, component_appid: str, duration: float) -> None:
    """Counts a push answered 503 because the database is unavailable. Its platform cannot be looked up then:
    the default platform's URLs are counted under its appid, any other platform's under "unknown", so that
    requests naming made-up platforms cannot mint series. Not stored (the log is in the database)."""
    known = not component_appid or component_appid == settings.WECHAT_COMPONENT_APPID
    metrics.record_push(
        _PUSH_URL_LABELS[endpoint],
        component=settings.WECHAT_COMPONENT_APPID if known else "unknown",
        kind=None,
        outcome="unavailable",
        seconds=duration,
    )
    metrics.record_push_log_dropped("database")


def push_log_record(
    component: Platform,
    *,
    endpoint: PushEndpoint,
    answer: Answer,
    query: Mapping[str, str],
    body: bytes | None,
    duration: float,
) -> PushLog | None:
    """Stores one push (None when the rejected-push budget is spent or the database refuses)."""
    metrics.record_push(
        _PUSH_URL_LABELS[endpoint],
        component=component.component_appid,
        kind=answer.kind if answer.signature_ok else None,
        outcome=_push_outcome(answer),
        seconds=duration,
    )
    limit: int | None = None
    if answer.outcome == PushOutcome.REJECTED:
        if not _rejected_budget_left():
            metrics.record_push_log_dropped("budget")
            return None
        limit = settings.PUSH_LOG_REJECTED_BODY_BYTES
    raw = body or b""
    kept = raw if limit is None else raw[:limit]
    try:
        return PushLog.objects.create(
            received_at=timezone.now(),
            endpoint=endpoint,
            component_appid=component.component_appid,
            authorizer_appid=answer.authorizer_appid[:64],
            kind=answer.kind[:80],
            signature_ok=answer.signature_ok,
            decrypted=answer.decrypted,
            outcome=answer.outcome,
            status_code=answer.status,
            error_code=answer.error_code,
            duration_ms=round(duration * 1000, 3),
            # PostgreSQL text (and jsonb) cannot hold NUL; what WeChat sends is ASCII anyway.
            query={k: query[k][:_QUERY_VALUE_MAX].replace("\x00", "\ufffd") for k in _QUERY_KEPT if k in query},
            body=kept.decode("utf-8", "replace").replace("\x00", "\ufffd"),
            body_truncated=body is None or len(kept) < len(raw),
        )
    except DatabaseError as exc:
        logger.warning("push not logged: %s", type(exc).__name__)
        metrics.record_push_log_dropped("database")
        return None


def push_replay(*, push: PushLog) -> Answer:
    """Runs the handler again on a stored push (its signature is verified again; its age is not checked).
    Idempotent because the handlers are: a ticket older than the stored one is ignored, codes and messages are
    keyed, revocations older than the authorization change nothing."""
    answer = receive_push(
        component_get(push.component_appid),
        endpoint=PushEndpoint(push.endpoint),
        body=push.body.encode("utf-8"),
        query={str(k): str(v) for k, v in push.query.items()},
        authorizer_appid=push.authorizer_appid,
        check_age=False,
    )
    PushLog.objects.filter(pk=push.pk).update(replayed_at=timezone.now())
    return answer
