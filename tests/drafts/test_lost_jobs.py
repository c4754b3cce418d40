"""An on-demand job whose task was lost (the broker was down when it was requested, or its worker died)
is queued again within a minute by the beat, or at once when the merchant polls it, and says when it was
last queued (issue 18, Low 4)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from drafts.models import JobState, SyncJob, SyncTrigger
from drafts.tasks import sweep_jobs
from tests.chaos.harness import wait_for
from tests.factories import api_headers, make_api_key
from tests.fixtures.sandbox import Sandbox
from tests.fixtures.sync import sandbox_tenant, worker_env
from tests.fixtures.worker import Worker

pytestmark = pytest.mark.django_db(transaction=True)


def lost_job(tenant_id: int, *, seconds_ago: float = 30) -> SyncJob:
    """A job recorded while the broker was down: requested, never handed to it."""
    job = SyncJob.objects.create(tenant_id=tenant_id, trigger=SyncTrigger.API)
    SyncJob.objects.filter(pk=job.pk).update(requested_at=timezone.now() - timedelta(seconds=seconds_ago))
    return job


def test_polling_a_lost_job_queues_it_again_and_it_runs(
    sync_settings: Sandbox, worker_factory: Callable[..., Worker]
) -> None:
    worker_factory(env=worker_env())
    tenant = sandbox_tenant(sync_settings, draft_count=7)
    job = lost_job(tenant.pk)
    _key, raw = make_api_key(tenant)
    client = Client()

    polled = client.get(f"/api/v1/draft-count/sync/{job.pk}", **api_headers(raw)).json()

    assert polled["queued_at"] is not None
    wait_for(lambda: SyncJob.objects.get(pk=job.pk).state == JobState.SUCCEEDED, timeout=30, what="the job to run")
    assert SyncJob.objects.get(pk=job.pk).total_count == 7


def test_the_minute_sweep_queues_lost_jobs_and_leaves_fresh_ones(sync_settings: Sandbox) -> None:
    lost = lost_job(sandbox_tenant(sync_settings).pk)
    fresh = lost_job(sandbox_tenant(sync_settings).pk, seconds_ago=0)

    assert sweep_jobs() == 1

    assert SyncJob.objects.get(pk=lost.pk).queued_at is not None
    assert SyncJob.objects.get(pk=fresh.pk).queued_at is None
    # Queued moments ago: not queued again until its lease has passed.
    assert sweep_jobs() == 0
