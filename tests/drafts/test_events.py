"""WeChat's draft-box events read the count again (docs/wechat/draft-events.md), end to end: the sandbox publishes or
mass-sends a draft and pushes PUBLISHJOBFINISH / MASSSENDJOBFINISH to the real message URL of a live server; a real
Celery worker reads the count, which is stored with its snapshot, its attempt (trigger "event") and the
draft_count.changed webhook. Bursts make one read; revoked, ineligible and test accounts none; each account a
bounded number per hour, past which the schedule reads them at its next run."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.utils import timezone

from drafts.models import AttemptOutcome, DraftSnapshot, SnapshotReason, SyncAttempt, SyncTrigger
from tenants.models import Eligibility, Tenant, TenantStatus
from tests.fixtures.platform import LivePlatform
from tests.fixtures.receiver import Receiver
from tests.fixtures.sync import FAST, sandbox_tenant, worker_env
from tests.fixtures.worker import Worker
from tests.webhooks.helpers import make_endpoint
from wxplatform.core.redis_client import redis_client

pytestmark = pytest.mark.django_db(transaction=True)

# Short enough for the suite, long enough that a burst of control calls fits in one window.
DEBOUNCE = 1.5
# Waiting for what must not happen: the debounce, the worker's pick-up and a read, with room to spare.
QUIET = DEBOUNCE + 3.0


@pytest.fixture
def events(
    platform: LivePlatform,
    settings: Any,
    webhook_settings: Any,
    worker_factory: Callable[..., Worker],
) -> Iterator[LivePlatform]:
    """The live platform, its sandbox pushing job events at once, and a worker with the test's settings."""
    for name, value in FAST.items():
        setattr(settings, name, value)
    settings.DRAFT_EVENT_DEBOUNCE = DEBOUNCE
    _forget_event_keys(settings.REDIS_KEY_PREFIX)
    platform.control.update_config(draft_event_delay=0)
    env = worker_env(DRAFT_EVENT_DEBOUNCE=str(DEBOUNCE), WEBHOOK_ALLOW_PRIVATE_TARGETS="true")
    worker_factory(env=env)
    yield platform
    _forget_event_keys(settings.REDIS_KEY_PREFIX)


def _forget_event_keys(prefix: str) -> None:
    """Tenant ids repeat from test to test (tables are truncated): their debounce keys and hourly counters go."""
    client = redis_client()
    for pattern in (f"{prefix}:drafts:event-read:*", f"{prefix}:throttle:draft_event:*"):
        for key in client.scan_iter(pattern):
            client.delete(key)


def wait_for_count(tenant: Tenant, count: int, timeout: float = 30.0) -> Tenant:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tenant.refresh_from_db()
        if tenant.draft_count == count:
            return tenant
        time.sleep(0.05)
    raise AssertionError(f"draft_count is {tenant.draft_count}, expected {count}")


def wechat_reads(platform: LivePlatform, tenant: Tenant) -> int:
    calls: dict[str, int] = platform.control.counters()["draft_count_calls"]
    return calls.get(tenant.authorizer_appid, 0)


def test_a_published_draft_updates_the_count_with_snapshot_webhook_and_attempt(
    events: LivePlatform, receiver: Receiver
) -> None:
    tenant = sandbox_tenant(events.sandbox, draft_count=3)
    tenant.draft_count = 3
    tenant.save(update_fields=["draft_count"])
    make_endpoint(tenant, receiver.url(), events=["draft_count.changed"])

    published = events.control.publish(tenant.authorizer_appid, wait=True)

    assert published["push"]["status"] == 200 and published["push"]["reply_kind"] == "success"
    wait_for_count(tenant, 2)
    assert wechat_reads(events, tenant) == 1
    snapshot = DraftSnapshot.objects.get(tenant=tenant)
    assert (snapshot.total_count, snapshot.reason) == (2, SnapshotReason.CHANGED)
    attempt = SyncAttempt.objects.get(tenant=tenant)
    assert (attempt.trigger, attempt.outcome, attempt.total_count) == (SyncTrigger.EVENT, AttemptOutcome.CHANGED, 2)
    [hook] = receiver.wait_for(1)
    payload = json.loads(hook.body)
    assert payload["type"] == "draft_count.changed"
    assert (payload["data"]["total_count"], payload["data"]["previous_total_count"]) == (2, 3)


