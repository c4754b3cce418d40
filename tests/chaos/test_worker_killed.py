"""A worker is SIGKILLed (OOM killer, node loss) in the middle of a scheduled run with on-demand jobs queued
behind it. After a restart every tenant is synced; none is lost, none is counted twice (snapshots, run
counters, quota bookkeeping)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db.models import Count, F

from drafts.models import DraftSnapshot, JobState, SyncChunk, SyncJob, SyncRun, SyncTrigger
from drafts.services import (
    draft_count_jobs_sweep,
    draft_count_request_sync,
    draft_count_run_start,
    draft_count_runs_sweep,
)
from tenants.models import Tenant
from tests.chaos.harness import Row, record, scaled, wait_for, wechat_requests
from tests.fixtures.sandbox import Sandbox
from tests.fixtures.sync import sandbox_tenants, worker_env
from tests.fixtures.worker import Worker

pytestmark = [pytest.mark.chaos, pytest.mark.django_db(transaction=True)]

DRAFT_COUNT = "/cgi-bin/draft/count"
# A dead worker's unacknowledged tasks are handed out again this long after it took them, and its
# on-demand jobs may be taken over this long after it claimed them.
VISIBILITY_TIMEOUT = 3
JOB_LEASE = 3.0
# Well above the visibility timeout and a chunk's time, so that only a run that really stalled is queued again.
STALL_TIMEOUT = 15.0


def test_a_worker_killed_mid_sync_loses_and_double_counts_nothing(
    sync_settings: Sandbox, settings: Any, worker_factory: Callable[..., Worker]
) -> None:
    sandbox = sync_settings
    count = scaled(60, 600)
    chunk_size = scaled(6, 30)
    kills = scaled(1, 3)
    settings.DRAFT_SYNC_CHUNK_SIZE = chunk_size
    settings.DRAFT_SYNC_JOB_LEASE = JOB_LEASE
    settings.DRAFT_SYNC_STALL_TIMEOUT = STALL_TIMEOUT
    tenants = sandbox_tenants(sandbox, count, draft_count=(1, 40))
    # Slow enough that a chunk is always in flight when the worker dies.
    sandbox.control.set_latency(scaled(0.3, 0.2), endpoint=DRAFT_COUNT)
    env = worker_env(
        DRAFT_SYNC_CHUNK_SIZE=str(chunk_size),
        DRAFT_SYNC_CONCURRENCY=str(chunk_size),
        DRAFT_SYNC_JOB_LEASE=str(JOB_LEASE),
        CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT),
    )
    worker = worker_factory(concurrency=2, env=env)
    run = draft_count_run_start(trigger=SyncTrigger.SCHEDULE).run
    # Merchants ask for fresh counts meanwhile: their jobs queue up behind the run's first chunks.
    jobs = [draft_count_request_sync(tenant=t, trigger=SyncTrigger.API).job for t in tenants[1::10]]

    for kill in range(kills):
        done_before = SyncChunk.objects.filter(run=run, done_at__isnull=False).count()
        wait_for(
            lambda done_before=done_before: (
                SyncChunk.objects.filter(run=run, done_at__isnull=False).count() > done_before
            ),
            timeout=60,
            what=f"a chunk to finish before kill {kill + 1}",
        )
        worker.kill()
        done_at_kill = SyncChunk.objects.filter(run=run, done_at__isnull=False).count()
        assert done_at_kill < run.chunks_total, "the run finished before the worker could be killed"
        # What the dead worker held becomes visible again after the timeout; a new worker then takes it.
        time.sleep(VISIBILITY_TIMEOUT + 0.5)
        worker = worker_factory(concurrency=2, env=env)

    def everything_finished() -> bool:
        # The beat's sweep (drafts.sweep_jobs, run here as the beat would) re-queues jobs whose worker died after
        # their lease, and the chunks of a run without progress for DRAFT_SYNC_STALL_TIMEOUT: a chunk message
        # kombu's Redis transport popped for the killed worker is otherwise lost (docs/cluster.md).
        draft_count_jobs_sweep()
        draft_count_runs_sweep()
        run_done = SyncRun.objects.filter(pk=run.pk, finished_at__isnull=False).exists()
        return run_done and not SyncJob.objects.filter(state__in=[JobState.PENDING, JobState.RUNNING]).exists()

    wait_for(everything_finished, timeout=120, what="the run and every job to finish after the restart", every=0.5)

    truth = {a["appid"]: a["draft_count"] for a in sandbox.control.list_authorizers()}
    stored = dict(Tenant.objects.values_list("authorizer_appid", "draft_count"))
    wrong = sorted(appid for appid, value in truth.items() if stored.get(appid) != value)
    run.refresh_from_db()
    counted = run.changed + run.unchanged + run.skipped + run.failed
    duplicate_snapshots = DraftSnapshot.objects.count() - count
    calls = sandbox.control.counters()["draft_count_calls"]
    # Calls the bookkeeping knows of can only be fewer than WeChat saw (a killed chunk's calls are lost with
    # its transaction), never more.
    overcounted = [t.authorizer_appid for t in Tenant.objects.all() if t.quota_used > calls.get(t.authorizer_appid, 0)]
    record(
        Row(
            scenario=f"worker SIGKILLed mid-sync x{kills}",
            requests=wechat_requests(sandbox.control),
            faults=f"{kills} kill{'s' if kills > 1 else ''}",
            correct=count - len(wrong),
            total=count,
            lost=len(wrong),
            duplicated=max(0, duplicate_snapshots) + max(0, counted - count) + len(overcounted),
        )
    )

    assert wrong == []
    assert (run.chunks_done, counted) == (run.chunks_total, count)
    assert duplicate_snapshots == 0
    assert not DraftSnapshot.objects.values("tenant").annotate(n=Count("id")).filter(n__gt=1).exists()
    assert overcounted == []
    assert not SyncChunk.objects.filter(run=run, done_at__isnull=True).exists()
    finished = SyncJob.objects.filter(pk__in=[j.pk for j in jobs])
    assert set(finished.values_list("state", flat=True)) == {JobState.SUCCEEDED}
    assert not finished.exclude(total_count=F("tenant__draft_count")).exists()
