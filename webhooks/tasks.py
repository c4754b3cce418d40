"""Celery tasks for webhooks: thin, take no arguments, safe to run twice or side by side (deliveries are
claimed with SKIP LOCKED and leased)."""

from __future__ import annotations

from celery import shared_task

from webhooks.services import webhooks_run
from wxplatform.queueing import enqueue, enqueue_on_commit

# Seconds one task keeps delivering before it hands over to a fresh one: short, so that a backlog (or slow
# receivers, each try bounded by WEBHOOK_TIMEOUT_SECONDS) holds a worker process no longer than a sync chunk.
_BUDGET_SECONDS = 20.0


@shared_task(name="webhooks.deliver", acks_late=True, soft_time_limit=120, time_limit=150)
def deliver() -> int:
    """Beat (every few seconds) and after events are written: dispatch new events, deliver what is due."""
    tries, more = webhooks_run(budget_seconds=_BUDGET_SECONDS)
    if more:
        enqueue(deliver)
    return tries


def deliver_soon() -> None:
    """Asks a worker to deliver once the current transaction commits (the beat entry would anyway)."""
    enqueue_on_commit(deliver)
