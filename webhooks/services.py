"""Writes for webhooks: endpoints (create, change, delete, rotate the secret), the fan-out of outbox events to
the endpoints subscribed to them, and their delivery with retries.

Delivery follows Standard Webhooks (https://www.standardwebhooks.com/): a JSON body
`{"id", "type", "created_at", "data"}` and the headers webhook-id (the event's id, the same on every retry,
for the receiver to deduplicate), webhook-timestamp (this try) and webhook-signature (`v1,<base64 HMAC-SHA256
of "id.timestamp.body">`, computed by the `standardwebhooks` package). Delivery is at least once: a try is
recorded after it ends, so a worker that dies mid-try leaves the delivery to be tried again once its lease
(`next_attempt_at`) passes.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from standardwebhooks.webhooks import Webhook

from tenants.models import TEST_EVENT_TYPE, EventType, OutboxEvent, Tenant
from webhooks.models import Delivery, DeliveryAttempt, DeliveryState, Endpoint
from webhooks.sending import Outcome, Request, send_all
from webhooks.targets import resolved_problem
from wxplatform.core.backoff import backoff_delay
from wxplatform.core.bulk_update import BulkUpdate
from wxplatform.core.pruning import delete_in_batches
from wxplatform.core.times import machine_time

logger = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
# Outbox events fanned out per transaction.
_DISPATCH_BATCH = 1000
# Rounds of WEBHOOK_CONCURRENCY tries per claimed batch.
_ROUNDS = 4


class InvalidEndpoint(Exception):
    """The endpoint cannot be saved as asked; `field` and `code` say what, `message` says why."""

    def __init__(self, field: str, code: str, message: str) -> None:
        self.field, self.code, self.message = field, code, message
        super().__init__(message)


def new_secret() -> str:
    """A Standard Webhooks secret: "whsec_" and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _check_url(url: str) -> None:
    problem = resolved_problem(url)
    if problem is not None:
        raise InvalidEndpoint("url", "invalid_url", problem)


def _check_events(events: Sequence[str]) -> list[str]:
    known = set(EventType.values)
    unknown = [e for e in events if e not in known]
    if unknown:
        message = _("%(event)s is not an event type; choose from %(types)s.") % {
            "event": unknown[0],
            "types": ", ".join(EventType.values),
        }
        raise InvalidEndpoint("events", "invalid_events", message)
    if not events:
        raise InvalidEndpoint("events", "invalid_events", _("Subscribe to at least one event type."))
    return sorted(set(events))


@transaction.atomic
def endpoint_create(*, tenant: Tenant, url: str, events: Sequence[str]) -> tuple[Endpoint, str]:
    """A new endpoint and its signing secret (returned once; stored encrypted)."""
    chosen = _check_events(events)
    _check_url(url)
    # Locked so that two concurrent creations cannot both pass the limit.
    Tenant.objects.select_for_update().filter(pk=tenant.pk).first()
    if Endpoint.objects.filter(tenant=tenant).count() >= settings.WEBHOOK_MAX_ENDPOINTS:
        message = _("An account may have at most %(count)s webhooks.") % {"count": settings.WEBHOOK_MAX_ENDPOINTS}
        raise InvalidEndpoint("url", "too_many_webhooks", message)
    secret = new_secret()
    endpoint = Endpoint.objects.create(tenant=tenant, url=url, events=chosen, secret=secret)
    return endpoint, secret


def endpoint_update(
    *, endpoint: Endpoint, url: str | None = None, events: Sequence[str] | None = None, enabled: bool | None = None
) -> Endpoint:
    """Changes what was given. Re-enabling clears the reason it was disabled and resumes its deliveries."""
    fields = ["updated_at"]
    if events is not None:
        endpoint.events = _check_events(events)
        fields.append("events")
    if url is not None:
        _check_url(url)
        endpoint.url = url
        fields.append("url")
    if enabled is not None and enabled != endpoint.enabled:
        endpoint.enabled = enabled
        if enabled:
            endpoint.disabled_reason, endpoint.disabled_at, endpoint.failing_since = "", None, None
        else:
            endpoint.disabled_reason, endpoint.disabled_at = _("Disabled by the merchant."), timezone.now()
        fields += ["enabled", "disabled_reason", "disabled_at", "failing_since"]
    endpoint.save(update_fields=fields)
    return endpoint


