"""Enqueueing that never turns a broker outage into a failed request.

Work is always recorded in the database first; the task is only a nudge. If the broker is down the nudge
is lost but the work is not: a periodic sweep picks up what was recorded and never enqueued.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from django.db import transaction

logger = logging.getLogger(__name__)


def enqueue(task: Task, *args: Any, countdown: float | None = None) -> bool:  # type: ignore[type-arg]
    try:
        if countdown is None:
            task.apply_async(args=args, retry=False)
        else:
            task.apply_async(args=args, countdown=countdown, retry=False)
    except Exception as exc:  # noqa: BLE001 - kombu/redis raise many types; the sweep recovers the work
        logger.warning("could not enqueue %s: %s", task.name, type(exc).__name__)
        return False
    return True


def enqueue_on_commit(task: Task, *args: Any, countdown: float | None = None) -> None:  # type: ignore[type-arg]
    transaction.on_commit(lambda: enqueue(task, *args, countdown=countdown))
