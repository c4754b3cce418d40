"""The sync engine against the sandbox, in this process: snapshots, quota, errcodes, tokens, bulk writes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from drafts.models import (
    AttemptOutcome,
    DraftSnapshot,
    SkipReason,
    SnapshotReason,
    SyncAttempt,
    SyncChunk,
    SyncRun,
    SyncTrigger,
)
from drafts.rules import SyncReport
from drafts.services import draft_count_chunk_sync, draft_count_run_start
from tenants.models import Eligibility, Tenant, TenantStatus
from tests.fixtures.sandbox import Sandbox
from tests.fixtures.sync import component_ready, make_all_due, sandbox_tenant, sandbox_tenants
from tests.wechat.helpers import wait_until_answered

# Also on SQLite (make test-smoke): the batch writes are raw SQL that both databases must accept.
pytestmark = [pytest.mark.django_db, pytest.mark.smoke]

DRAFT_COUNT = "/cgi-bin/draft/count"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def sync_all(trigger: str = SyncTrigger.SCHEDULE) -> SyncReport:
    """A whole run, chunk after chunk, in this process (what the workers do in parallel), at a moment every
    tenant is due: the cadence that makes them so is tests/drafts/test_polling.py's topic."""
    make_all_due()
    report = SyncReport()
    run = draft_count_run_start(trigger=trigger, enqueue_chunks=False).run
    for chunk_id in run.chunks.order_by("index").values_list("pk", flat=True):
        chunk_report = draft_count_chunk_sync(chunk_id=chunk_id, chain=False)
        assert chunk_report is not None
        report.extend(chunk_report)
    return report


def draft_count_calls(sandbox: Sandbox) -> dict[str, int]:
    """Calls per account that reached the account (a token or fault answered earlier is not counted)."""
    return dict(sandbox.control.counters()["draft_count_calls"])


def draft_count_requests(sandbox: Sandbox) -> int:
    """Every draft/count request the sandbox received, whatever it answered."""
    endpoint = sandbox.control.counters()["endpoints"].get(DRAFT_COUNT, {})
    return int(endpoint.get("calls", 0))


def today_in_shanghai() -> datetime:
    return timezone.now().astimezone(SHANGHAI)


# --- Values and snapshots ----------------------------------------------------------------------------


def test_first_sync_stores_the_count_and_a_changed_snapshot(sync_settings: Sandbox) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=7)

    report = sync_all()

    tenant.refresh_from_db()
    assert (report.changed, report.unchanged) == (1, 0)
    assert tenant.draft_count == 7
    assert tenant.draft_count_fetched_at is not None
    assert tenant.last_sync_attempt_at == tenant.draft_count_fetched_at
    assert tenant.last_snapshot_at == tenant.draft_count_fetched_at
    assert tenant.quota_used == 1
    assert tenant.quota_day == today_in_shanghai().date()
    assert list(DraftSnapshot.objects.values_list("tenant_id", "total_count", "reason")) == [
        (tenant.pk, 7, SnapshotReason.CHANGED)
    ]


def test_unchanged_count_writes_no_snapshot_until_a_heartbeat_is_due(sync_settings: Sandbox) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=3)
    sync_all()

    report = sync_all()

    assert (report.changed, report.unchanged) == (0, 1)
    assert DraftSnapshot.objects.count() == 1
    # A day (the default heartbeat) after the last snapshot, an unchanged value is recorded again.
    Tenant.objects.filter(pk=tenant.pk).update(last_snapshot_at=timezone.now() - timedelta(hours=24, seconds=1))
    sync_all()
    assert list(DraftSnapshot.objects.order_by("fetched_at").values_list("total_count", "reason")) == [
        (3, SnapshotReason.CHANGED),
        (3, SnapshotReason.HEARTBEAT),
    ]
    tenant.refresh_from_db()
    assert tenant.quota_used == 3


def test_changed_count_writes_a_snapshot(sync_settings: Sandbox) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=3)
    sync_all()
    sync_settings.control.update_authorizer(tenant.authorizer_appid, draft_count=4)

    report = sync_all()

    tenant.refresh_from_db()
    assert report.changed == 1
    assert tenant.draft_count == 4
    assert list(DraftSnapshot.objects.order_by("fetched_at").values_list("total_count", "reason")) == [
        (3, SnapshotReason.CHANGED),
        (4, SnapshotReason.CHANGED),
    ]


