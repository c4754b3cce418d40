"""Celery tasks for webhooks: thin, take no arguments, safe to run twice (deliveries are claimed with SKIP
LOCKED and leased)."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.core.cache import cache

from webhooks.services import webhooks_history_prune, webhooks_run
from wxplatform.core.queueing import enqueue, enqueue_on_commit

logger = logging.getLogger(__name__)

# Seconds one task keeps delivering before it hands over to a fresh one: short, so that a backlog (or slow
# receivers, each try bounded by WEBHOOK_TIMEOUT_SECONDS) holds a worker process no longer than a sync chunk.
_BUDGET_SECONDS = 20.0
# One delivery task runs at a time across the deployment (WEBHOOK_CONCURRENCY requests in flight), so that
# however many are queued (each sync chunk that writes events asks for one) and however slow the receivers,
# deliveries take one worker process and the sync keeps the others. The slot expires on its own if the
# worker holding it dies.
_SLOT_KEY = "webhooks:deliver:running"
_SLOT_SECONDS = int(_BUDGET_SECONDS) + 10


@shared_task(name="webhooks.deliver", acks_late=True, soft_time_limit=120, time_limit=150)
def deliver() -> int:
    """Beat (every few seconds) and after events are written: dispatch new events, deliver what is due."""
    try:
        free = cache.add(_SLOT_KEY, "1", timeout=_SLOT_SECONDS)
    except Exception as exc:  # noqa: BLE001 - a cache outage must not stop deliveries; the leases keep them safe
        logger.warning("webhook delivery slot unavailable (%s); delivering anyway", type(exc).__name__)
        free = True
    if not free:
        return 0
    try:
        tries, more = webhooks_run(budget_seconds=_BUDGET_SECONDS)
    finally:
        cache.delete(_SLOT_KEY)
    if more:
        enqueue(deliver)
    return tries


def deliver_soon() -> None:
    """Asks a worker to deliver once the current transaction commits (the beat entry would anyway)."""
    enqueue_on_commit(deliver)


@shared_task(name="webhooks.prune", acks_late=True)
def prune() -> dict[str, int]:
    """Beat (daily): webhook history older than WEBHOOK_RETENTION_DAYS."""
    return webhooks_history_prune(older_than=timedelta(days=settings.WEBHOOK_RETENTION_DAYS))