def endpoint_delete(*, endpoint: Endpoint) -> None:
    endpoint.delete()


def endpoint_rotate_secret(*, endpoint: Endpoint) -> str:
    """A new signing secret, effective for every try from now on (returned once)."""
    secret = new_secret()
    endpoint.secret = secret
    endpoint.save(update_fields=["secret", "updated_at"])
    return secret


@transaction.atomic
def webhook_test_send(*, endpoint: Endpoint) -> OutboxEvent:
    """A `webhook.test` event for this endpoint only, delivered like any other (staff's "send test event")."""
    now = timezone.now()
    data: dict[str, object] = {"appid": endpoint.tenant.authorizer_appid, "endpoint_id": str(endpoint.pk)}
    event = OutboxEvent.objects.create(
        tenant_id=endpoint.tenant_id, type=TEST_EVENT_TYPE, payload=data, created_at=now, dispatched_at=now
    )
    Delivery.objects.create(event=event, endpoint=endpoint, tenant_id=endpoint.tenant_id, next_attempt_at=now)
    return event


# --- Fan-out -----------------------------------------------------------------------------------------


def events_dispatch(*, limit: int = _DISPATCH_BATCH) -> int:
    """Turns undispatched outbox events into deliveries for the enabled endpoints subscribed to them; events
    nobody subscribed to are marked dispatched with no delivery. Returns how many events it handled."""
    now = timezone.now()
    with transaction.atomic():
        # SKIP LOCKED: concurrent dispatchers take disjoint events.
        events = list(
            OutboxEvent.objects.select_for_update(skip_locked=True)
            .filter(dispatched_at__isnull=True)
            .order_by("created_at")
            .only("id", "tenant_id", "type")[:limit]
        )
        if not events:
            return 0
        subscriptions: dict[int, list[tuple[uuid.UUID, list[str]]]] = defaultdict(list)
        for pk, tenant_id, types in Endpoint.objects.filter(
            tenant_id__in={e.tenant_id for e in events}, enabled=True
        ).values_list("pk", "tenant_id", "events"):
            subscriptions[tenant_id].append((pk, types))
        deliveries = [
            Delivery(event_id=e.pk, endpoint_id=pk, tenant_id=e.tenant_id, next_attempt_at=now)
            for e in events
            for pk, types in subscriptions.get(e.tenant_id, ())
            if e.type in types
        ]
        Delivery.objects.bulk_create(deliveries, ignore_conflicts=True)
        OutboxEvent.objects.filter(pk__in=[e.pk for e in events]).update(dispatched_at=now)
    return len(events)


# --- Delivery ----------------------------------------------------------------------------------------


def _batch_size() -> int:
    """Deliveries claimed at once: a few rounds of WEBHOOK_CONCURRENCY, so that the database work of claiming
    and recording is shared by many tries."""
    return max(1, int(settings.WEBHOOK_CONCURRENCY)) * _ROUNDS


def _lease() -> timedelta:
    """How long a claimed delivery is left alone: longer than its whole batch can take (each round of tries
    is bounded by the timeout), and its recording."""
    return timedelta(seconds=(_ROUNDS + 1) * settings.WEBHOOK_TIMEOUT_SECONDS + 2)


def deliveries_claim(*, limit: int) -> list[Delivery]:
    """Takes up to `limit` due deliveries of enabled endpoints, at most WEBHOOK_CONCURRENCY_PER_ENDPOINT per
    endpoint (so that one slow receiver cannot take every slot), and leases them."""
    now = timezone.now()
    per_endpoint = max(1, settings.WEBHOOK_CONCURRENCY_PER_ENDPOINT)
    with transaction.atomic():
        candidates = list(
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(state=DeliveryState.PENDING, next_attempt_at__lte=now, endpoint__enabled=True)
            .order_by("next_attempt_at")
            .values_list("pk", "endpoint_id")[: limit * per_endpoint]
        )
        taken: dict[object, int] = defaultdict(int)
        chosen: list[int] = []
        for pk, endpoint_id in candidates:
            if taken[endpoint_id] < per_endpoint and len(chosen) < limit:
                taken[endpoint_id] += 1
                chosen.append(pk)
        if not chosen:
            return []
        Delivery.objects.filter(pk__in=chosen).update(next_attempt_at=now + _lease())
    return list(Delivery.objects.filter(pk__in=chosen).select_related("event", "endpoint", "endpoint__tenant"))