def test_scheduled_routine_syncs_record_no_attempts(sync_settings: Sandbox) -> None:
    sandbox_tenant(sync_settings, draft_count=3)

    sync_all()
    sync_all()

    assert SyncAttempt.objects.count() == 0
    run = SyncRun.objects.order_by("started_at").last()
    assert run is not None
    assert (run.chunks_done, run.chunks_total, run.changed, run.unchanged, run.skipped, run.failed) == (
        1,
        1,
        0,
        1,
        0,
        0,
    )
    assert run.finished_at is not None


def test_a_chunk_is_written_with_the_same_number_of_queries_whatever_its_size(sync_settings: Sandbox) -> None:
    query_counts = []
    for size in (3, 60):
        Tenant.objects.all().delete()
        tenants = sandbox_tenants(sync_settings, size, draft_count=(0, 50))
        # Every third account has withdrawn set 11 from the platform: failures are written in bulk too.
        for tenant in tenants[::3]:
            sync_settings.control.update_authorizer(tenant.authorizer_appid, func_ids=[1])
        run = draft_count_run_start(trigger=SyncTrigger.SCHEDULE, enqueue_chunks=False).run
        chunk = run.chunks.get()
        with CaptureQueriesContext(connection) as queries:
            report = draft_count_chunk_sync(chunk_id=chunk.pk, chain=False)
        assert report is not None
        assert (report.changed, report.failed) == (size - size // 3, {61007: size // 3})
        query_counts.append(len(queries))

    assert query_counts[0] == query_counts[1]
    assert DraftSnapshot.objects.count() == 40
    assert Tenant.objects.filter(eligibility=Eligibility.REJECTED).count() == 20


def test_planning_a_run_reads_tenant_ids_one_chunk_at_a_time(sync_settings: Sandbox, settings: Any) -> None:
    settings.DRAFT_SYNC_CHUNK_SIZE = 10
    sandbox_tenants(sync_settings, 95)

    with CaptureQueriesContext(connection) as queries:
        run = draft_count_run_start(trigger=SyncTrigger.SCHEDULE, enqueue_chunks=False).run

    assert run.chunks_total == 10
    tenant_reads = [q["sql"] for q in queries.captured_queries if 'FROM "tenants_tenant"' in q["sql"]]
    # One keyset step per chunk, plus the last (short) chunk's end: never the whole list.
    assert len(tenant_reads) == 11
    assert all("LIMIT 1" in sql or "MAX(" in sql for sql in tenant_reads)


def test_a_scheduled_run_does_not_start_while_the_previous_one_is_running(sync_settings: Sandbox) -> None:
    sandbox_tenants(sync_settings, 3)
    first = draft_count_run_start(trigger=SyncTrigger.SCHEDULE, enqueue_chunks=False)

    second = draft_count_run_start(trigger=SyncTrigger.SCHEDULE, enqueue_chunks=False)

    assert (first.created, second.created, second.run.pk) == (True, False, first.run.pk)
    assert SyncRun.objects.count() == 1
    # A manual run is never held back.
    assert draft_count_run_start(trigger=SyncTrigger.CLI, enqueue_chunks=False).created


def test_a_stuck_scheduled_run_no_longer_holds_back_the_next_one(sync_settings: Sandbox) -> None:
    sandbox_tenants(sync_settings, 3)
    stuck = draft_count_run_start(trigger=SyncTrigger.SCHEDULE, enqueue_chunks=False).run
    SyncRun.objects.filter(pk=stuck.pk).update(started_at=timezone.now() - timedelta(minutes=31))

    start = draft_count_run_start(trigger=SyncTrigger.SCHEDULE, enqueue_chunks=False)

    assert start.created and start.run.pk != stuck.pk


def test_a_redelivered_chunk_calls_nobody_and_writes_nothing(sync_settings: Sandbox) -> None:
    sandbox_tenants(sync_settings, 5, draft_count=2)
    run = draft_count_run_start(trigger=SyncTrigger.SCHEDULE, enqueue_chunks=False).run
    chunk = run.chunks.get()
    draft_count_chunk_sync(chunk_id=chunk.pk, chain=False)
    calls = draft_count_calls(sync_settings)

    assert draft_count_chunk_sync(chunk_id=chunk.pk, chain=False) is None

    assert draft_count_calls(sync_settings) == calls
    assert DraftSnapshot.objects.count() == 5
    run.refresh_from_db()
    assert (run.chunks_done, run.changed) == (1, 5)


def test_runs_are_planned_in_chunks_of_consecutive_ids_without_ineligible_tenants(
    sync_settings: Sandbox, settings: Any
) -> None:
    settings.DRAFT_SYNC_CHUNK_SIZE = 4
    tenants = sandbox_tenants(sync_settings, 10)
    Tenant.objects.filter(pk=tenants[1].pk).update(status=TenantStatus.REVOKED)
    ids = [t.pk for t in tenants]

    run = draft_count_run_start(trigger=SyncTrigger.SCHEDULE, enqueue_chunks=False).run

    chunks = list(SyncChunk.objects.filter(run=run).order_by("index").values_list("first_tenant_id", "last_tenant_id"))
    # Nine eligible tenants: 4 + 4 + 1, each chunk starting right after the previous one ends.
    assert chunks == [(1, ids[4]), (ids[4] + 1, ids[8]), (ids[8] + 1, ids[9])]
    assert run.chunks_total == 3


# --- Who is never called -----------------------------------------------------------------------------


def test_revoked_reauth_and_ineligible_tenants_are_never_called(sync_settings: Sandbox) -> None:
    revoked = sandbox_tenant(sync_settings, status=TenantStatus.REVOKED)
    reauth = sandbox_tenant(sync_settings, status=TenantStatus.NEEDS_REAUTH)
    ineligible = sandbox_tenant(sync_settings, eligibility=Eligibility.MISSING_PERMISSION)
    rejected = sandbox_tenant(sync_settings, eligibility=Eligibility.REJECTED)

    report = sync_all()

    assert report.results == []
    assert draft_count_calls(sync_settings) == {}
    for tenant in (revoked, reauth, ineligible, rejected):
        tenant.refresh_from_db()
        assert (tenant.draft_count, tenant.last_sync_attempt_at, tenant.quota_used) == (None, None, 0)


# --- Quota -------------------------------------------------------------------------------------------


def test_scheduler_skips_a_tenant_whose_quota_budget_is_used(sync_settings: Sandbox) -> None:
    today = today_in_shanghai().date()
    spent = sandbox_tenant(sync_settings, draft_count=5, quota_day=today, quota_used=800)
    fresh = sandbox_tenant(sync_settings, draft_count=6, quota_day=today, quota_used=799)

    report = sync_all()

    assert report.skipped == {SkipReason.QUOTA_BUDGET: 1}
    assert draft_count_calls(sync_settings) == {fresh.authorizer_appid: 1}
    spent.refresh_from_db()
    fresh.refresh_from_db()
    assert (spent.draft_count, spent.quota_used) == (None, 800)
    assert (fresh.draft_count, fresh.quota_used) == (6, 800)
    attempt = SyncAttempt.objects.get()
    assert (attempt.tenant_id, attempt.outcome, attempt.skip_reason) == (
        spent.pk,
        AttemptOutcome.SKIPPED,
        SkipReason.QUOTA_BUDGET,
    )


def test_quota_count_starts_again_on_a_new_day_in_shanghai(sync_settings: Sandbox) -> None:
    yesterday = today_in_shanghai().date() - timedelta(days=1)
    tenant = sandbox_tenant(sync_settings, draft_count=5, quota_day=yesterday, quota_used=999)

    sync_all()

    tenant.refresh_from_db()
    assert (tenant.quota_day, tenant.quota_used, tenant.draft_count) == (today_in_shanghai().date(), 1, 5)


def test_45009_pauses_the_tenant_until_its_quota_resets(sync_settings: Sandbox) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=5)
    sync_all()
    sync_settings.control.update_authorizer(tenant.authorizer_appid, draft_count=6)
    sync_settings.control.set_quota_used(tenant.authorizer_appid, 1000)

    report = sync_all()

    assert report.failed == {45009: 1}
    tenant.refresh_from_db()
    midnight = (today_in_shanghai() + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert tenant.paused_until == midnight
    assert (tenant.draft_count, tenant.last_error_code) == (5, 45009)
    # Paused: the next run does not call WeChat at all.
    sync_settings.control.reset_counters()
    assert sync_all().skipped == {SkipReason.PAUSED: 1}
    assert draft_count_calls(sync_settings) == {}


# --- Errors ------------------------------------------------------------------------------------------


def test_48001_makes_the_tenant_ineligible_and_it_is_not_called_again(sync_settings: Sandbox) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=5)
    sync_all()
    # The account itself lost the API (e.g. its verification lapsed), which the sandbox does not model: injected.
    sync_settings.control.set_faults(rate=1.0, kinds=[48001], endpoints=[DRAFT_COUNT])

    report = sync_all()

    assert report.failed == {48001: 1}
    tenant.refresh_from_db()
    assert tenant.eligibility == Eligibility.REJECTED
    assert "48001" in tenant.eligibility_detail
    assert (tenant.draft_count, tenant.last_error_code) == (5, 48001)
    sync_settings.control.reset_counters()
    assert sync_all().results == []
    assert draft_count_calls(sync_settings) == {}


