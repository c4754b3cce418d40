"""Polling as often as each account needs (docs/polling.md): the interval from the quiet time, the floor, the
ceiling and the quota share; scheduled runs that call only the accounts due; draft_count_poll_soon."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.apps import apps
from django.db import connection
from django.utils import timezone

from drafts.events import draft_count_poll_soon
from drafts.models import DraftSnapshot, SnapshotReason, SyncRun, SyncTrigger
from drafts.rules import poll_interval
from drafts.services import (
    draft_count_chunk_sync,
    draft_count_run_start,
    draft_count_sync_tenant,
)
from tenants.models import Tenant
from tests.factories import make_tenant
from tests.fixtures.sandbox import Sandbox
from tests.fixtures.sync import sandbox_tenant

pytestmark = [pytest.mark.django_db, pytest.mark.smoke]

FLOOR, CEILING = 900.0, 21600.0
HOUR, DAY = 3600.0, 86400.0


@pytest.fixture
def cadence(settings: Any) -> None:
    settings.DRAFT_POLL_MIN_INTERVAL = FLOOR
    settings.DRAFT_POLL_MAX_INTERVAL = CEILING
    settings.DRAFT_POLL_QUIET_FRACTION = 0.1
    settings.DRAFT_QUOTA_DAILY_LIMIT = 1000
    settings.DRAFT_QUOTA_SCHEDULE_SHARE = 0.8


def scheduled_run() -> SyncRun:
    """A scheduled run planned now and synced chunk after chunk, in this process."""
    run = draft_count_run_start(trigger=SyncTrigger.SCHEDULE, enqueue_chunks=False).run
    for chunk_id in run.chunks.order_by("index").values_list("pk", flat=True):
        draft_count_chunk_sync(chunk_id=chunk_id, chain=False)
    run.refresh_from_db()
    return run


def calls(sandbox: Sandbox) -> dict[str, int]:
    return dict(sandbox.control.counters()["draft_count_calls"])


# --- The policy --------------------------------------------------------------------------------------


def test_the_interval_grows_with_the_quiet_time_up_to_the_ceiling(cadence: None) -> None:
    intervals = [poll_interval(quiet, daily_limit=None) for quiet in (0, HOUR, 3 * HOUR, DAY, 2.5 * DAY, 30 * DAY)]

    # A tenth of the quiet time, never under the floor nor over the ceiling.
    assert intervals == [FLOOR, FLOOR, 1080.0, 8640.0, CEILING, CEILING]


def test_the_interval_never_lets_the_schedule_spend_more_than_its_quota_share(cadence: None) -> None:
    # 50 calls a day, 80% for the schedule: 40 polls a day at most, one every 36 minutes.
    assert poll_interval(0, daily_limit=50) == 2160.0
    assert poll_interval(DAY, daily_limit=50) == 8640.0
    # The quota wins over the ceiling: one call a day for the schedule means one poll a day.
    assert poll_interval(30 * DAY, daily_limit=1) == DAY
    # No share at all: looked at again the next day, when skip_reason judges a new quota day.
    assert poll_interval(0, daily_limit=0) == DAY


# --- Scheduled runs ----------------------------------------------------------------------------------


def test_an_unchanged_account_is_due_again_after_a_tenth_of_its_quiet_time(
    sync_settings: Sandbox, cadence: None
) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=3)
    Tenant.objects.filter(pk=tenant.pk).update(draft_count=3, draft_activity_at=timezone.now() - timedelta(days=1))

    run = scheduled_run()

    tenant.refresh_from_db()
    assert tenant.draft_count_fetched_at is not None
    quiet = (tenant.draft_count_fetched_at - tenant.draft_activity_at).total_seconds()
    assert quiet >= DAY
    # Counted from the run's start (the beat's tick), from the quiet time at the fetch.
    assert tenant.next_poll_at == run.started_at + timedelta(seconds=0.1 * quiet)
    # Unchanged: at most a heartbeat snapshot, never a change.
    assert set(DraftSnapshot.objects.filter(tenant=tenant).values_list("reason", flat=True)) <= {"heartbeat"}


def test_a_long_quiet_account_is_polled_at_the_ceiling(sync_settings: Sandbox, cadence: None) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=3)
    month_ago = timezone.now() - timedelta(days=30)
    Tenant.objects.filter(pk=tenant.pk).update(draft_count=3, draft_activity_at=month_ago)

    run = scheduled_run()

    tenant.refresh_from_db()
    assert tenant.next_poll_at == run.started_at + timedelta(seconds=CEILING)
    assert tenant.draft_activity_at == month_ago


def test_a_change_brings_the_interval_back_to_the_floor(sync_settings: Sandbox, cadence: None) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=3)
    Tenant.objects.filter(pk=tenant.pk).update(draft_count=2, draft_activity_at=timezone.now() - timedelta(days=30))

    run = scheduled_run()

    tenant.refresh_from_db()
    assert tenant.draft_count == 3
    assert tenant.draft_activity_at == tenant.draft_count_fetched_at
    assert tenant.next_poll_at == run.started_at + timedelta(seconds=FLOOR)
    assert DraftSnapshot.objects.get(tenant=tenant).reason == SnapshotReason.CHANGED


def test_a_small_quota_spaces_the_polls_of_an_active_account(sync_settings: Sandbox, cadence: None) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=3, quota_daily_limit=20)

    run = scheduled_run()

    tenant.refresh_from_db()
    # Changed (first read): the floor, but 16 scheduled calls a day at most: one every 90 minutes.
    assert tenant.next_poll_at == run.started_at + timedelta(seconds=5400)


def test_a_scheduled_run_calls_only_the_accounts_that_are_due(sync_settings: Sandbox, cadence: None) -> None:
    due = sandbox_tenant(sync_settings, draft_count=1)
    later = sandbox_tenant(sync_settings, draft_count=2)
    due_earlier = sandbox_tenant(sync_settings, draft_count=3)
    now = timezone.now()
    Tenant.objects.filter(pk=later.pk).update(next_poll_at=now + timedelta(minutes=5))
    Tenant.objects.filter(pk=due_earlier.pk).update(next_poll_at=now - timedelta(hours=2))
    later.refresh_from_db()

    run = scheduled_run()

    assert calls(sync_settings) == {due.authorizer_appid: 1, due_earlier.authorizer_appid: 1}
    untouched = Tenant.objects.get(pk=later.pk)
    assert (untouched.draft_count, untouched.last_sync_attempt_at, untouched.quota_used) == (None, None, 0)
    assert untouched.next_poll_at == later.next_poll_at
    assert (run.changed, run.unchanged, run.skipped, run.failed) == (2, 0, 0, 0)

    # Polled, the two are not due at the next beat either: that run plans no chunk and calls nobody.
    sync_settings.control.reset_counters()
    second = draft_count_run_start(trigger=SyncTrigger.CLI, enqueue_chunks=False).run
    assert second.chunks_total == 1  # a manual run still covers every account
    next_beat = scheduled_run()
    assert next_beat.chunks_total == 0
    assert calls(sync_settings) == {}


def test_a_read_outside_the_schedule_never_pushes_the_next_poll_back(sync_settings: Sandbox, cadence: None) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=4)
    soon = timezone.now() + timedelta(minutes=2)
    Tenant.objects.filter(pk=tenant.pk).update(draft_count=4, next_poll_at=soon)

    draft_count_sync_tenant(tenant=tenant, trigger=SyncTrigger.API)

    tenant.refresh_from_db()
    assert tenant.draft_count_fetched_at is not None
    assert tenant.next_poll_at == soon


def test_a_change_seen_outside_the_schedule_brings_the_next_poll_forward(sync_settings: Sandbox, cadence: None) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=5)
    Tenant.objects.filter(pk=tenant.pk).update(
        draft_count=4,
        next_poll_at=timezone.now() + timedelta(hours=6),
        draft_activity_at=timezone.now() - timedelta(days=9),
    )

    draft_count_sync_tenant(tenant=tenant, trigger=SyncTrigger.ADMIN)

    tenant.refresh_from_db()
    assert tenant.draft_count_fetched_at is not None
    assert tenant.draft_activity_at == tenant.draft_count_fetched_at
    assert tenant.next_poll_at == tenant.draft_count_fetched_at + timedelta(seconds=FLOOR)


# --- Poll soon ---------------------------------------------------------------------------------------


def test_poll_soon_makes_an_account_due_at_the_next_run_and_polled_at_the_floor(
    sync_settings: Sandbox, cadence: None
) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=6)
    Tenant.objects.filter(pk=tenant.pk).update(
        draft_count=6,
        next_poll_at=timezone.now() + timedelta(hours=6),
        draft_activity_at=timezone.now() - timedelta(days=9),
    )
    before = timezone.now()

    assert draft_count_poll_soon(tenant_id=tenant.pk) is True

    tenant.refresh_from_db()
    assert before <= tenant.next_poll_at <= timezone.now()
    assert tenant.draft_activity_at == tenant.next_poll_at
    run = scheduled_run()
    assert calls(sync_settings) == {tenant.authorizer_appid: 1}
    tenant.refresh_from_db()
    # Unchanged, but active moments ago: the floor.
    assert tenant.draft_count == 6
    assert tenant.next_poll_at == run.started_at + timedelta(seconds=FLOOR)


def test_poll_soon_keeps_an_earlier_due_time_and_ignores_unknown_accounts(cadence: None) -> None:
    tenant = make_tenant()
    overdue = timezone.now() - timedelta(hours=1)
    Tenant.objects.filter(pk=tenant.pk).update(next_poll_at=overdue)

    assert draft_count_poll_soon(tenant_id=tenant.pk) is True
    assert draft_count_poll_soon(tenant_id=tenant.pk + 1000) is False

    tenant.refresh_from_db()
    assert tenant.next_poll_at == overdue


# --- The upgrade -------------------------------------------------------------------------------------


def test_the_migration_takes_the_last_activity_from_the_snapshots(cadence: None) -> None:
    migration = __import__("tenants.migrations.0021_polling_cadence", fromlist=["activity_from_snapshots"])
    changed, quiet, never = make_tenant(), make_tenant(), make_tenant()
    now = timezone.now()
    DraftSnapshot.objects.bulk_create(
        [
            DraftSnapshot(tenant=changed, total_count=1, fetched_at=now - timedelta(days=9), reason="changed"),
            DraftSnapshot(tenant=changed, total_count=2, fetched_at=now - timedelta(days=3), reason="changed"),
            DraftSnapshot(tenant=changed, total_count=2, fetched_at=now - timedelta(days=1), reason="heartbeat"),
            DraftSnapshot(tenant=quiet, total_count=5, fetched_at=now - timedelta(days=40), reason="changed"),
        ]
    )

    migration.activity_from_snapshots(apps, SimpleNamespace(connection=connection))

    activity = dict(Tenant.objects.values_list("pk", "draft_activity_at"))
    assert activity == {
        changed.pk: now - timedelta(days=3),
        quiet.pk: now - timedelta(days=40),
        never.pk: None,
    }