def event_body(event: OutboxEvent) -> bytes:
    envelope = {
        "id": str(event.pk),
        "type": event.type,
        "created_at": machine_time(event.created_at),
        "data": event.payload,
    }
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


def signed_request(delivery: Delivery, *, at: datetime) -> Request:
    body = event_body(delivery.event)
    msg_id = str(delivery.event_id)
    # standardwebhooks reads the timestamp as UTC: hand it a UTC time.
    at_utc = at.astimezone(UTC)
    signature = Webhook(delivery.endpoint.secret).sign(msg_id, at_utc, body.decode())
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(int(at_utc.timestamp())), "webhook-signature": signature}
    return Request(key=delivery.pk, url=delivery.endpoint.url, body=body, headers=headers)


def deliveries_send(deliveries: Sequence[Delivery]) -> list[Outcome]:
    now = timezone.now()
    return send_all(
        [signed_request(d, at=now) for d in deliveries],
        concurrency=settings.WEBHOOK_CONCURRENCY,
        timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
        allow_private=settings.WEBHOOK_ALLOW_PRIVATE_TARGETS,
    )


@dataclass(frozen=True)
class BatchReport:
    succeeded: int
    retried: int
    failed: int


def _retry_delay(attempts: int) -> timedelta:
    return timedelta(
        seconds=backoff_delay(
            attempts, base=settings.WEBHOOK_RETRY_BASE_SECONDS, cap=settings.WEBHOOK_RETRY_MAX_SECONDS
        )
    )


# NULLs stay out of VALUES (PostgreSQL could not infer their column's type): flags say which columns are empty.
_DELIVERIES_UPDATE = BulkUpdate(
    table=Delivery._meta.db_table,
    columns=("id", "attempts", "status", "has_status", "error", "state", "next_at", "has_next", "finished"),
    assignments=(
        "attempts = v.attempts, last_attempt_at = %(now)s, "
        "last_status_code = CASE WHEN v.has_status THEN v.status ELSE NULL END, last_error = v.error, "
        "state = v.state, next_attempt_at = CASE WHEN v.has_next THEN v.next_at ELSE NULL END, "
        "finished_at = CASE WHEN v.finished THEN %(now)s ELSE NULL END"
    ),
)


def _deliveries_write(deliveries: Sequence[Delivery], *, now: datetime) -> None:
    """One UPDATE for a batch's deliveries (wxplatform.core.bulk_update: the ORM's bulk_update would compile a
    CASE branch per row and field, most of a batch's time)."""
    ops = connection.ops
    at = ops.adapt_datetimefield_value(now)
    rows = [
        _DELIVERIES_UPDATE.row(
            id=d.pk,
            attempts=d.attempts,
            status=d.last_status_code or 0,
            has_status=d.last_status_code is not None,
            error=d.last_error,
            state=d.state,
            next_at=ops.adapt_datetimefield_value(d.next_attempt_at) if d.next_attempt_at else at,
            has_next=d.next_attempt_at is not None,
            finished=d.finished_at is not None,
        )
        for d in deliveries
    ]
    _DELIVERIES_UPDATE.execute(rows, {"now": at})


