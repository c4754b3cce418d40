"""The account's quota as WeChat counts it: its rate limits stored from openapi/quota/get, the sync kept within
component_rate_limit by one budget shared by every worker, and who used the quota (docs/wechat/quota.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from drafts.models import AttemptOutcome, SkipReason, SyncAttempt, SyncTrigger
from drafts.quota import attributions_with_others_today, quota_attribution
from drafts.rules import quota_day
from drafts.services import draft_count_sync_tenant
from drafts.sync import RATE_WINDOW_SCOPE
from tenants.models import Tenant
from tenants.quota import tenant_quota_read
from tests.drafts.test_sync import SHANGHAI, draft_count_calls, sync_all
from tests.factories import make_service_key, service_headers
from tests.fixtures.sandbox import Sandbox
from tests.fixtures.sync import component_ready, sandbox_tenant
from wxplatform.component.services import default_component
from wxplatform.core.throttling import windows_take

pytestmark = pytest.mark.django_db

DRAFT_COUNT = "/cgi-bin/draft/count"
HOUR = {"call_count": 2, "refresh_second": 3600}


def _limited_tenant(sandbox: Sandbox, **quota: object) -> Tenant:
    """A tenant whose account WeChat limits to 2 third-party draft/count calls an hour, read into our row."""
    tenant = sandbox_tenant(sandbox, draft_count=3)
    sandbox.control.set_quota(tenant.authorizer_appid, component_rate_limit=HOUR, **quota)
    tenant_quota_read(tenant=tenant)
    tenant.refresh_from_db()
    return tenant


def test_a_quota_reading_stores_both_rate_limits(sync_settings: Sandbox) -> None:
    tenant = sandbox_tenant(sync_settings)
    sync_settings.control.set_quota(
        tenant.authorizer_appid, rate_limit={"call_count": 100, "refresh_second": 60}, component_rate_limit=HOUR
    )

    tenant_quota_read(tenant=tenant)

    tenant.refresh_from_db()
    assert (tenant.quota_rate_calls, tenant.quota_rate_seconds) == (100, 60)
    assert (tenant.quota_component_rate_calls, tenant.quota_component_rate_seconds) == (2, 3600)
    assert (tenant.quota_daily_limit, tenant.quota_wechat_used, tenant.quota_remain) == (1000, 0, 1000)


def test_the_sync_keeps_each_account_within_its_component_rate_limit(sync_settings: Sandbox) -> None:
    tenant = _limited_tenant(sync_settings)

    reports = [sync_all() for _ in range(3)]

    assert [r.changed + r.unchanged for r in reports] == [1, 1, 0]
    assert reports[2].skipped == {SkipReason.RATE_WINDOW: 1}
    # Only two calls reached WeChat, which would have answered the third with 45011.
    assert draft_count_calls(sync_settings) == {tenant.authorizer_appid: 2}
    attempt = SyncAttempt.objects.filter(tenant=tenant).order_by("-at", "-id").first()
    assert attempt is not None
    assert (attempt.outcome, attempt.skip_reason) == (AttemptOutcome.SKIPPED, SkipReason.RATE_WINDOW)


def test_an_on_demand_sync_over_the_window_is_answered_from_storage(sync_settings: Sandbox) -> None:
    tenant = _limited_tenant(sync_settings)
    sync_all()
    sync_all()

    outcome = draft_count_sync_tenant(tenant=tenant, trigger=SyncTrigger.ADMIN)

    assert outcome is not None
    assert (outcome.outcome, outcome.reason, outcome.total_count) == (
        AttemptOutcome.CACHED,
        SkipReason.RATE_WINDOW,
        3,
    )
    assert draft_count_calls(sync_settings) == {tenant.authorizer_appid: 2}


def test_an_account_without_a_reported_limit_is_not_held_back(sync_settings: Sandbox) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=1)

    reports = [sync_all(SyncTrigger.CLI) for _ in range(3)]

    assert [r.changed + r.unchanged for r in reports] == [1, 1, 1]
    assert draft_count_calls(sync_settings) == {tenant.authorizer_appid: 3}


def test_the_window_budget_is_one_for_every_worker(sync_settings: Sandbox) -> None:
    """Another process (a second worker) spends the account's window in the same Redis: this one has none left."""
    budget = [("1:wxshared", 2, 3600)]
    code = (
        "import django, json; django.setup();"
        "from wxplatform.core.throttling import windows_take;"
        f"print(json.dumps(windows_take({RATE_WINDOW_SCOPE!r}, {budget!r})))"
    )
    env = os.environ | {"DJANGO_SETTINGS_MODULE": "wxplatform.settings"}
    other_worker = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=60
    )

    assert json.loads(other_worker.stdout.strip().splitlines()[-1]) == [True]
    assert windows_take(RATE_WINDOW_SCOPE, budget) == [True]
    assert windows_take(RATE_WINDOW_SCOPE, budget) == [False]


