"""A run whose chunk messages were lost (published to a Redis master in the moment it was demoted,
docs/deploy/redis-sentinel.md#following-a-failover) is picked up again by the minute sweep, instead of
waiting for DRAFT_SYNC_RUN_TIMEOUT and a new run (issue 24)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db.models import Count
from django.utils import timezone

from drafts.models import DraftSnapshot, SyncChunk, SyncRun, SyncTrigger
from drafts.services import draft_count_run_start, draft_count_runs_sweep
from drafts.tasks import sweep_jobs
from tenants.models import Tenant
from tests.chaos.harness import wait_for
from tests.fixtures.sandbox import Sandbox
from tests.fixtures.sync import sandbox_tenants, worker_env
from tests.fixtures.worker import Worker

pytestmark = pytest.mark.django_db(transaction=True)


def lost_run(*, started_ago: float) -> SyncRun:
    """A scheduled run planned `started_ago` seconds ago, over accounts due then, while every chunk message
    it sent was lost: chunks recorded, none queued."""
    Tenant.objects.update(next_poll_at=timezone.now() - timedelta(seconds=started_ago + 1))
    run = draft_count_run_start(trigger=SyncTrigger.SCHEDULE, enqueue_chunks=False).run
    SyncRun.objects.filter(pk=run.pk).update(started_at=timezone.now() - timedelta(seconds=started_ago))
    run.refresh_from_db()
    return run


@pytest.fixture
def small_chunks(settings: Any) -> None:
    settings.DRAFT_SYNC_CHUNK_SIZE = 10
    settings.DRAFT_SYNC_CHUNKS_IN_FLIGHT = 2
    settings.DRAFT_SYNC_STALL_TIMEOUT = 60
    settings.DRAFT_SYNC_RUN_TIMEOUT = 1800


def test_the_minute_sweep_restarts_a_stalled_run_and_it_finishes(
    sync_settings: Sandbox, small_chunks: None, worker_factory: Callable[..., Worker]
) -> None:
    sandbox_tenants(sync_settings, 45, draft_count=(0, 30))
    worker_factory(concurrency=2, env=worker_env(DRAFT_SYNC_CHUNKS_IN_FLIGHT="2"))
    run = lost_run(started_ago=120)

    # The two chunks of lowest index restart the two chains; the finished ones queue the rest.
    assert sweep_jobs() == 2

    wait_for(lambda: SyncRun.objects.filter(pk=run.pk, finished_at__isnull=False).exists(), timeout=60, what="the run")
    run.refresh_from_db()
    assert (run.chunks_total, run.chunks_done, run.changed + run.unchanged) == (5, 5, 45)
    truth = {a["appid"]: a["draft_count"] for a in sync_settings.control.list_authorizers()}
    assert dict(Tenant.objects.values_list("authorizer_appid", "draft_count")) == truth
    assert sum(sync_settings.control.counters()["draft_count_calls"].values()) == 45
    assert not DraftSnapshot.objects.values("tenant").annotate(n=Count("id")).filter(n__gt=1).exists()


def test_a_run_that_progresses_is_left_alone(sync_settings: Sandbox, small_chunks: None) -> None:
    sandbox_tenants(sync_settings, 45)
    run = lost_run(started_ago=120)
    first = SyncChunk.objects.get(run=run, index=0)
    SyncChunk.objects.filter(pk=first.pk).update(done_at=timezone.now() - timedelta(seconds=30))

    assert draft_count_runs_sweep() == 0
    assert SyncRun.objects.get(pk=run.pk).requeued_at is None


def test_a_young_run_and_a_superseded_one_are_left_alone(
    sync_settings: Sandbox, small_chunks: None, settings: Any
) -> None:
    sandbox_tenants(sync_settings, 15)
    young = lost_run(started_ago=30)
    assert draft_count_runs_sweep() == 0
    # Older than DRAFT_SYNC_RUN_TIMEOUT: the beat's next tick plans a new run; the old one is not revived.
    SyncRun.objects.filter(pk=young.pk).update(started_at=timezone.now() - timedelta(seconds=1801))
    assert draft_count_runs_sweep() == 0


def test_a_run_is_queued_again_once_per_stall(sync_settings: Sandbox, small_chunks: None) -> None:
    sandbox_tenants(sync_settings, 45)
    run = lost_run(started_ago=300)
    now = timezone.now()

    assert draft_count_runs_sweep(now=now) == 2
    assert SyncRun.objects.get(pk=run.pk).requeued_at == now
    # No worker took them (all gone): the next minutes' sweeps add nothing until another stall has passed.
    assert draft_count_runs_sweep(now=now + timedelta(seconds=59)) == 0
    assert draft_count_runs_sweep(now=now + timedelta(seconds=61)) == 2
