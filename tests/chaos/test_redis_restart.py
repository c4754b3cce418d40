"""Redis (broker, cache, rate-limit bucket) restarts in the middle of a scheduled run. The merchant API keeps
serving reads while it is down, a sync requested meanwhile is recorded rather than refused, and once Redis is
back the run completes (or the next one does) with every tenant synced once.

Redis here is a redis-server of the test's own (on a free port): the shared one serves other test runs."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
import requests
from django.db.models import Count
from django.utils import timezone

from drafts.models import DraftSnapshot, JobState, SyncChunk, SyncJob, SyncRun, SyncTrigger
from tenants.models import Tenant
from tests.chaos.harness import (
    ROOT,
    ApiServer,
    RedisServer,
    Row,
    assert_worker_alive,
    record,
    scaled,
    wait_for,
    wechat_requests,
)
from tests.factories import make_api_key, make_snapshot
from tests.fixtures.sandbox import Sandbox
from tests.fixtures.sync import sandbox_tenants, worker_env
from tests.fixtures.worker import Worker, _worker_env

pytestmark = [pytest.mark.chaos, pytest.mark.django_db(transaction=True)]

DRAFT_COUNT = "/cgi-bin/draft/count"
VISIBILITY_TIMEOUT = 3
JOB_LEASE = 3.0


def beat_tick(env: dict[str, str]) -> None:
    """What the beat does every 15 minutes: send drafts.sync_all (a real `celery call` on the given broker)."""
    subprocess.run(
        [sys.executable, "-m", "celery", "-A", "wxplatform", "call", "drafts.sync_all"],
        cwd=ROOT,
        env=_worker_env(env),
        check=True,
        capture_output=True,
        timeout=60,
    )


def test_redis_restarted_mid_sync_loses_nothing_and_the_api_keeps_reading(
    sync_settings: Sandbox,
    settings: Any,
    private_redis: RedisServer,
    worker_factory: Callable[..., Worker],
    api_server_factory: Callable[..., ApiServer],
) -> None:
    sandbox = sync_settings
    count = scaled(60, 600)
    chunk_size = scaled(6, 30)
    settings.DRAFT_SYNC_JOB_LEASE = JOB_LEASE
    tenants = sandbox_tenants(sandbox, count, draft_count=(1, 40))
    truth = {a["appid"]: a["draft_count"] for a in sandbox.control.list_authorizers()}
    # One merchant has a count already, and reads it through the API during the outage.
    reader = tenants[0]
    now = timezone.now()
    Tenant.objects.filter(pk=reader.pk).update(
        draft_count=truth[reader.authorizer_appid], draft_count_fetched_at=now, last_snapshot_at=now
    )
    make_snapshot(reader, total_count=truth[reader.authorizer_appid], fetched_at=now)
    _key, raw_key = make_api_key(reader)
    asker = tenants[1]
    _key, asker_key = make_api_key(asker)
    sandbox.control.set_latency(0.3, endpoint=DRAFT_COUNT)
    env = worker_env(
        REDIS_URL=private_redis.url,
        DRAFT_SYNC_CHUNK_SIZE=str(chunk_size),
        DRAFT_SYNC_CONCURRENCY=str(chunk_size),
        DRAFT_SYNC_JOB_LEASE=str(JOB_LEASE),
        CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT),
    )
    worker = worker_factory(concurrency=2, env=env)
    api = api_server_factory(env=env)
    headers = {"Authorization": f"Api-Key {raw_key}"}

    beat_tick(env)
    wait_for(lambda: SyncChunk.objects.filter(done_at__isnull=False).exists(), timeout=60, what="a first chunk")
    run = SyncRun.objects.get()
    private_redis.stop()
    assert SyncChunk.objects.filter(run=run, done_at__isnull=True).exists(), "the run finished before the outage"

    # While Redis is down: reads are served, a requested sync is recorded, readiness says what is wrong.
    reads = [requests.get(f"{api.url}{path}", headers=headers, timeout=30) for path in _READS * 3]
    asked = requests.post(
        f"{api.url}/api/v1/draft-count/sync", headers={"Authorization": f"Api-Key {asker_key}"}, timeout=30
    )
    ready = requests.get(f"{api.url}/readyz", timeout=30)
    wait_for(lambda: "Connection to broker lost" in worker.output(), timeout=30, what="the worker to notice")
    private_redis.start()

    # The run resumes: the chunks queued in Redis survived (AOF), the interrupted ones are handed out again.
    resumed = True
    try:
        wait_for(lambda: SyncRun.objects.filter(pk=run.pk, finished_at__isnull=False).exists(), timeout=60, what="")
    except AssertionError:
        resumed = False
    # The beat's next tick re-queues the job whose task could not be sent, and plans the next run.
    beat_tick(env)
    wait_for(
        lambda: (
            not SyncRun.objects.filter(finished_at__isnull=True).exists()
            and not SyncJob.objects.filter(state__in=[JobState.PENDING, JobState.RUNNING]).exists()
        ),
        timeout=90,
        what="the next run and the recorded job to finish",
        every=0.5,
    )

    stored = dict(Tenant.objects.values_list("authorizer_appid", "draft_count"))
    wrong = sorted(appid for appid, value in truth.items() if stored.get(appid) != value)
    statuses = [r.status_code for r in [*reads, asked, ready]]
    duplicated = DraftSnapshot.objects.count() - count
    record(
        Row(
            scenario="Redis restarted mid-sync" + ("" if resumed else " (next run)"),
            requests=wechat_requests(sandbox.control),
            faults=f"{private_redis.restarts or 1} restart",
            correct=count - len(wrong),
            total=count,
            lost=len(wrong),
            duplicated=max(0, duplicated),
            server_errors=sum(1 for s in statuses if s >= 500 and s != 503),
        )
    )

    assert_worker_alive(worker)
    assert [r.status_code for r in reads] == [200] * len(reads)
    assert reads[0].json()["total_count"] == truth[reader.authorizer_appid]
    assert asked.status_code == 202
    job = SyncJob.objects.get(tenant=asker, trigger=SyncTrigger.API)
    assert (job.state, job.total_count) == (JobState.SUCCEEDED, truth[asker.authorizer_appid])
    assert ready.status_code == 503 and ready.json()["failed"] == ["broker"]
    assert resumed, "the interrupted run did not complete once Redis was back"
    assert wrong == []
    assert duplicated == 0
    assert not DraftSnapshot.objects.values("tenant").annotate(n=Count("id")).filter(n__gt=1).exists()
    assert run.chunks_total == SyncRun.objects.get(pk=run.pk).chunks_done


_READS = ["/api/v1/draft-count", "/api/v1/tenant", "/api/v1/draft-count/history"]
