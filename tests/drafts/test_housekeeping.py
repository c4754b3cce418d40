"""The rate limiter, the beat schedule created by the migration, and pruning of sync bookkeeping."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from drafts.models import AttemptOutcome, DraftSnapshot, JobState, SyncAttempt, SyncJob, SyncRun, SyncTrigger
from drafts.ratelimit import LocalRateLimiter, RedisRateLimiter
from drafts.services import _snapshots_prune, draft_count_history_prune
from tenants.models import Tenant
from tests.factories import make_snapshot

needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")


@needs_redis
def test_the_redis_limiter_is_one_bucket_for_every_process() -> None:
    key = f"{settings.REDIS_KEY_PREFIX}:test-bucket-{uuid.uuid4().hex}"
    first = RedisRateLimiter(client=redis.Redis.from_url(settings.REDIS_URL), key=key, rate=100, burst=10)
    second = RedisRateLimiter(client=redis.Redis.from_url(settings.REDIS_URL), key=key, rate=100, burst=10)

    assert first.reserve(10) == 0.0
    # The bucket is empty now, for the other limiter too: 5 more tokens take 5/100 s to refill.
    wait = second.reserve(5)

    # (Bounds allow for the refill during the round trips to Redis.)
    assert 0.03 <= wait <= 0.05
    # Reservations queue up behind each other.
    assert 0.08 <= first.reserve(5) <= 0.10


def test_the_redis_limiter_falls_back_to_this_process_when_redis_is_down() -> None:
    unreachable = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    limiter = RedisRateLimiter(client=unreachable, key="k", rate=100, burst=10)

    assert limiter.reserve(10) == 0.0
    assert 0.02 <= limiter.reserve(5) <= 0.05


def test_the_local_limiter_sleeps_until_tokens_are_there() -> None:
    limiter = LocalRateLimiter(rate=200, burst=4)

    assert limiter.acquire(4) == 0.0
    slept = limiter.acquire(2)

    assert 0.005 <= slept <= 0.01


@pytest.mark.django_db
def test_the_migration_schedules_every_periodic_task() -> None:
    rows = {
        (t.name, t.task, t.interval.every, t.interval.period, t.enabled)
        for t in PeriodicTask.objects.select_related("interval")
    }

    assert rows >= {
        ("Sync draft counts (all tenants)", "drafts.sync_all", 15, "minutes", True),
        ("Refresh component access token", "component.refresh_token", 10, "minutes", True),
        ("Refresh expiring authorizer tokens", "tenants.refresh_expiring_tokens", 5, "minutes", True),
        ("Authorize pending codes", "tenants.authorize_pending_codes", 2, "minutes", True),
        ("Prune draft sync history", "drafts.prune", 1, "days", True),
        ("First sync of new authorizations", "drafts.sync_first", 1, "minutes", True),
        ("Sweep lost on-demand sync jobs", "drafts.sweep_jobs", 1, "minutes", True),
        ("Prune push log", "tenants.prune_push_log", 1, "days", True),
    }
    assert PeriodicTask.objects.get(task="drafts.sync_all").expire_seconds == 900


@pytest.mark.django_db
def test_prune_deletes_old_bookkeeping_and_keeps_snapshots(tenant: Tenant) -> None:
    now = timezone.now()
    old = now - timedelta(days=31)
    recent = now - timedelta(days=29)
    for at in (old, recent):
        SyncAttempt.objects.create(tenant=tenant, at=at, trigger=SyncTrigger.API, outcome=AttemptOutcome.CACHED)
        job = SyncJob.objects.create(tenant=tenant, trigger=SyncTrigger.API, state=JobState.SUCCEEDED, finished_at=at)
        SyncJob.objects.filter(pk=job.pk).update(requested_at=at)
        run = SyncRun.objects.create(trigger=SyncTrigger.SCHEDULE, finished_at=at)
        SyncRun.objects.filter(pk=run.pk).update(started_at=at)
        make_snapshot(tenant, total_count=1, fetched_at=at)
    open_job = SyncJob.objects.create(tenant=tenant, trigger=SyncTrigger.API)
    SyncJob.objects.filter(pk=open_job.pk).update(requested_at=old)

    deleted = draft_count_history_prune()

    assert deleted == {"attempts": 1, "jobs": 1, "runs": 1}
    assert list(SyncAttempt.objects.values_list("at", flat=True)) == [recent]
    assert set(SyncJob.objects.values_list("finished_at", flat=True)) == {recent, None}
    assert list(SyncRun.objects.values_list("started_at", flat=True)) == [recent]
    assert DraftSnapshot.objects.count() == 2


@pytest.mark.django_db
@override_settings(DRAFT_SNAPSHOT_RETENTION_DAYS=30)
def test_snapshots_older_than_the_retention_are_pruned(tenant: Tenant) -> None:
    now = timezone.now()
    # Written in fetch order, as the sync writes them, but for one late write of an old fetch (35 days).
    for days in (400, 90, 31, 30.5, 29, 1, 35, 0):
        make_snapshot(tenant, total_count=int(days), fetched_at=now - timedelta(days=days))

    deleted = draft_count_history_prune()

    assert deleted["snapshots"] == 5
    assert sorted(DraftSnapshot.objects.values_list("total_count", flat=True)) == [0, 1, 29]


@pytest.mark.django_db
def test_snapshots_are_kept_without_a_retention(tenant: Tenant) -> None:
    make_snapshot(tenant, total_count=1, fetched_at=timezone.now() - timedelta(days=4000))

    assert "snapshots" not in draft_count_history_prune()
    assert DraftSnapshot.objects.count() == 1


@pytest.mark.django_db
def test_snapshots_are_pruned_in_batches_until_the_first_recent_one(tenant: Tenant) -> None:
    now = timezone.now()
    for days in (50, 49, 48, 47, 46, 2, 40, 1):
        make_snapshot(tenant, total_count=days, fetched_at=now - timedelta(days=days))
    cutoff = now - timedelta(days=30)

    assert _snapshots_prune(cutoff, batch=2) == 5
    # The round that met a recent row was the last: the late old row behind it waits for the next prune,
    # which starts where this one stopped.
    assert sorted(DraftSnapshot.objects.values_list("total_count", flat=True)) == [1, 2, 40]
    assert _snapshots_prune(cutoff, batch=2) == 1
    assert sorted(DraftSnapshot.objects.values_list("total_count", flat=True)) == [1, 2]


@pytest.mark.django_db
def test_snapshots_have_one_index_for_lookups_by_tenant(tenant: Tenant) -> None:
    """The unique (tenant, fetched_at) index serves the history, newest first: no second index on the same
    columns, and none on the tenant alone (each one more write per snapshot, at millions a day)."""
    with connection.cursor() as cursor:
        indexes = connection.introspection.get_constraints(cursor, DraftSnapshot._meta.db_table)
    indexed = sorted(tuple(c["columns"]) for c in indexes.values() if c["index"] or c["unique"])
    assert indexed == [("id",), ("tenant_id", "fetched_at")]