def test_61007_makes_the_tenant_ineligible_and_it_is_not_called_again(sync_settings: Sandbox) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=5)
    # The merchant withdrew set 11 from this platform on WeChat's side.
    sync_settings.control.update_authorizer(tenant.authorizer_appid, func_ids=[1])

    report = sync_all()

    assert report.failed == {61007: 1}
    tenant.refresh_from_db()
    assert tenant.eligibility == Eligibility.REJECTED
    assert "61007" in tenant.eligibility_detail
    assert tenant.draft_count is None
    sync_settings.control.reset_counters()
    assert sync_all().results == []
    assert draft_count_calls(sync_settings) == {}


def test_61003_marks_the_tenant_revoked(sync_settings: Sandbox) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=5)
    sync_all()
    sync_settings.control.revoke(tenant.authorizer_appid)

    report = sync_all()

    assert report.failed == {61003: 1}
    tenant.refresh_from_db()
    assert tenant.status == TenantStatus.REVOKED
    assert (tenant.access_token, tenant.refresh_token) == ("", "")
    assert (tenant.draft_count, tenant.last_error_code) == (5, 61003)


def test_retryable_faults_are_retried_until_every_tenant_is_synced(sync_settings: Sandbox, settings: Any) -> None:
    settings.DRAFT_SYNC_MAX_ATTEMPTS = 6
    tenants = sandbox_tenants(sync_settings, 40, draft_count=(1, 9))
    sync_settings.control.set_faults(
        rate=0.3, kinds=[-1, 45011, "http_502", "malformed"], endpoints=[DRAFT_COUNT], seed=7
    )

    report = sync_all()

    assert (report.changed, report.failed) == (40, {})
    injected = sum(sync_settings.control.counters()["faults_injected"].values())
    assert injected > 0
    counts = dict(Tenant.objects.values_list("authorizer_appid", "draft_count"))
    expected = {a["appid"]: a["draft_count"] for a in sync_settings.control.list_authorizers()}
    assert counts == expected
    # Every call, failed or not, counts against the account's quota.
    assert sum(Tenant.objects.values_list("quota_used", flat=True)) == 40 + injected
    assert len(tenants) == DraftSnapshot.objects.count()


