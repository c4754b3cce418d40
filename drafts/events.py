"""Reading a count again when WeChat says the draft box changed (docs/wechat/draft-events.md).

A publish or a mass send of a draft takes it out of the box, and WeChat pushes PUBLISHJOBFINISH or
MASSSENDJOBFINISH to the message-and-event URL when the job ends. tenants.messages announces those events
(tenants.signals.draft_box_changed) while WeChat waits for its answer, so receiving one only decides and queues:

- only for accounts the sync may call: active, eligible, not a test account, not paused, within the quota budget
  of the event trigger (drafts.rules.skip_reason, which the sync applies again when it runs);
- debounced: the first event of a burst sets a short-lived key per tenant (SET NX, DRAFT_EVENT_DEBOUNCE) and queues
  one read with that countdown; the events that find the key set are covered by that read, which runs after them;
- bounded: at most DRAFT_EVENT_SYNC_RATE event-triggered reads per account (a fixed window in Redis).

An event that is not read at once (the bound reached, the events' quota share used, Redis down) makes the account
due at the next scheduled run instead (draft_count_poll_soon, docs/polling.md#poll-soon).

The read is an ordinary sync (drafts.sync.sync_tenants, trigger "event"): the count, the snapshot, the
draft_count.changed webhook and the attempt are written as for any other.
"""

from __future__ import annotations

import logging
import time

from celery import Task
from django.conf import settings
from django.core.cache import cache
from django.db.models import F
from django.db.models.functions import Least
from django.utils import timezone

from drafts.models import SyncTrigger
from drafts.rules import TenantResult, skip_reason
from drafts.sync import SYNC_FIELDS, sync_tenants
from tenants.models import Tenant
from tenants.selectors import syncable_tenants
from wxplatform.core.queueing import enqueue_on_commit
from wxplatform.core.redis_client import redis_client
from wxplatform.core.throttling import UNAVAILABLE, window_exceeded

logger = logging.getLogger(__name__)


def draft_count_event_receive(
    *, component_id: int, authorizer_appid: str, event: str, read: Task[[int, float], None]
) -> bool:
    """Schedules a read of the account's count after a draft-box event (the task `read`, drafts.tasks.sync_event),
    unless one is already scheduled, the account may not be called or its bound is reached. True if a read was
    scheduled. Quick: one indexed query, two Redis commands, and the task queued after commit."""
    tenant = (
        syncable_tenants()
        .filter(component_id=component_id, authorizer_appid=authorizer_appid)
        .only(*SYNC_FIELDS)
        .first()
    )
    if tenant is None:
        # Not ours, revoked, ineligible, a test account or its platform switched off: nothing to read.
        logger.info("draft event ignored: no syncable account", extra={"appid": authorizer_appid, "event": event})
        return False
    reason = skip_reason(tenant, trigger=SyncTrigger.EVENT, now=timezone.now())
    if reason is not None:
        # Paused or over the events' quota share: the schedule reads it when its own rules allow.
        logger.info("draft event deferred: %s", reason, extra={"appid": authorizer_appid, "event": event})
        return _defer(tenant.pk)
    try:
        if not _debounce_start(tenant.pk):
            return False
    except UNAVAILABLE as exc:
        # Without Redis the broker is down too.
        logger.warning("draft event deferred, Redis unavailable: %s", type(exc).__name__)
        return _defer(tenant.pk)
    if window_exceeded(scope="draft_event", ident=str(tenant.pk), rate=settings.DRAFT_EVENT_SYNC_RATE) is not None:
        logger.info("draft event deferred: per-account bound reached", extra={"appid": authorizer_appid})
        return _defer(tenant.pk)
    # The read runs once the burst's window has passed, so that it sees every change the burst announced.
    enqueue_on_commit(read, tenant.pk, time.time(), countdown=settings.DRAFT_EVENT_DEBOUNCE)
    return True


def draft_count_poll_soon(*, tenant_id: int) -> bool:
    """Makes the account due at the next scheduled run and restarts its quiet time, so that it is polled at the
    floor interval for a while (docs/polling.md#poll-soon). For callers that learn the draft box changed or is
    about to (WeChat's publish and mass-send events); one UPDATE, never a call to WeChat. False if no such
    tenant. A poll already due earlier keeps its time."""
    now = timezone.now()
    return bool(
        Tenant.objects.filter(pk=tenant_id).update(next_poll_at=Least(F("next_poll_at"), now), draft_activity_at=now)
    )


def _defer(tenant_id: int) -> bool:
    """An event not read at once: the account is due at the next scheduled run, and polled at the floor for a while
    (docs/polling.md#poll-soon). A read that does happen needs no such nudge: the change it finds restarts the
    quiet time, and a nudge would cost one more call at the next beat. Returns False (no read scheduled)."""
    draft_count_poll_soon(tenant_id=tenant_id)
    return False


def _debounce_start(tenant_id: int) -> bool:
    """Opens the tenant's debounce window; False if one is open (a read is already scheduled)."""
    key = f"{settings.REDIS_KEY_PREFIX}:drafts:event-read:{tenant_id}"
    window_ms = max(1, int(settings.DRAFT_EVENT_DEBOUNCE * 1000))
    if settings.REDIS_URL:
        return bool(redis_client().set(key, 1, px=window_ms, nx=True))
    # The Django cache (a file cache without Redis) counts in whole seconds.
    return bool(cache.add(key, 1, timeout=max(1, round(settings.DRAFT_EVENT_DEBOUNCE))))


def draft_count_event_sync(*, tenant_id: int, received_at: float) -> TenantResult | None:
    """The read an event scheduled (`received_at`: when the first event of the burst arrived, Unix seconds). None
    if the tenant may no longer be called, or its count was read after the burst already (a redelivered task)."""
    tenant = syncable_tenants().filter(pk=tenant_id).only(*SYNC_FIELDS).first()
    if tenant is None:
        return None
    fetched_at = tenant.draft_count_fetched_at
    if fetched_at is not None and fetched_at.timestamp() >= received_at + settings.DRAFT_EVENT_DEBOUNCE:
        return None
    report = sync_tenants([tenant], trigger=SyncTrigger.EVENT)
    return report.results[0] if report is not None and report.results else None
