"""Enqueueing that never turns a broker outage into a failed request.

Work is always recorded in the database first; the task is only a nudge. If the broker is down the nudge
is lost but the work is not: a periodic sweep picks up what was recorded and never enqueued.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, Task
from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)


def publish_fail_fast(app: Celery) -> None:
    """Makes a web process's publishing give up at once when the broker is unreachable.

    kombu's default is to retry the connection for `broker_connection_timeout` (4 s) with 2 s pauses before
    a publish fails, which measured 6 s per enqueue with Redis down: longer than the 5 s WeChat waits for a
    push's answer. A web process records its work in the database before it enqueues, so one attempt,
    bounded by WEB_BROKER_TIMEOUT for the connect and for each command, is enough; the sweeps queue
    the work when the broker returns. Workers and beat keep kombu's patient reconnection.
    """
    timeout = settings.WEB_BROKER_TIMEOUT
    options = dict(app.conf.broker_transport_options or {})
    # kombu reads these in Connection.default_channel (_extract_failover_opts): no retry, one short attempt.
    options.update(max_retries=0, connect_retries_timeout=timeout)
    if settings.REDIS_URL:
        options.update(socket_connect_timeout=timeout, socket_timeout=timeout)
    if "sentinel_kwargs" in options:
        # With Sentinel, asking a sentinel for the master is part of the connect: bounded the same way.
        options["sentinel_kwargs"] = {
            **dict(options["sentinel_kwargs"]),
            "socket_connect_timeout": timeout,
            "socket_timeout": timeout,
        }
    app.conf.broker_transport_options = options
    app.conf.broker_connection_timeout = timeout
    app.conf.broker_connection_max_retries = 0


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