def test_a_persistent_wechat_error_keeps_the_last_good_count_and_is_recorded(sync_settings: Sandbox) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=5)
    sync_all()
    sync_settings.control.update_authorizer(tenant.authorizer_appid, draft_count=8)
    sync_settings.control.set_faults(rate=1.0, kinds=[-1], endpoints=[DRAFT_COUNT])
    sync_settings.control.reset_counters()

    report = sync_all()

    assert report.failed == {-1: 1}
    # Three attempts (DRAFT_SYNC_MAX_ATTEMPTS), then the failure is recorded.
    assert draft_count_requests(sync_settings) == 3
    tenant.refresh_from_db()
    assert tenant.draft_count == 5
    assert (tenant.last_error_code, tenant.last_error_at is not None) == (-1, True)
    assert tenant.last_error_message.startswith("system error")
    assert tenant.quota_used == 4
    assert DraftSnapshot.objects.count() == 1
    attempt = SyncAttempt.objects.get()
    assert (attempt.outcome, attempt.errcode, attempt.total_count) == (AttemptOutcome.FAILED, -1, None)


def test_a_timeout_is_retried_and_recorded_as_a_transport_failure(sync_settings: Sandbox, settings: Any) -> None:
    settings.WECHAT_READ_TIMEOUT = 0.2
    settings.DRAFT_SYNC_MAX_ATTEMPTS = 2
    tenant = sandbox_tenant(sync_settings, draft_count=5)
    sync_settings.control.set_faults(rate=1.0, kinds=["timeout"], endpoints=[DRAFT_COUNT], timeout_seconds=1)

    report = sync_all()

    assert report.failed == {None: 1}
    tenant.refresh_from_db()
    assert (tenant.draft_count, tenant.last_error_code, tenant.last_error_message) == (None, None, "read timeout")
    # The sandbox counts a held call only once it answers; the injection is counted at once.
    assert sync_settings.control.counters()["faults_injected"] == {"timeout": 2}
    # Their late answers must not land in the next test's counters.
    wait_until_answered(sync_settings.control, DRAFT_COUNT, 2)