# --- Who used the quota ----------------------------------------------------------------------------------


def test_others_exhausting_the_quota_show_as_used_by_others_and_the_account_is_paused(sync_settings: Sandbox) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=4)
    sync_all()
    sync_all()
    # Another third party (or the merchant's own tool) spends the rest of the day's 1000 calls.
    sync_settings.control.set_quota(tenant.authorizer_appid, used=1000)

    report = sync_all()
    tenant_quota_read(tenant=tenant)  # what read_quota does after the 45009

    assert report.failed == {45009: 1}
    tenant.refresh_from_db()
    assert tenant.paused_until is not None and tenant.paused_until > timezone.now()
    assert tenant.quota_used == 3  # our own counter stays low
    attribution = quota_attribution(tenant=tenant)
    assert (attribution.daily_limit, attribution.used, attribution.remain) == (1000, 1000, 0)
    assert (attribution.used_by_us, attribution.used_by_others) == (3, 997)
    assert attribution.others_share == pytest.approx(0.997)
    assert sync_all().skipped == {SkipReason.PAUSED: 1}


@pytest.mark.django_db(transaction=True)
def test_calls_through_the_gateway_count_as_ours(sync_settings: Sandbox, client: Client) -> None:
    component_ready(sync_settings)
    tenant = sandbox_tenant(sync_settings, draft_count=2)
    _key, raw = make_service_key(name="editor", allowed_paths=["/cgi-bin/draft/*"])
    url = f"/internal/v1/components/{default_component().component_appid}/authorizers/{tenant.authorizer_appid}"
    for _ in range(3):
        assert client.get(f"{url}/wechat{DRAFT_COUNT}", **service_headers(raw)).status_code == 200
    sync_all()
    sync_settings.control.set_quota(tenant.authorizer_appid, used=10)  # 6 more by others

    tenant_quota_read(tenant=tenant)

    tenant.refresh_from_db()
    attribution = quota_attribution(tenant=tenant)
    assert (attribution.used, attribution.used_by_us, attribution.used_by_others) == (10, 4, 6)
    assert attributions_with_others_today()[tenant.pk] == attribution


def test_a_new_quota_day_forgets_yesterdays_reading_and_calls(sync_settings: Sandbox) -> None:
    """A reading at 23:50 China time: ten minutes past midnight WeChat's counts have restarted."""
    now = timezone.now()
    midnight = now.astimezone(SHANGHAI).replace(hour=0, minute=0, second=0, microsecond=0)
    tenant = sandbox_tenant(sync_settings)
    Tenant.objects.filter(pk=tenant.pk).update(
        quota_day=quota_day(midnight - timedelta(minutes=10)),
        quota_used=40,
        quota_daily_limit=1000,
        quota_wechat_used=900,
        quota_remain=100,
        quota_used_at_read=40,
        quota_read_at=midnight - timedelta(minutes=10),
    )
    tenant.refresh_from_db()

    before = quota_attribution(tenant=tenant, now=midnight - timedelta(minutes=5))
    after = quota_attribution(tenant=tenant, now=midnight + timedelta(minutes=10))

    assert (before.used, before.used_by_us, before.used_by_others) == (900, 40, 860)
    assert (after.daily_limit, after.used, after.remain, after.used_by_us, after.used_by_others) == (
        1000,
        None,
        None,
        0,
        None,
    )
    assert after.read_at == midnight - timedelta(minutes=10)
    assert tenant.pk not in attributions_with_others_today(now=midnight + timedelta(minutes=10))
    # Today's sync spends from a fresh counter, and a reading of the new day counts only the new day's calls.
    sync_all()
    sync_settings.control.set_quota(tenant.authorizer_appid, used=5)
    tenant_quota_read(tenant=tenant)
    tenant.refresh_from_db()
    today = quota_attribution(tenant=tenant)
    assert (tenant.quota_used, today.used, today.used_by_us, today.used_by_others) == (1, 5, 1, 4)
