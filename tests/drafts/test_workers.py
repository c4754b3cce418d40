"""Draft syncs through real Celery workers: the beat fan-out, coalescing, and a worker killed mid-run."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from drafts.models import AttemptOutcome, DraftSnapshot, JobState, SyncChunk, SyncJob, SyncRun, SyncTrigger
from drafts.services import SyncRequest, draft_count_first_syncs, draft_count_request_sync
from drafts.tasks import sync_all, sync_first
from tenants.models import Tenant, TenantStatus
from tests.fixtures.sandbox import Sandbox
from tests.fixtures.sync import sandbox_tenant, sandbox_tenants, worker_env
from tests.fixtures.worker import Worker

pytestmark = pytest.mark.django_db(transaction=True)

DRAFT_COUNT = "/cgi-bin/draft/count"


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def run_finished() -> bool:
    return SyncRun.objects.filter(finished_at__isnull=False).exists()


def expected_counts(sandbox: Sandbox) -> dict[str, int]:
    return {a["appid"]: a["draft_count"] for a in sandbox.control.list_authorizers()}


def test_the_beat_task_syncs_every_tenant_through_a_worker(
    sync_settings: Sandbox, worker_factory: Callable[..., Worker]
) -> None:
    sandbox_tenants(sync_settings, 35, draft_count=(0, 30))
    # Four chunks, at most two queued at a time: the rest are queued by the chunks that finish.
    worker_factory(concurrency=2, env=worker_env(DRAFT_SYNC_CHUNK_SIZE="10", DRAFT_SYNC_CHUNKS_IN_FLIGHT="2"))

    sync_all.delay()

    wait_for(run_finished, timeout=30, what="the run to finish")
    run = SyncRun.objects.get()
    assert (run.trigger, run.chunks_total, run.chunks_done, run.changed + run.unchanged) == ("schedule", 4, 4, 35)
    assert dict(Tenant.objects.values_list("authorizer_appid", "draft_count")) == expected_counts(sync_settings)
    assert sum(sync_settings.control.counters()["draft_count_calls"].values()) == 35


def test_concurrent_requests_for_one_tenant_make_one_wechat_call(
    sync_settings: Sandbox, settings: Any, worker_factory: Callable[..., Worker]
) -> None:
    settings.DRAFT_SYNC_MIN_INTERVAL = 60
    tenant = sandbox_tenant(sync_settings, draft_count=12)
    sync_settings.control.set_latency(0.5, endpoint=DRAFT_COUNT)
    worker_factory(concurrency=4, env=worker_env())

    def burst(size: int) -> list[SyncRequest]:
        barrier = threading.Barrier(size)
        requests: list[SyncRequest] = []

        def request() -> None:
            try:
                barrier.wait()
                requests.append(draft_count_request_sync(tenant=tenant, trigger=SyncTrigger.API))
            finally:
                connection.close()

        threads = [threading.Thread(target=request) for _ in range(size)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return requests

    first = burst(12)
    job_ids = {r.job.pk for r in first}
    assert len(job_ids) == 1
    assert [r.created for r in first].count(True) == 1
    assert not any(r.served_from_storage for r in first)
    job_id = job_ids.pop()
    wait_for(lambda: SyncJob.objects.get(pk=job_id).state == JobState.SUCCEEDED, timeout=20, what="the job")
    # Right after, the same burst is answered from storage.
    second = burst(6)

    assert all(r.served_from_storage and r.job.outcome == AttemptOutcome.CACHED for r in second)
    assert {r.job.total_count for r in second} == {12}
    assert sync_settings.control.counters()["draft_count_calls"] == {tenant.authorizer_appid: 1}
    job = SyncJob.objects.get(pk=job_id)
    assert (job.outcome, job.total_count) == (AttemptOutcome.CHANGED, 12)


def test_a_worker_killed_mid_run_loses_no_tenant_and_duplicates_no_snapshot(
    sync_settings: Sandbox, worker_factory: Callable[..., Worker]
) -> None:
    sandbox_tenants(sync_settings, 40, draft_count=(1, 30))
    sync_settings.control.set_latency(0.4, endpoint=DRAFT_COUNT)
    env = worker_env(
        DRAFT_SYNC_CHUNK_SIZE="5",
        DRAFT_SYNC_CONCURRENCY="5",
        # Tasks of a dead worker are handed out again this many seconds after it took them.
        CELERY_VISIBILITY_TIMEOUT="2",
    )
    doomed = worker_factory(concurrency=2, env=env)

    sync_all.delay()
    wait_for(lambda: SyncChunk.objects.filter(done_at__isnull=False).count() >= 2, timeout=30, what="two chunks done")
    doomed.kill()
    done_at_kill = SyncChunk.objects.filter(done_at__isnull=False).count()
    assert 2 <= done_at_kill < 8
    # A restarted worker hands out what the dead one held once the visibility timeout has passed.
    time.sleep(2.5)
    worker_factory(concurrency=2, env=env)

    wait_for(run_finished, timeout=60, what="the run to finish after the restart")
    run = SyncRun.objects.get()
    assert (run.chunks_total, run.chunks_done, run.changed) == (8, 8, 40)
    assert dict(Tenant.objects.values_list("authorizer_appid", "draft_count")) == expected_counts(sync_settings)
    assert DraftSnapshot.objects.count() == 40
    assert not DraftSnapshot.objects.values("tenant").annotate(n=Count("id")).filter(n__gt=1).exists()


def test_a_new_authorization_gets_its_first_count_from_the_beat_within_a_minute(
    sync_settings: Sandbox, worker_factory: Callable[..., Worker]
) -> None:
    now = timezone.now()
    new = sandbox_tenant(sync_settings, draft_count=7, authorized_at=now)
    again = sandbox_tenant(
        sync_settings, draft_count=5, authorized_at=now, last_sync_attempt_at=now - timedelta(days=1)
    )
    synced = sandbox_tenant(
        sync_settings, draft_count=4, authorized_at=now - timedelta(days=1), last_sync_attempt_at=now
    )
    revoked = sandbox_tenant(sync_settings, draft_count=3, authorized_at=now, status=TenantStatus.REVOKED)
    worker_factory(concurrency=2, env=worker_env())

    sync_first.delay()

    wait_for(lambda: SyncJob.objects.filter(state=JobState.SUCCEEDED).count() == 2, timeout=30, what="two jobs")
    counts = dict(Tenant.objects.values_list("pk", "draft_count"))
    assert (counts[new.pk], counts[again.pk], counts[synced.pk], counts[revoked.pk]) == (7, 5, None, None)
    assert set(SyncJob.objects.values_list("tenant_id", "trigger")) == {
        (new.pk, SyncTrigger.AUTHORIZATION),
        (again.pk, SyncTrigger.AUTHORIZATION),
    }
    # Asked once per authorization: the next beat finds nothing to do, and WeChat was called twice in all.
    assert draft_count_first_syncs() == 0
    assert sync_settings.control.counters()["draft_count_calls"] == {new.authorizer_appid: 1, again.authorizer_appid: 1}
