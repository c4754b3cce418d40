"""The project package's own task: the ping of the workers' liveness probe (wxplatform/liveness.py)."""

from __future__ import annotations

from celery import shared_task

from wxplatform.liveness import PING_TASK


# Not acks_late: a ping lost with its worker is worth nothing, and the next probe sends another.
@shared_task(name=PING_TASK, acks_late=False, ignore_result=True)
def liveness_ping() -> None:
    """Nothing to do: taking and finishing the ping is the progress the probe looks for."""