def test_a_mass_sent_draft_updates_the_count(events: LivePlatform) -> None:
    tenant = sandbox_tenant(events.sandbox, draft_count=5)

    events.control.mass_send(tenant.authorizer_appid, wait=True)

    wait_for_count(tenant, 4)
    assert SyncAttempt.objects.get(tenant=tenant).trigger == SyncTrigger.EVENT


def test_a_burst_of_five_events_makes_one_read(events: LivePlatform) -> None:
    tenant = sandbox_tenant(events.sandbox, draft_count=8)

    for _ in range(5):
        events.control.publish(tenant.authorizer_appid)

    wait_for_count(tenant, 3)
    time.sleep(QUIET)
    assert wechat_reads(events, tenant) == 1
    assert SyncAttempt.objects.filter(tenant=tenant, trigger=SyncTrigger.EVENT).count() == 1
    assert [m["message"]["Event"] for m in events.control.messages()] == ["PUBLISHJOBFINISH"] * 5


@pytest.mark.parametrize(
    "state",
    [
        {"status": TenantStatus.REVOKED},
        {"eligibility": Eligibility.REJECTED},
        {"is_test_account": True},
    ],
    ids=["revoked", "ineligible", "test-account"],
)
def test_accounts_that_may_not_be_called_get_no_read(events: LivePlatform, state: dict[str, Any]) -> None:
    tenant = sandbox_tenant(events.sandbox, draft_count=4, **state)

    published = events.control.publish(tenant.authorizer_appid, wait=True)

    # The push is answered as any other, and nothing else happens.
    assert published["push"]["status"] == 200 and published["push"]["reply_kind"] == "success"
    time.sleep(QUIET)
    assert wechat_reads(events, tenant) == 0
    tenant.refresh_from_db()
    assert (tenant.draft_count, tenant.draft_count_fetched_at) == (None, None)
    assert not SyncAttempt.objects.filter(tenant=tenant).exists()


def test_event_reads_per_account_stop_at_the_hourly_bound(events: LivePlatform, settings: Any) -> None:
    settings.DRAFT_EVENT_SYNC_RATE = "2/h"
    tenant = sandbox_tenant(events.sandbox, draft_count=6)
    other = sandbox_tenant(events.sandbox, draft_count=6)

    for expected in (5, 4):
        events.control.publish(tenant.authorizer_appid, wait=True)
        wait_for_count(tenant, expected)
        time.sleep(DEBOUNCE)
    before_third = timezone.now()
    events.control.publish(tenant.authorizer_appid, wait=True)
    events.control.publish(other.authorizer_appid, wait=True)

    wait_for_count(other, 5)
    time.sleep(QUIET)
    assert wechat_reads(events, tenant) == 2
    tenant.refresh_from_db()
    assert tenant.draft_count == 4
    # Not read at once: due at the next scheduled run, its quiet time restarted (docs/polling.md#poll-soon).
    assert tenant.next_poll_at is not None and tenant.next_poll_at <= timezone.now()
    assert tenant.draft_activity_at is not None and tenant.draft_activity_at >= before_third
    assert SyncAttempt.objects.filter(tenant=tenant, trigger=SyncTrigger.EVENT).count() == 2


def test_a_silent_edit_in_the_web_editor_reads_nothing(events: LivePlatform) -> None:
    tenant = sandbox_tenant(events.sandbox, draft_count=1)

    events.control.add_drafts(tenant.authorizer_appid, 3)

    time.sleep(QUIET)
    assert wechat_reads(events, tenant) == 0
    assert events.control.messages() == []
