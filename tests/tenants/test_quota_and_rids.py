"""Each account's own quota and the rids of failures: eligibility from status and kind, the budget from the
account's daily_limit, a quota read after 45009 through a worker, and rids of failed token refreshes."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from drafts.models import SyncTrigger
from drafts.rules import quota_day, skip_reason
from drafts.services import draft_count_sync_tenant
from tenants.models import AccountKind, Eligibility, Tenant
from tenants.services import eligibility_for, tenant_token_refresh
from tests.factories import api_headers, make_api_key, make_tenant
from tests.fixtures.sandbox import Sandbox
from tests.fixtures.sync import component_ready, sandbox_tenant, worker_env
from tests.fixtures.worker import Worker
from wxplatform.wechat.errors import WeChatError


@pytest.mark.parametrize(
    ("kind", "func_ids", "status", "expected"),
    [
        (AccountKind.SERVICE, [1, 11], 1, Eligibility.ELIGIBLE),
        (AccountKind.SUBSCRIPTION, [100], None, Eligibility.ELIGIBLE),
        (AccountKind.SERVICE, [1, 11], 18, Eligibility.ELIGIBLE),
        (AccountKind.SERVICE, [1, 11], 14, Eligibility.ACCOUNT_STATUS),
        (AccountKind.SERVICE, [1, 11], 16, Eligibility.ACCOUNT_STATUS),
        (AccountKind.SERVICE, [1, 11], 19, Eligibility.ACCOUNT_STATUS),
        (AccountKind.SERVICE, [1, 15], 1, Eligibility.MISSING_PERMISSION),
        (AccountKind.MINI_PROGRAM, [1, 11], 1, Eligibility.WRONG_KIND),
        (AccountKind.OTHER, [1, 11], 16, Eligibility.WRONG_KIND),
    ],
)
def test_eligibility_from_kind_status_and_sets(
    kind: str, func_ids: list[int], status: int | None, expected: Eligibility
) -> None:
    assert eligibility_for(account_kind=kind, func_ids=func_ids, account_status=status)[0] == expected


def test_a_banned_account_is_named_and_a_warned_one_is_warned() -> None:
    banned = eligibility_for(account_kind=AccountKind.SERVICE, func_ids=[11], account_status=16)[1]
    warned = eligibility_for(account_kind=AccountKind.SERVICE, func_ids=[11], account_status=18)[1]

    assert banned == "WeChat reports the account as banned (16)."
    assert warned == "WeChat reports the account as warned (18); it may still be called."


@pytest.mark.django_db
def test_the_api_answers_403_with_the_status_for_a_banned_account(client: Client) -> None:
    detail = eligibility_for(account_kind=AccountKind.SERVICE, func_ids=[11], account_status=16)[1]
    tenant = make_tenant(eligibility=Eligibility.ACCOUNT_STATUS, eligibility_detail=detail, account_status=16)
    _key, raw = make_api_key(tenant)

    response = client.get("/api/v1/draft-count", **api_headers(raw))

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "tenant_ineligible"
    assert "banned (16)" in response.json()["error"]["message"]


@pytest.mark.django_db
def test_the_scheduler_budget_is_a_share_of_the_accounts_own_limit() -> None:
    now = timezone.now()
    small = make_tenant(quota_daily_limit=100, quota_used=80, quota_day=quota_day(now))
    default = make_tenant(quota_used=80, quota_day=quota_day(now))

    assert skip_reason(small, trigger=SyncTrigger.SCHEDULE, now=now) == "quota_budget"
    assert skip_reason(default, trigger=SyncTrigger.SCHEDULE, now=now) is None


@pytest.mark.django_db(transaction=True)
def test_a_45009_makes_a_worker_read_the_accounts_real_quota(
    sync_settings: Sandbox, worker_factory: Callable[..., Worker]
) -> None:
    component_ready(sync_settings)
    tenant = sandbox_tenant(sync_settings)
    sync_settings.control.set_quota(tenant.authorizer_appid, daily_limit=300, used=300)
    worker_factory(env=worker_env())

    draft_count_sync_tenant(tenant=tenant, trigger=SyncTrigger.ADMIN)

    deadline = time.monotonic() + 30
    while Tenant.objects.get(pk=tenant.pk).quota_read_at is None:
        assert time.monotonic() < deadline, "the quota was not read after 45009"
        time.sleep(0.1)
    tenant.refresh_from_db()
    assert (tenant.quota_daily_limit, tenant.quota_wechat_used, tenant.quota_remain) == (300, 300, 0)
    assert tenant.paused_until is not None


@pytest.mark.django_db(transaction=True)
def test_a_failed_token_refresh_keeps_its_rid(sync_settings: Sandbox) -> None:
    component_ready(sync_settings)
    tenant = sandbox_tenant(sync_settings)
    sync_settings.control.set_faults(
        rate=1.0, kinds=[-1], endpoints=["/cgi-bin/component/api_authorizer_token"], max_faults=1
    )
    Tenant.objects.filter(pk=tenant.pk).update(access_token_expires_at=timezone.now() - timedelta(seconds=1))

    with pytest.raises(WeChatError) as caught:
        tenant_token_refresh(tenant_id=tenant.pk)

    tenant.refresh_from_db()
    assert caught.value.rid
    assert (tenant.last_error_code, tenant.last_error_rid) == (-1, caught.value.rid)
