"""Writes for draft counts: on-demand and scheduled syncs, and the pruning of their bookkeeping.

Every path (beat, admin, CLI, merchant API) ends in drafts.sync.sync_tenants, so the rules (drafts.rules) are
the same for all: eligibility, the 45009 pause, the daily quota budget, the minimum interval, token refresh, retries.

On-demand syncs are SyncJob rows. At most one job per tenant is open (a partial unique index), so concurrent
requests for one tenant share one job and so one WeChat call. A job is claimed by a conditional update, and
a claim older than DRAFT_SYNC_JOB_LEASE may be taken over, so a job whose worker died is finished by another
delivery and a duplicate delivery finds nothing to do.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from celery import Task
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, Max, OuterRef, Q, QuerySet
from django.utils import timezone

from drafts.models import (
    AttemptOutcome,
    DraftSnapshot,
    JobState,
    SkipReason,
    SyncAttempt,
    SyncChunk,
    SyncJob,
    SyncRun,
    SyncTrigger,
)
from drafts.rules import SyncReport, TenantResult, job_state_for, skip_reason, skipped_result
from drafts.sync import SYNC_FIELDS, attempt_for, sync_tenants
from tenants.models import Tenant
from tenants.selectors import syncable_tenants
from wxplatform.core import metrics
from wxplatform.core.pruning import delete_in_batches
from wxplatform.core.queueing import enqueue, enqueue_on_commit

logger = logging.getLogger(__name__)

OPEN_STATES = (JobState.PENDING, JobState.RUNNING)


# --- On-demand syncs of one tenant -------------------------------------------------------------------


@dataclass(frozen=True)
class SyncRequest:
    job: SyncJob
    # False: the request joined a job another request had opened.
    created: bool
    # True: answered at once from storage (quota, minimum interval, pause) or refused (ineligible, revoked);
    # the job is already finished and WeChat is not called.
    served_from_storage: bool


def draft_count_request_sync(*, tenant: Tenant, trigger: str) -> SyncRequest:
    """Asks for a fresh draft count of `tenant`; a Celery task does the call after commit.

    Concurrent requests for one tenant get the same open job. A request that the rules answer from storage
    gets a job finished at once with outcome "cached" (or "skipped" for a tenant that may not be called).
    """
    return _request(tenant_id=tenant.pk, trigger=trigger, enqueue_job=True)


def draft_count_sync_tenant(*, tenant: Tenant, trigger: str) -> TenantResult:
    """Syncs `tenant` now, in this process (CLI, admin), under the same rules and coalescing as requests."""
    request = _request(tenant_id=tenant.pk, trigger=trigger, enqueue_job=False)
    job = request.job
    if not request.served_from_storage:
        # Claims the job unless another process is running it, in which case its outcome is awaited.
        draft_count_job_run(job_id=job.pk)
        job = _job_wait(job.pk)
    return _job_result(job)


def _request(*, tenant_id: int, trigger: str, enqueue_job: bool) -> SyncRequest:
    # A request that loses the race to open a job joins the winner's; the winner's job may even have
    # finished by then, and the next pass is answered from storage. Two passes suffice in practice.
    for _attempt in range(5):
        now = timezone.now()
        open_job = SyncJob.objects.filter(tenant_id=tenant_id, state__in=OPEN_STATES).first()
        if open_job is not None:
            if enqueue_job and _job_is_stale(open_job, now):
                # Its task was lost (broker down when enqueued, worker gone): nudge it again.
                _job_enqueue_on_commit(open_job.pk)
            return SyncRequest(job=open_job, created=False, served_from_storage=False)
        tenant = Tenant.objects.only(*SYNC_FIELDS).get(pk=tenant_id)
        reason = skip_reason(tenant, trigger=trigger, now=now)
        if reason is not None:
            return SyncRequest(job=_job_answered(tenant, trigger, reason, now), created=True, served_from_storage=True)
        try:
            with transaction.atomic():
                job = SyncJob.objects.create(tenant_id=tenant_id, trigger=trigger)
        except IntegrityError:
            continue
        if enqueue_job:
            _job_enqueue_on_commit(job.pk)
        return SyncRequest(job=job, created=True, served_from_storage=False)
    raise RuntimeError(f"could not open or join a sync job for tenant {tenant_id}")


@transaction.atomic
def _job_answered(tenant: Tenant, trigger: str, reason: SkipReason, now: datetime) -> SyncJob:
    result = skipped_result(tenant, trigger=trigger, reason=reason)
    job = SyncJob.objects.create(
        tenant_id=tenant.pk,
        trigger=trigger,
        state=job_state_for(result.outcome),
        requested_at=now,
        started_at=now,
        finished_at=now,
        outcome=result.outcome,
        total_count=result.total_count,
        message=result.message,
        skip_reason=result.reason or "",
    )
    attempt_for(result, trigger=trigger, at=now).save()
    return job


# A job whose task was never handed to the broker is queued again this many seconds after it was requested
# (its request's own enqueue runs after commit, within milliseconds, or failed).
NEVER_QUEUED_GRACE = timedelta(seconds=5)


def _job_is_stale(job: SyncJob, now: datetime) -> bool:
    """Open, and its task presumably lost: never queued, queued a lease ago and not started, or running
    on a worker that went silent a lease ago."""
    lease = timedelta(seconds=settings.DRAFT_SYNC_JOB_LEASE)
    if job.state == JobState.RUNNING:
        return job.started_at is None or now - job.started_at > lease
    if job.state != JobState.PENDING:
        return False
    if job.queued_at is None:
        return now - job.requested_at > NEVER_QUEUED_GRACE
    return now - job.queued_at > lease


def _stale_jobs(now: datetime) -> Q:
    """_job_is_stale as a query."""
    lease = now - timedelta(seconds=settings.DRAFT_SYNC_JOB_LEASE)
    return (
        Q(state=JobState.PENDING, queued_at__isnull=True, requested_at__lt=now - NEVER_QUEUED_GRACE)
        | Q(state=JobState.PENDING, queued_at__lt=lease)
        | Q(state=JobState.RUNNING, started_at__lt=lease)
    )


def _job_enqueue(job_id: uuid.UUID) -> bool:
    """Hands the job's task to the broker and records when, so that the job shows it and the sweep knows."""
    queued = enqueue(_sync_job_task(), str(job_id))
    if queued:
        SyncJob.objects.filter(pk=job_id).update(queued_at=timezone.now())
    return queued