@transaction.atomic
def deliveries_record(deliveries: Sequence[Delivery], outcomes: Sequence[Outcome]) -> BatchReport:
    """Writes each try's outcome: the attempt row, the delivery's next step, and the endpoint's health."""
    now = timezone.now()
    by_pk = {d.pk: d for d in deliveries}
    window = timedelta(hours=settings.WEBHOOK_RETRY_HOURS)
    attempts: list[DeliveryAttempt] = []
    ok_endpoints: set[object] = set()
    failing: dict[object, str] = {}
    succeeded = retried = failed = 0
    # Locked, and only those still pending: a delivery that another worker finished meanwhile (it took over
    # after this try overran its lease) is not reopened; this try is still recorded as an attempt, since it
    # did reach the receiver or fail to. Then one bulk UPDATE for the batch.
    pending = dict(
        Delivery.objects.select_for_update()
        .filter(pk__in=list(by_pk), state=DeliveryState.PENDING)
        .order_by("pk")
        .values_list("pk", "attempts")
    )
    changed: list[Delivery] = []
    for outcome in outcomes:
        delivery = by_pk[outcome.key]
        attempts.append(
            DeliveryAttempt(
                delivery=delivery,
                tenant_id=delivery.tenant_id,
                at=now - timedelta(milliseconds=outcome.duration_ms),
                status_code=outcome.status_code,
                duration_ms=outcome.duration_ms,
                error=outcome.error,
            )
        )
        error = outcome.error or (_("HTTP %(status)s") % {"status": outcome.status_code})
        if outcome.succeeded:
            ok_endpoints.add(delivery.endpoint_id)
            succeeded += 1
        else:
            failing[delivery.endpoint_id] = error
        if delivery.pk not in pending:
            continue
        delivery.attempts = pending[delivery.pk] + 1
        delivery.last_attempt_at = now
        delivery.last_status_code = outcome.status_code
        delivery.last_error = "" if outcome.succeeded else error[:255]
        if outcome.succeeded:
            delivery.state, delivery.next_attempt_at, delivery.finished_at = DeliveryState.SUCCEEDED, None, now
        else:
            retry_at = now + _retry_delay(delivery.attempts)
            if retry_at - delivery.event.created_at > window:
                delivery.state, delivery.next_attempt_at, delivery.finished_at = DeliveryState.FAILED, None, now
                failed += 1
            else:
                delivery.next_attempt_at = retry_at
                retried += 1
        changed.append(delivery)
    _deliveries_write(changed, now=now)
    DeliveryAttempt.objects.bulk_create(attempts)
    _endpoints_health(ok_endpoints, {k: v for k, v in failing.items() if k not in ok_endpoints}, now)
    return BatchReport(succeeded=succeeded, retried=retried, failed=failed)


def _endpoints_health(ok: set[object], failing: dict[object, str], now: datetime) -> None:
    # Locked in id order first: two batches touching the same endpoints then wait for each other, never
    # deadlock.
    list(Endpoint.objects.select_for_update().filter(pk__in=[*ok, *failing]).order_by("pk").values_list("pk"))
    if ok:
        Endpoint.objects.filter(pk__in=ok, failing_since__isnull=False).update(failing_since=None)
    if not failing:
        return
    Endpoint.objects.filter(pk__in=failing, failing_since__isnull=True).update(failing_since=now)
    cutoff = now - timedelta(hours=settings.WEBHOOK_DISABLE_AFTER_HOURS)
    for pk in Endpoint.objects.filter(pk__in=failing, enabled=True, failing_since__lte=cutoff).values_list(
        "pk", flat=True
    ):
        reason = _("Every delivery failed for %(hours)s hours; last error: %(error)s") % {
            "hours": f"{settings.WEBHOOK_DISABLE_AFTER_HOURS:g}",
            "error": failing[pk],
        }
        Endpoint.objects.filter(pk=pk, enabled=True).update(
            enabled=False, disabled_at=now, disabled_reason=reason[:255], updated_at=now
        )
        logger.warning("webhook endpoint disabled", extra={"endpoint": str(pk)})


def webhooks_run(*, budget_seconds: float) -> tuple[int, bool]:
    """Dispatches new events and delivers due ones, batch after batch, for about `budget_seconds` (one batch
    takes at most WEBHOOK_TIMEOUT_SECONDS). Returns the tries made and whether work was left over."""
    deadline = time.monotonic() + budget_seconds
    tries = 0
    while True:
        dispatched = events_dispatch()
        batch = deliveries_claim(limit=_batch_size())
        if not batch and dispatched < _DISPATCH_BATCH:
            return tries, False
        if batch:
            deliveries_record(batch, deliveries_send(batch))
            tries += len(batch)
        if time.monotonic() >= deadline:
            return tries, True


def webhooks_history_prune(*, older_than: timedelta) -> dict[str, int]:
    """Deletes finished deliveries (with their attempts) and dispatched events older than `older_than`, in
    batches; an event with a delivery still pending is kept whatever its age."""
    cutoff = timezone.now() - older_than
    deliveries = delete_in_batches(Delivery.objects.filter(finished_at__lt=cutoff))
    still_pending = Delivery.objects.filter(state=DeliveryState.PENDING).values("event_id")
    events = delete_in_batches(
        OutboxEvent.objects.filter(dispatched_at__isnull=False, created_at__lt=cutoff).exclude(pk__in=still_pending)
    )
    return {"deliveries": deliveries, "events": events}
