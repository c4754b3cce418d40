"""On-demand syncs of one tenant (merchant API, admin, CLI): coalescing, answers from storage, job runs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from drafts.models import AttemptOutcome, DraftSnapshot, JobState, SkipReason, SyncAttempt, SyncJob, SyncTrigger
from drafts.services import (
    draft_count_job_run,
    draft_count_jobs_sweep,
    draft_count_request_sync,
    draft_count_sync_tenant,
)
from tenants.models import Eligibility, Tenant, TenantStatus
from tests.fixtures.sandbox import Sandbox
from tests.fixtures.sync import sandbox_tenant

# Also on SQLite (make test-smoke): the batch writes are raw SQL that both databases must accept.
pytestmark = [pytest.mark.django_db, pytest.mark.smoke]


def test_a_request_opens_a_pending_job_and_enqueues_it_after_commit(
    sync_settings: Sandbox, django_capture_on_commit_callbacks: Any
) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=4)

    with django_capture_on_commit_callbacks() as callbacks:
        request = draft_count_request_sync(tenant=tenant, trigger=SyncTrigger.API)

    assert (request.created, request.served_from_storage) == (True, False)
    assert (request.job.state, request.job.trigger, request.job.tenant_id) == (JobState.PENDING, "api", tenant.pk)
    assert len(callbacks) == 1
    assert sync_settings.control.counters()["draft_count_calls"] == {}


def test_a_second_request_joins_the_open_job(sync_settings: Sandbox) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=4)
    first = draft_count_request_sync(tenant=tenant, trigger=SyncTrigger.API)

    second = draft_count_request_sync(tenant=tenant, trigger=SyncTrigger.ADMIN)

    assert second.job.pk == first.job.pk
    assert (second.created, second.served_from_storage) == (False, False)
    assert SyncJob.objects.count() == 1


def test_running_a_job_fetches_the_count_and_finishes_it(sync_settings: Sandbox) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=4)
    job = draft_count_request_sync(tenant=tenant, trigger=SyncTrigger.API).job

    result = draft_count_job_run(job_id=job.pk)

    assert result is not None and (result.outcome, result.total_count) == (AttemptOutcome.CHANGED, 4)
    job.refresh_from_db()
    assert (job.state, job.outcome, job.total_count, job.errcode) == (JobState.SUCCEEDED, "changed", 4, None)
    assert job.started_at is not None and job.finished_at is not None
    # On-demand syncs are always kept as attempts.
    attempt = SyncAttempt.objects.get()
    assert (attempt.trigger, attempt.outcome, attempt.total_count) == ("api", "changed", 4)


def test_a_job_delivered_twice_calls_wechat_once(sync_settings: Sandbox) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=4)
    job = draft_count_request_sync(tenant=tenant, trigger=SyncTrigger.API).job
    draft_count_job_run(job_id=job.pk)

    assert draft_count_job_run(job_id=job.pk) is None

    assert sync_settings.control.counters()["draft_count_calls"] == {tenant.authorizer_appid: 1}


def test_a_job_held_by_a_live_worker_is_not_taken_over(sync_settings: Sandbox) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=4)
    job = draft_count_request_sync(tenant=tenant, trigger=SyncTrigger.API).job
    SyncJob.objects.filter(pk=job.pk).update(state=JobState.RUNNING, started_at=timezone.now())

    assert draft_count_job_run(job_id=job.pk) is None

    job.refresh_from_db()
    assert (job.state, job.outcome) == (JobState.RUNNING, "")
    assert sync_settings.control.counters()["draft_count_calls"] == {}


def test_a_job_whose_worker_died_is_taken_over_after_its_lease(sync_settings: Sandbox) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=4)
    job = draft_count_request_sync(tenant=tenant, trigger=SyncTrigger.API).job
    SyncJob.objects.filter(pk=job.pk).update(state=JobState.RUNNING, started_at=timezone.now() - timedelta(seconds=121))

    result = draft_count_job_run(job_id=job.pk)

    assert result is not None and result.total_count == 4
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED


def test_stale_open_jobs_are_swept_back_into_the_queue(sync_settings: Sandbox) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=4)
    other = sandbox_tenant(sync_settings, draft_count=5)
    stale = draft_count_request_sync(tenant=tenant, trigger=SyncTrigger.API).job
    draft_count_request_sync(tenant=other, trigger=SyncTrigger.API)
    SyncJob.objects.filter(pk=stale.pk).update(requested_at=timezone.now() - timedelta(seconds=121))

    assert draft_count_jobs_sweep() == 1


def test_a_request_within_the_minimum_interval_is_answered_from_storage(
    sync_settings: Sandbox, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.DRAFT_SYNC_MIN_INTERVAL = 60
    tenant = sandbox_tenant(sync_settings, draft_count=4)
    Tenant.objects.filter(pk=tenant.pk).update(
        draft_count=3, draft_count_fetched_at=timezone.now() - timedelta(seconds=30)
    )

    with django_capture_on_commit_callbacks() as callbacks:
        request = draft_count_request_sync(tenant=tenant, trigger=SyncTrigger.API)

    assert (request.created, request.served_from_storage) == (True, True)
    job = request.job
    assert (job.state, job.outcome, job.total_count, job.skip_reason) == (
        JobState.SUCCEEDED,
        AttemptOutcome.CACHED,
        3,
        SkipReason.RECENTLY_SYNCED,
    )
    # Answered at once: requested, started and finished at the same instant, never "started before requested".
    job.refresh_from_db()
    assert job.requested_at == job.started_at == job.finished_at
    assert callbacks == []
    assert sync_settings.control.counters()["draft_count_calls"] == {}
    tenant.refresh_from_db()
    assert (tenant.draft_count, tenant.quota_used) == (3, 0)
    assert SyncAttempt.objects.get().outcome == AttemptOutcome.CACHED


def test_a_request_over_the_on_demand_budget_is_answered_from_storage(sync_settings: Sandbox) -> None:
    today = timezone.now().astimezone(ZoneInfo("Asia/Shanghai")).date()
    tenant = sandbox_tenant(sync_settings, draft_count=4, quota_day=today, quota_used=950)
    Tenant.objects.filter(pk=tenant.pk).update(draft_count=3)

    request = draft_count_request_sync(tenant=tenant, trigger=SyncTrigger.API)

    assert request.served_from_storage
    assert (request.job.outcome, request.job.total_count, request.job.skip_reason) == (
        AttemptOutcome.CACHED,
        3,
        SkipReason.QUOTA_BUDGET,
    )
    assert sync_settings.control.counters()["draft_count_calls"] == {}


def test_on_demand_syncs_may_use_quota_the_scheduler_leaves(sync_settings: Sandbox) -> None:
    today = timezone.now().astimezone(ZoneInfo("Asia/Shanghai")).date()
    # 800 calls is the scheduler's share (80 %); on demand may go on up to 950 (95 %).
    tenant = sandbox_tenant(sync_settings, draft_count=4, quota_day=today, quota_used=800)

    result = draft_count_sync_tenant(tenant=tenant, trigger=SyncTrigger.CLI)

    assert (result.outcome, result.total_count) == (AttemptOutcome.CHANGED, 4)
    tenant.refresh_from_db()
    assert tenant.quota_used == 801


def test_a_request_for_a_paused_tenant_is_answered_from_storage(sync_settings: Sandbox) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=4, paused_until=timezone.now() + timedelta(hours=3))

    request = draft_count_request_sync(tenant=tenant, trigger=SyncTrigger.API)

    assert (request.job.outcome, request.job.skip_reason) == (AttemptOutcome.CACHED, SkipReason.PAUSED)
    assert sync_settings.control.counters()["draft_count_calls"] == {}


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"status": TenantStatus.REVOKED}, SkipReason.NOT_ACTIVE),
        ({"status": TenantStatus.NEEDS_REAUTH}, SkipReason.NOT_ACTIVE),
        ({"eligibility": Eligibility.WRONG_KIND}, SkipReason.INELIGIBLE),
        ({"eligibility": Eligibility.REJECTED}, SkipReason.INELIGIBLE),
    ],
)
def test_a_request_for_a_tenant_that_may_not_be_called_is_refused_at_once(
    sync_settings: Sandbox, fields: dict[str, str], reason: SkipReason
) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=4, **fields)

    request = draft_count_request_sync(tenant=tenant, trigger=SyncTrigger.API)

    assert request.served_from_storage
    assert (request.job.state, request.job.outcome, request.job.skip_reason) == (
        JobState.FAILED,
        AttemptOutcome.SKIPPED,
        reason,
    )
    assert sync_settings.control.counters()["draft_count_calls"] == {}
    tenant.refresh_from_db()
    assert (tenant.draft_count, tenant.last_sync_attempt_at) == (None, None)


def test_sync_tenant_runs_in_this_process_and_writes_a_snapshot(sync_settings: Sandbox) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=9)

    result = draft_count_sync_tenant(tenant=tenant, trigger=SyncTrigger.ADMIN)

    assert (result.outcome, result.total_count) == (AttemptOutcome.CHANGED, 9)
    assert SyncJob.objects.get().state == JobState.SUCCEEDED
    assert DraftSnapshot.objects.get().total_count == 9


def test_sync_tenant_runs_a_job_that_is_still_queued_instead_of_opening_another(sync_settings: Sandbox) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=9)
    queued = draft_count_request_sync(tenant=tenant, trigger=SyncTrigger.API).job

    result = draft_count_sync_tenant(tenant=tenant, trigger=SyncTrigger.CLI)

    assert result.total_count == 9
    assert list(SyncJob.objects.values_list("pk", "state")) == [(queued.pk, JobState.SUCCEEDED)]
    assert sync_settings.control.counters()["draft_count_calls"] == {tenant.authorizer_appid: 1}


def test_a_failed_job_keeps_the_last_good_count(sync_settings: Sandbox) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=9)
    draft_count_sync_tenant(tenant=tenant, trigger=SyncTrigger.CLI)
    sync_settings.control.set_faults(rate=1.0, kinds=[-1], endpoints=["/cgi-bin/draft/count"])

    result = draft_count_sync_tenant(tenant=tenant, trigger=SyncTrigger.CLI)

    assert (result.outcome, result.errcode, result.total_count) == (AttemptOutcome.FAILED, -1, None)
    job = SyncJob.objects.order_by("requested_at").last()
    assert job is not None and (job.state, job.errcode) == (JobState.FAILED, -1)
    tenant.refresh_from_db()
    assert (tenant.draft_count, tenant.last_error_code) == (9, -1)