def _job_enqueue_on_commit(job_id: uuid.UUID) -> None:
    transaction.on_commit(lambda: _job_enqueue(job_id))


def draft_count_job_poll(*, job: SyncJob) -> SyncJob:
    """A merchant polls the job: if its task was lost, it is queued again now rather than at the next sweep."""
    if _job_is_stale(job, timezone.now()) and _job_enqueue(job.pk):
        job.refresh_from_db()
    return job


def draft_count_job_run(*, job_id: uuid.UUID) -> TenantResult | None:
    """Runs an on-demand job; None if it is finished or another process holds it (duplicate delivery)."""
    now = timezone.now()
    lease = timedelta(seconds=settings.DRAFT_SYNC_JOB_LEASE)
    claimed = (
        SyncJob.objects.filter(pk=job_id)
        .filter(Q(state=JobState.PENDING) | Q(state=JobState.RUNNING, started_at__lt=now - lease))
        .update(state=JobState.RUNNING, started_at=now)
    )
    if not claimed:
        return None
    job = SyncJob.objects.get(pk=job_id)
    metrics.observe_job_wait((now - job.requested_at).total_seconds())
    tenant = Tenant.objects.only(*SYNC_FIELDS).get(pk=job.tenant_id)
    report = sync_tenants([tenant], trigger=job.trigger)
    assert report is not None and len(report.results) == 1
    result = report.results[0]
    # Conditional on our claim: a process that took the job over after our lease ran out finishes it.
    SyncJob.objects.filter(pk=job_id, state=JobState.RUNNING, started_at=now).update(
        state=job_state_for(result.outcome),
        finished_at=timezone.now(),
        outcome=result.outcome,
        total_count=result.total_count,
        errcode=result.errcode,
        message=result.message[:500],
        skip_reason=result.reason or "",
    )
    return result


