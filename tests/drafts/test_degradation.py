"""One fact instead of a thousand errors: when most calls of a platform fail the same retryable way across many
accounts, the sync decides WeChat is degraded for it, stops spending retries and quota account by account, calls
a few probe accounts per batch, and resumes by itself once they succeed. One account's errors never trip it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client

from drafts.models import AttemptOutcome, SkipReason, SyncAttempt, SyncRun, SyncTrigger
from drafts.sync import SYNC_FIELDS, sync_tenants
from drafts.tasks import sync_all
from tenants.models import Tenant
from tests.authority.helpers import METRICS_TOKEN
from tests.drafts.test_workers import wait_for
from tests.fixtures.sandbox import Sandbox
from tests.fixtures.sync import component_ready, make_all_due, sandbox_tenant, sandbox_tenants, worker_env
from wxplatform.component.services import default_component
from wxplatform.core import degradation
from wxplatform.core.redis_client import redis_client

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not django_settings.REDIS_URL, reason="the detector counts in Redis (the full suite has it)"),
]

DRAFT_COUNT = "/cgi-bin/draft/count"
ACCOUNTS = 30


@pytest.fixture
def degradation_settings(sync_settings: Sandbox, settings: Any) -> Iterator[Sandbox]:
    settings.WECHAT_DEGRADED_MIN_CALLS = 20
    settings.WECHAT_DEGRADED_MIN_ACCOUNTS = 10
    settings.WECHAT_DEGRADED_SHARE = 0.5
    settings.WECHAT_DEGRADED_PROBES = 3
    settings.DRAFT_SYNC_MAX_ATTEMPTS = 3
    settings.METRICS_TOKEN = METRICS_TOKEN
    _forget()
    component_ready(sync_settings)
    yield sync_settings
    _forget()


def _forget() -> None:
    client = redis_client()
    for key in client.scan_iter(match=f"{django_settings.REDIS_KEY_PREFIX}:degraded:*", count=1000):
        client.delete(key)


def batch(tenants: list[Tenant]) -> list[Tenant]:
    return list(Tenant.objects.filter(pk__in=[t.pk for t in tenants]).only(*SYNC_FIELDS).order_by("pk"))


def requests_made(sandbox: Sandbox) -> int:
    return int(sandbox.control.counters()["endpoints"].get(DRAFT_COUNT, {}).get("calls", 0))


def degraded_gauge(client: Client) -> str:
    body = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}").content.decode()
    appid = default_component().component_appid
    return next(line for line in body.splitlines() if line.startswith(f'wxp_wechat_degraded{{component="{appid}"}}'))


def test_most_calls_failing_alike_across_many_accounts_degrade_the_platform_without_retries(
    degradation_settings: Sandbox, client: Client
) -> None:
    sandbox = degradation_settings
    tenants = sandbox_tenants(sandbox, ACCOUNTS, draft_count=4)
    sandbox.control.set_faults(rate=1.0, kinds=[-1], endpoints=[DRAFT_COUNT])

    sync_tenants(batch(tenants), trigger=SyncTrigger.SCHEDULE)

    state = degradation.state(default_component().pk)
    assert state is not None and state.kind == "-1"
    # Decided on the first round: no account was retried.
    assert requests_made(sandbox) == ACCOUNTS
    assert degraded_gauge(client).endswith(" 1.0")


def test_while_degraded_a_batch_calls_only_its_probes_and_spends_no_quota_on_the_rest(
    degradation_settings: Sandbox, admin_client: Client
) -> None:
    sandbox = degradation_settings
    tenants = sandbox_tenants(sandbox, ACCOUNTS, draft_count=4)
    sandbox.control.set_faults(rate=1.0, kinds=[-1], endpoints=[DRAFT_COUNT])
    sync_tenants(batch(tenants), trigger=SyncTrigger.SCHEDULE)
    sandbox.control.reset_counters()
    quota_before = sorted(Tenant.objects.values_list("quota_used", flat=True))

    sync_tenants(batch(tenants), trigger=SyncTrigger.SCHEDULE)

    assert requests_made(sandbox) == 3
    skipped = SyncAttempt.objects.filter(outcome=AttemptOutcome.SKIPPED, skip_reason=SkipReason.WECHAT_DEGRADED)
    assert skipped.count() == ACCOUNTS - 3
    quota_after = sorted(Tenant.objects.values_list("quota_used", flat=True))
    assert sum(quota_after) - sum(quota_before) == 3
    page = admin_client.get("/admin/status/").content.decode()
    assert 'class="wechat-degraded"' in page
    assert "-1 " in page  # the failure kind with its meaning


def test_probes_that_succeed_clear_it_and_the_next_batch_calls_everyone(
    degradation_settings: Sandbox, client: Client
) -> None:
    sandbox = degradation_settings
    tenants = sandbox_tenants(sandbox, ACCOUNTS, draft_count=4)
    sandbox.control.set_faults(rate=1.0, kinds=[-1], endpoints=[DRAFT_COUNT])
    sync_tenants(batch(tenants), trigger=SyncTrigger.SCHEDULE)
    sandbox.control.clear_faults()

    sync_tenants(batch(tenants), trigger=SyncTrigger.SCHEDULE)  # three probes succeed
    cleared = degradation.state(default_component().pk)
    sandbox.control.reset_counters()
    sync_tenants(batch(tenants), trigger=SyncTrigger.SCHEDULE)

    assert cleared is None
    assert requests_made(sandbox) == ACCOUNTS
    assert degraded_gauge(client).endswith(" 0.0")


def test_one_accounts_errors_never_degrade_the_platform(degradation_settings: Sandbox) -> None:
    sandbox = degradation_settings
    unlucky = sandbox_tenant(sandbox, draft_count=1)
    # Every call of this one account fails; the 59 retries are as many failures as a degraded platform shows.
    sandbox.control.set_faults(rate=1.0, kinds=[-1], endpoints=[DRAFT_COUNT])
    for _ in range(20):
        sync_tenants(batch([unlucky]), trigger=SyncTrigger.ADMIN)
        Tenant.objects.filter(pk=unlucky.pk).update(draft_count_fetched_at=None)

    assert requests_made(sandbox) >= 20 * 3
    assert degradation.state(default_component().pk) is None


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_decides_once_for_the_platform_and_the_next_run_backs_off(
    degradation_settings: Sandbox, worker_factory: Any
) -> None:
    sandbox = degradation_settings
    sandbox_tenants(sandbox, ACCOUNTS, draft_count=4)
    sandbox.control.set_faults(rate=1.0, kinds=[-1], endpoints=[DRAFT_COUNT])
    degraded_env = {
        "WECHAT_DEGRADED_MIN_CALLS": "20",
        "WECHAT_DEGRADED_MIN_ACCOUNTS": "10",
        "WECHAT_DEGRADED_PROBES": "3",
        "DRAFT_SYNC_MAX_ATTEMPTS": "3",
        "DRAFT_SYNC_CHUNK_SIZE": str(ACCOUNTS),
    }
    worker_factory(concurrency=1, env=worker_env(**degraded_env))

    sync_all.delay()
    wait_for(lambda: SyncRun.objects.filter(finished_at__isnull=False).count() == 1, timeout=60, what="run 1")
    first = requests_made(sandbox)
    make_all_due()  # every account due again, as after the floor interval
    sync_all.delay()
    wait_for(lambda: SyncRun.objects.filter(finished_at__isnull=False).count() == 2, timeout=60, what="run 2")

    assert first == ACCOUNTS  # decided in the first round: nobody retried one by one
    assert requests_made(sandbox) - first == 3  # the second run calls its probes only
    assert degradation.state(default_component().pk) is not None