# --- Tokens ------------------------------------------------------------------------------------------


def test_an_expired_token_is_refreshed_once_and_the_fetch_retried(sync_settings: Sandbox) -> None:
    component_ready(sync_settings)
    tenant = sandbox_tenant(sync_settings, draft_count=5)
    old_token = tenant.access_token
    sync_settings.control.expire_authorizer_tokens(tenant.authorizer_appid)

    report = sync_all()

    assert report.changed == 1
    counters = sync_settings.control.counters()
    assert counters["authorizer_token_calls"] == {tenant.authorizer_appid: 1}
    assert counters["endpoints"][DRAFT_COUNT]["calls"] == 2
    assert counters["endpoints"][DRAFT_COUNT]["errors"] == {"42001": 1}
    tenant.refresh_from_db()
    assert tenant.draft_count == 5
    assert tenant.access_token != old_token
    assert tenant.token_version == 2


def test_a_token_rejected_again_after_its_refresh_is_recorded_not_retried_forever(sync_settings: Sandbox) -> None:
    component_ready(sync_settings)
    tenant = sandbox_tenant(sync_settings, draft_count=5)
    sync_settings.control.set_faults(rate=1.0, kinds=[40001], endpoints=[DRAFT_COUNT])

    report = sync_all()

    assert report.failed == {40001: 1}
    counters = sync_settings.control.counters()
    assert counters["authorizer_token_calls"] == {tenant.authorizer_appid: 1}
    assert counters["endpoints"][DRAFT_COUNT]["calls"] == 2
    tenant.refresh_from_db()
    assert (tenant.draft_count, tenant.last_error_code) == (None, 40001)


def test_a_token_about_to_expire_is_refreshed_before_the_fetch(sync_settings: Sandbox) -> None:
    component_ready(sync_settings)
    tenant = sandbox_tenant(sync_settings, draft_count=5)
    Tenant.objects.filter(pk=tenant.pk).update(access_token_expires_at=timezone.now() + timedelta(minutes=1))

    report = sync_all()

    assert report.changed == 1
    counters = sync_settings.control.counters()
    assert counters["authorizer_token_calls"] == {tenant.authorizer_appid: 1}
    assert counters["draft_count_calls"] == {tenant.authorizer_appid: 1}
    tenant.refresh_from_db()
    assert tenant.access_token_expires_at is not None
    assert tenant.access_token_expires_at > timezone.now() + timedelta(hours=1)


def test_a_tenant_without_any_token_is_skipped(sync_settings: Sandbox) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=5)
    Tenant.objects.filter(pk=tenant.pk).update(access_token="", refresh_token="", access_token_expires_at=None)

    report = sync_all()

    assert report.skipped == {SkipReason.NO_TOKEN: 1}
    assert draft_count_calls(sync_settings) == {}