def _job_wait(job_id: uuid.UUID) -> SyncJob:
    """The job once finished (another process may be running it), or as it stands after the lease."""
    deadline = time.monotonic() + settings.DRAFT_SYNC_JOB_LEASE
    while True:
        job = SyncJob.objects.get(pk=job_id)
        if job.state not in OPEN_STATES or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def _job_result(job: SyncJob) -> TenantResult:
    reason = SkipReason(job.skip_reason) if job.skip_reason else None
    outcome = AttemptOutcome(job.outcome) if job.outcome else AttemptOutcome.FAILED
    return TenantResult(
        job.tenant_id, outcome, total_count=job.total_count, errcode=job.errcode, message=job.message, reason=reason
    )


def draft_count_jobs_sweep() -> int:
    """Re-enqueues open jobs whose task was never delivered or whose worker died (beat, every minute)."""
    ids = list(SyncJob.objects.filter(_stale_jobs(timezone.now())).values_list("pk", flat=True)[:1000])
    for job_id in ids:
        _job_enqueue(job_id)
    return len(ids)


def draft_count_first_syncs(*, limit: int = 500) -> int:
    """Asks for the first draft count of every account authorized (or authorized again) since it was last
    synced, so that a new merchant sees a count within a minute instead of at the next scheduled run.

    Run from the beat every minute; one indexed query when there is nothing to do. At most one such job per
    authorization: an account whose first job was answered from storage or failed waits for the schedule.
    """
    already_asked = SyncJob.objects.filter(tenant=OuterRef("pk"), requested_at__gte=OuterRef("authorized_at"))
    pending = (
        syncable_tenants()
        .filter(authorized_at__isnull=False)
        .filter(Q(last_sync_attempt_at__isnull=True) | Q(last_sync_attempt_at__lt=F("authorized_at")))
        .exclude(Exists(already_asked))
        .order_by("authorized_at")
        .only(*SYNC_FIELDS)[:limit]
    )
    asked = 0
    for tenant in pending:
        draft_count_request_sync(tenant=tenant, trigger=SyncTrigger.AUTHORIZATION)
        asked += 1
    return asked


# --- Runs over all tenants ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RunStart:
    run: SyncRun
    # False: a scheduled run is still going or started moments ago; no new one was planned.
    created: bool


