"""Progress-based liveness of a Celery worker (`python manage.py worker_alive`, wxplatform/console/management/commands).

A worker can stay up while it no longer takes tasks: after a Redis reconnect celery has been seen to stop
consuming with the process, its pool and its remote control all alive (celery#8030, celery#9054). A probe
that asks "is the process there" or "does it answer a broadcast" (`celery inspect ping`) passes for such a
worker; only progress tells it apart. So:

- Every worker also consumes a queue of its own, `<REDIS_KEY_PREFIX>-alive.<nodename>`, on the same
  consumer and connection as its task queues (added at `celeryd_after_setup`). It is reached through
  the default exchange (routing key = queue name): no exchange binding, so no `_kombu.binding.*` member
  is left behind by every pod that ever ran.
- The worker touches a marker file, `VAR_DIR/liveness/<nodename>`, whenever it makes progress: when it
  is ready, when it takes a message from the broker (`task_received`, main process) and when a task
  finishes (`task_postrun`, pool process). The file's mtime is the time of the last progress.
- The probe, run on the worker's host (container HEALTHCHECK, Kubernetes exec probe), first publishes a
  ping task to that queue, unless one is still waiting there, and gives the key a TTL of the bound, so a
  worker that is gone leaves at most one message that expires. It waits briefly for the ping to be taken,
  then passes only if the marker is younger than WORKER_LIVENESS_MAX_AGE. An idle healthy worker takes
  the ping at once; a busy one makes progress with its tasks; a stalled one does neither. Nothing depends
  on beat, and one probe costs three Redis commands and a file stat.

The bound defaults to the hard task time limit plus a minute: a worker whose every pool slot is taken takes
no message (prefetch is full), and the hard limit is what frees a slot at the latest. Only the daily
reconciliation runs longer (its own limit), on one slot; a worker of concurrency 1 running it would fail the
probe, so workers run with two slots or more (compose, deploy/kubernetes).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from celery import Celery, shared_task, signals
from django.conf import settings
from kombu import Exchange, Queue

from wxplatform.core.redis_client import redis_client

logger = logging.getLogger(__name__)

PING_TASK = "wxplatform.liveness_ping"


def liveness_queue(nodename: str) -> Queue:
    """The worker's own queue, published to on the default exchange (routing key = name) and never declared:
    Redis needs no declaration to consume a list, and a declared queue would leave its binding behind."""
    name = f"{settings.REDIS_KEY_PREFIX}-alive.{nodename}"
    return Queue(name, Exchange(""), routing_key=name, no_declare=True)


def marker_path(nodename: str) -> Path:
    return Path(settings.VAR_DIR) / "liveness" / nodename


def progress_mark(nodename: str | None) -> None:
    """Records that the worker `nodename` made progress now (the marker's mtime)."""
    if not nodename:
        return  # an eager task in a web process or a test: no worker to speak of
    path = marker_path(nodename)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    except OSError as exc:
        # A full or read-only disk must not fail the task; the probe will then report the worker stalled.
        logger.warning("liveness marker not written: %s", type(exc).__name__)


def progress_age(nodename: str, *, now: float | None = None) -> float | None:
    """Seconds since the worker's last progress, or None when it has never written its marker here."""
    try:
        mtime = marker_path(nodename).stat().st_mtime
    except FileNotFoundError:
        return None
    return max(0.0, (time.time() if now is None else now) - mtime)


def ping_publish(app: Celery, nodename: str, *, ttl: int) -> bool:
    """Puts a ping on the worker's queue unless one still waits there; False when the broker refused it.

    With Redis, the list gets a TTL of `ttl` seconds: a ping a stalled or departed worker never takes is
    dropped instead of piling up (one per probe, for every pod name that ever existed).
    """
    queue = liveness_queue(nodename)
    client = None
    if settings.REDIS_URL:
        client = redis_client()
        key = f"{settings.CELERY_BROKER_TRANSPORT_OPTIONS.get('global_keyprefix', '')}{queue.name}"
        if client.llen(key):
            return True  # the last probe's ping is still there: one is enough
    # A Queue, not its name: Celery would make up a queue of that name on an exchange of that name, which
    # nobody binds. (Celery takes either; its stubs say str.)
    app.send_task(PING_TASK, queue=queue, retry=False, ignore_result=True)  # type: ignore[arg-type]
    if client is not None:
        client.expire(key, ttl)
    return True


# Registered wherever this module is imported (WxPlatformConfig.ready, so every worker). Not acks_late: a ping
# lost with its worker is worth nothing, and the next probe sends another.
@shared_task(name=PING_TASK, acks_late=False, ignore_result=True)
def liveness_ping() -> None:
    """Nothing to do: taking and finishing the ping is the progress the probe looks for."""


def _after_setup(sender: str, instance: Any, **kwargs: Any) -> None:
    instance.app.amqp.queues.select_add(liveness_queue(sender))


def _ready(sender: Any, **kwargs: Any) -> None:
    progress_mark(getattr(sender, "hostname", None))


def _received(sender: Any, request: Any, **kwargs: Any) -> None:
    progress_mark(getattr(sender, "hostname", None))


def _postrun(sender: Any = None, task: Any = None, **kwargs: Any) -> None:
    progress_mark(getattr(getattr(task, "request", None), "hostname", None))


def connect_worker_signals() -> None:
    """Called once per process from WxPlatformConfig.ready(); the signals fire only in a worker."""
    signals.celeryd_after_setup.connect(_after_setup, weak=False, dispatch_uid="wxp-alive-setup")
    signals.worker_ready.connect(_ready, weak=False, dispatch_uid="wxp-alive-ready")
    signals.task_received.connect(_received, weak=False, dispatch_uid="wxp-alive-received")
    signals.task_postrun.connect(_postrun, weak=False, dispatch_uid="wxp-alive-postrun")
