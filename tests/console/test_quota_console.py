"""Quota in the console: who used an account's quota (its page, the status page, /metrics) and the clears left,
which stay a staff decision."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from drafts.rules import quota_day
from tenants.models import Tenant
from tenants.quota import quota_month
from tests.factories import make_tenant

pytestmark = pytest.mark.django_db

STATUS = reverse("admin-platform-status")
METRICS_TOKEN = "metrics-test-token"


def read_today(**overrides: Any) -> Tenant:
    now = timezone.now()
    fields = {
        "quota_day": quota_day(now),
        "quota_used": 30,
        "quota_daily_limit": 1000,
        "quota_wechat_used": 30,
        "quota_remain": 970,
        "quota_used_at_read": 30,
        "quota_read_at": now - timedelta(minutes=5),
    }
    return make_tenant(**(fields | overrides))


def _page(client: Client, tenant: Tenant) -> str:
    response = client.get(reverse("admin:tenants_tenant_change", args=[tenant.pk]))
    assert response.status_code == 200
    return response.content.decode()


def _gauge(client: Client, name: str) -> float:
    body = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}").content.decode()
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise AssertionError(f"{name} not exported")


def test_the_account_page_tells_our_calls_from_others(admin_client: Client) -> None:
    tenant = read_today(quota_wechat_used=730, quota_remain=270)

    html = _page(admin_client, tenant)

    assert "30 by this platform (sync and gateway), 700 by others" in html
    assert "of 730 counted by WeChat at the last reading" in html


def test_the_account_page_shows_the_rate_limits_wechat_reported(admin_client: Client) -> None:
    tenant = read_today(
        quota_component_rate_calls=50, quota_component_rate_seconds=60, quota_rate_calls=0, quota_rate_seconds=0
    )

    html = _page(admin_client, tenant)

    assert "third parties (this platform&#x27;s budget): 50 calls per 60 s; the account&#x27;s own: none" in html


def test_the_account_page_shows_the_clears_left_and_never_clears_by_itself(admin_client: Client) -> None:
    tenant = read_today(quota_clears=3, quota_clears_month=quota_month(timezone.now()))

    html = _page(admin_client, tenant)

    assert "at most 7 of 10 left: 3 made by this service" in html
    assert "Clear quota… (at most 7 of 10 clears left this month)" in html
    tenant.refresh_from_db()
    assert tenant.quota_clears == 3  # showing the page cleared nothing


def test_the_status_page_lists_accounts_others_use_over_the_set_share(admin_client: Client, settings: Any) -> None:
    settings.DRAFT_QUOTA_OTHERS_ALERT_SHARE = 0.5
    crowded = read_today(nickname="Crowded", quota_wechat_used=830, quota_remain=170)
    read_today(nickname="Shared a little", quota_wechat_used=330, quota_remain=670)
    read_today(nickname="Ours alone")

    html = admin_client.get(STATUS).content.decode()

    table = html[html.index('id="quota-used-by-others"') :].split("</table>")[0]
    assert f"<td>Crowded ({crowded.authorizer_appid})</td><td>1000</td><td>830</td><td>30</td><td>800</td>" in table
    assert "Shared a little" not in table and "Ours alone" not in table


def test_metrics_count_accounts_others_use_over_the_set_share(client: Client, settings: Any) -> None:
    settings.METRICS_TOKEN = METRICS_TOKEN
    settings.DRAFT_QUOTA_OTHERS_ALERT_SHARE = 0.5
    read_today(quota_wechat_used=830, quota_remain=170)
    read_today(quota_wechat_used=330, quota_remain=670)
    # Yesterday's reading tells nothing of today.
    yesterday = timezone.now() - timedelta(days=1)
    read_today(quota_day=quota_day(yesterday), quota_read_at=yesterday, quota_wechat_used=1000, quota_used_at_read=0)

    assert _gauge(client, "wxp_draft_quota_others_over_share") == 1
    assert _gauge(client, "wxp_draft_quota_used_by_others_ratio_max") == pytest.approx(0.8)


def test_the_account_page_links_the_authorization_page_for_61007(admin_client: Client) -> None:
    tenant = make_tenant(eligibility="rejected", eligibility_detail="WeChat refused (61007).", last_error_code=61007)

    html = _page(admin_client, tenant)

    assert '<a href="http://127.0.0.1:8000/wechat/authorize" id="reauthorize-link">' in html
    assert "(WeChat errcode 61007)" in html


def test_the_account_page_says_what_the_account_lacks_for_48001(admin_client: Client) -> None:
    tenant = make_tenant(eligibility="rejected", eligibility_detail="WeChat refused (48001).", last_error_code=48001)

    html = _page(admin_client, tenant)

    assert 'id="reauthorize-link"' not in html
    assert "(WeChat errcode 48001)" in html
    assert "authorizing this platform again does not change it" in html