def draft_count_run_start(*, trigger: str, enqueue_chunks: bool = True) -> RunStart:
    """Plans a run over every eligible, active tenant (for the schedule, only those due: docs/polling.md):
    chunks of DRAFT_SYNC_CHUNK_SIZE consecutive ids, found by keyset pagination (one indexed query per chunk,
    never the whole tenant list in memory). A manual run (CLI, admin) asks for every account now.

    With `enqueue_chunks`, the first DRAFT_SYNC_CHUNKS_IN_FLIGHT chunks are queued after commit; each
    finished chunk queues the one that many places after it.
    """
    now = timezone.now()
    if trigger == SyncTrigger.SCHEDULE:
        # A duplicate beat, a redelivered sync_all, or a beat firing while the last run is still going
        # (overlapping runs would only double the load): the current run stands.
        latest = SyncRun.objects.filter(trigger=SyncTrigger.SCHEDULE).order_by("-started_at").first()
        if latest is not None:
            age = (now - latest.started_at).total_seconds()
            running = latest.finished_at is None and age < settings.DRAFT_SYNC_RUN_TIMEOUT
            if running or age < settings.DRAFT_SYNC_MIN_INTERVAL:
                return RunStart(run=latest, created=False)
    size = settings.DRAFT_SYNC_CHUNK_SIZE
    with transaction.atomic():
        run = SyncRun.objects.create(trigger=trigger)
        ids = _run_tenants(run).order_by("pk").values_list("pk", flat=True)
        chunks: list[SyncChunk] = []
        last = 0
        while True:
            # The id `size` places on, or the last one: the chunk is (previous end, this end].
            end: int | None = ids.filter(pk__gt=last)[size - 1 : size].first()
            final = end is None
            if end is None:
                end = ids.filter(pk__gt=last).aggregate(end=Max("pk"))["end"]
                if end is None:
                    break
            chunks.append(SyncChunk(run=run, index=len(chunks), first_tenant_id=last + 1, last_tenant_id=end))
            if final:
                break
            last = end
        SyncChunk.objects.bulk_create(chunks, batch_size=1000)
        run.chunks_total = len(chunks)
        if not chunks:
            run.finished_at = now
        run.save(update_fields=["chunks_total", "finished_at"])
        if enqueue_chunks:
            first = SyncChunk.objects.filter(run=run, index__lt=settings.DRAFT_SYNC_CHUNKS_IN_FLIGHT)
            task = _sync_chunk_task()
            for chunk_id in first.order_by("index").values_list("pk", flat=True):
                enqueue_on_commit(task, chunk_id)
    logger.info("draft sync run planned", extra={"run": run.pk, "chunks": len(chunks), "trigger": trigger})
    return RunStart(run=run, created=True)


def draft_count_chunk_sync(*, chunk_id: int, chain: bool = True) -> SyncReport | None:
    """Syncs one chunk; None if it was done already (a redelivered task). With `chain`, queues the chunk
    DRAFT_SYNC_CHUNKS_IN_FLIGHT places on, even on a redelivery (the first delivery may have died before
    queueing it; a chunk queued twice runs once)."""
    chunk = SyncChunk.objects.select_related("run").filter(pk=chunk_id).first()
    if chunk is None:
        return None
    report = None
    if chunk.done_at is None:
        tenants = list(
            _run_tenants(chunk.run)
            .filter(pk__gte=chunk.first_tenant_id, pk__lte=chunk.last_tenant_id)
            .only(*SYNC_FIELDS)
            .order_by("pk")
        )
        report = sync_tenants(tenants, trigger=chunk.run.trigger, chunk=chunk)
    if chain:
        successor = (
            SyncChunk.objects.filter(
                run_id=chunk.run_id, index=chunk.index + settings.DRAFT_SYNC_CHUNKS_IN_FLIGHT, done_at__isnull=True
            )
            .values_list("pk", flat=True)
            .first()
        )
        if successor is not None:
            enqueue(_sync_chunk_task(), successor)
    return report


def draft_count_runs_sweep(*, now: datetime | None = None) -> int:
    """Queues again the next chunks of every unfinished run that made no progress for DRAFT_SYNC_STALL_TIMEOUT
    (beat, every minute, with the jobs sweep); returns how many chunk tasks it queued.

    Chunks chain (each finished chunk queues the one DRAFT_SYNC_CHUNKS_IN_FLIGHT places on), so one lost
    message stops its chain, and a failover that loses the messages of every chain stops the run. The run's
    next chunks are its DRAFT_SYNC_CHUNKS_IN_FLIGHT unfinished ones of lowest index: queued again, they restart
    the chains. A chunk queued twice runs once (its row is locked and checked before its write) and calls
    WeChat again only if both deliveries run at the same moment. A run older than DRAFT_SYNC_RUN_TIMEOUT is
    left alone: the beat supersedes it with a new run over what is still due.
    """
    now = now or timezone.now()
    stalled_before = now - timedelta(seconds=settings.DRAFT_SYNC_STALL_TIMEOUT)
    progressed = SyncChunk.objects.filter(run=OuterRef("pk"), done_at__gte=stalled_before)
    runs = (
        SyncRun.objects.filter(
            finished_at__isnull=True,
            started_at__gte=now - timedelta(seconds=settings.DRAFT_SYNC_RUN_TIMEOUT),
            started_at__lt=stalled_before,
        )
        .filter(Q(requeued_at__isnull=True) | Q(requeued_at__lt=stalled_before))
        .exclude(Exists(progressed))
        .values_list("pk", flat=True)
    )
    task = _sync_chunk_task()
    queued = 0
    for run_id in runs:
        chunk_ids = list(
            SyncChunk.objects.filter(run_id=run_id, done_at__isnull=True)
            .order_by("index")
            .values_list("pk", flat=True)[: settings.DRAFT_SYNC_CHUNKS_IN_FLIGHT]
        )
        sent = sum(enqueue(task, chunk_id) for chunk_id in chunk_ids)
        if sent:
            SyncRun.objects.filter(pk=run_id).update(requeued_at=now)
            logger.warning("draft sync run stalled: chunks queued again", extra={"run": run_id, "chunks": sent})
        queued += sent
    return queued


