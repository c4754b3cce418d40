"""Celery tasks for draft counts: thin wrappers that take ids and call services; safe to run twice.

acks_late with reject_on_worker_lost (settings) means a task whose worker dies is delivered again: a chunk
already written finds `done_at` set and returns, a job already claimed is taken over only once its lease
has run out.
"""

from __future__ import annotations

import uuid
from typing import Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.db import InterfaceError, OperationalError

from drafts.events import draft_count_event_receive, draft_count_event_sync
from drafts.models import SyncTrigger
from drafts.services import (
    draft_count_chunk_sync,
    draft_count_first_syncs,
    draft_count_history_prune,
    draft_count_job_run,
    draft_count_jobs_sweep,
    draft_count_run_start,
    draft_count_runs_sweep,
)
from wxplatform.core.backoff import BackoffTask

# A database outage (restart, failover) fails a task before or inside its transaction, which rolls back;
# retried with capped exponential backoff, the task then finds its work undone (or done, and returns).
# Without this a chunk failed by an outage was acknowledged and lost, and its run never finished.
DATABASE_OUTAGES = (OperationalError, InterfaceError)
RETRY_DATABASE_OUTAGES: dict[str, Any] = {
    "acks_late": True,
    "autoretry_for": DATABASE_OUTAGES,
    "base": BackoffTask,
    "backoff_base": 1,
    "backoff_cap": 60,
    "max_retries": 30,
}


@shared_task(name="drafts.sync_all", **RETRY_DATABASE_OUTAGES)
def sync_all() -> int:
    """Beat: plan a run over all eligible tenants and queue its first chunks; re-queue lost on-demand jobs."""
    start = draft_count_run_start(trigger=SyncTrigger.SCHEDULE)
    draft_count_jobs_sweep()
    return start.run.pk


@shared_task(name="drafts.sync_first", **RETRY_DATABASE_OUTAGES)
def sync_first() -> int:
    """Beat, every minute: the first sync of accounts authorized since their last sync."""
    return draft_count_first_syncs()


@shared_task(name="drafts.sweep_jobs", acks_late=True)
def sweep_jobs() -> int:
    """Beat, every minute: queue again the on-demand jobs whose task was lost (broker outage, dead worker) and
    the next chunks of runs that stalled (their chunk messages lost); returns how many tasks were queued."""
    return draft_count_jobs_sweep() + draft_count_runs_sweep()


# A chunk that overruns its soft time limit is tried again, never acknowledged as failed: a failed chunk's
# message is gone and its run would never finish. It overruns when it waits on rows locked by a worker that
# was cut off mid-write (tests/cluster/test_node_cut_off.py): PostgreSQL's idle_in_transaction_session_timeout
# ends that worker's transaction (README, "Running on several machines") and the retry then finds the chunk
# done or does it.
@shared_task(
    name="drafts.sync_chunk",
    **RETRY_DATABASE_OUTAGES | {"autoretry_for": (*DATABASE_OUTAGES, SoftTimeLimitExceeded)},
)
def sync_chunk(chunk_id: int) -> None:
    draft_count_chunk_sync(chunk_id=chunk_id)


@shared_task(name="drafts.sync_job", **RETRY_DATABASE_OUTAGES)
def sync_job(job_id: str) -> None:
    draft_count_job_run(job_id=uuid.UUID(job_id))


@shared_task(name="drafts.sync_event", **RETRY_DATABASE_OUTAGES)
def sync_event(tenant_id: int, received_at: float) -> None:
    """A read of one count after WeChat's draft-box event (drafts.events), queued with the debounce countdown."""
    draft_count_event_sync(tenant_id=tenant_id, received_at=received_at)


def draft_box_changed_receiver(sender: Any, *, component_id: int, authorizer_appid: str, event: str, **_: Any) -> None:
    """tenants.signals.draft_box_changed (connected in DraftsConfig.ready()): a read queued as sync_event."""
    draft_count_event_receive(
        component_id=component_id, authorizer_appid=authorizer_appid, event=event, read=sync_event
    )


@shared_task(name="drafts.prune", acks_late=True)
def prune() -> dict[str, int]:
    return draft_count_history_prune()