def _run_tenants(run: SyncRun) -> QuerySet[Tenant]:
    """The tenants a run covers. A scheduled run covers those due when it was planned, so that its chunks find
    the ones planning counted (an account made due meanwhile waits for the next run)."""
    tenants = syncable_tenants()
    if run.trigger == SyncTrigger.SCHEDULE:
        tenants = tenants.filter(next_poll_at__lte=run.started_at)
    return tenants


# --- Housekeeping ------------------------------------------------------------------------------------


def draft_count_history_prune() -> dict[str, int]:
    """Deletes sync attempts, finished jobs and runs older than SYNC_ATTEMPT_RETENTION_DAYS, in batches so
    that no delete holds locks for long. Snapshots are history: kept, unless DRAFT_SNAPSHOT_RETENTION_DAYS
    says for how long."""
    now = timezone.now()
    cutoff = now - timedelta(days=settings.SYNC_ATTEMPT_RETENTION_DAYS)
    querysets = {
        "attempts": SyncAttempt.objects.filter(at__lt=cutoff),
        "jobs": SyncJob.objects.filter(finished_at__lt=cutoff).exclude(state__in=OPEN_STATES),
        "runs": SyncRun.objects.filter(started_at__lt=cutoff),
    }
    pruned = {name: delete_in_batches(queryset) for name, queryset in querysets.items()}
    if settings.DRAFT_SNAPSHOT_RETENTION_DAYS:
        pruned["snapshots"] = _snapshots_prune(now - timedelta(days=settings.DRAFT_SNAPSHOT_RETENTION_DAYS))
    return pruned


def _snapshots_prune(cutoff: datetime, *, batch: int = 5000) -> int:
    """Deletes the snapshots fetched before `cutoff`, oldest first, walking the primary key.

    Snapshots are written in the order they are fetched (give or take a chunk's seconds), so the oldest rows
    are the lowest ids: each round reads the next `batch` ids from the start of the table and deletes those
    older than the cutoff, and the first round that meets a newer row is the last. Every query follows the
    primary key's index: no index on `fetched_at` alone (one more write per snapshot) and no scan of the rest
    of the table, however large the history."""
    deleted = 0
    while True:
        rows = list(DraftSnapshot.objects.order_by("pk").values_list("pk", "fetched_at")[:batch])
        old = [pk for pk, fetched_at in rows if fetched_at < cutoff]
        if old:
            deleted += DraftSnapshot.objects.filter(pk__in=old).delete()[0]
        if len(old) < batch:
            return deleted


# Tasks import this module; it reaches them lazily to enqueue (the one dependency in that direction).
def _sync_job_task() -> Task[[str], None]:
    from drafts.tasks import sync_job

    return cast("Task[[str], None]", sync_job)


def _sync_chunk_task() -> Task[[int], None]:
    from drafts.tasks import sync_chunk

    return cast("Task[[int], None]", sync_chunk)
