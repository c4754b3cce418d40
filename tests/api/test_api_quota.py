"""GET /api/v1/quota: the calling account's draft/count quota as WeChat last counted it, and who used it.

Read from storage for the calling tenant only, with an ETag, every refusal in the one error shape and nothing
changed by it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from pytest_django.fixtures import Settings

from drafts.rules import quota_day
from tenants.models import Tenant
from tenants.quota import quota_day_start
from tenants.services import api_key_revoke
from tests.api.test_api import error_of, key_for
from tests.factories import api_headers, make_api_key, make_service_key, make_tenant
from wxplatform.authority.models import GatewayUsage
from wxplatform.core.times import machine_time

pytestmark = pytest.mark.django_db

QUOTA_URL = "/api/v1/quota"


def read_today(**overrides: Any) -> Tenant:
    """A tenant whose quota WeChat reported a minute ago: 1000 a day, 300 used, 20 of them by the sync."""
    now = timezone.now()
    fields = {
        "quota_day": quota_day(now),
        "quota_used": 25,
        "quota_daily_limit": 1000,
        "quota_wechat_used": 300,
        "quota_remain": 700,
        "quota_used_at_read": 20,
        "quota_read_at": now - timedelta(minutes=1),
    }
    return make_tenant(**(fields | overrides))


def test_quota_splits_wechats_count_between_this_platform_and_others(client: Client) -> None:
    tenant = read_today()
    # Two calls of a service through the gateway today, and one of another account that is not counted.
    key, _raw = make_service_key(name="editor")
    usage = {"day": quota_day(timezone.now()), "key": key, "component_appid": tenant.component.component_appid}
    GatewayUsage.objects.create(**usage, authorizer_appid=tenant.authorizer_appid, path="/cgi-bin/draft/count", calls=2)
    GatewayUsage.objects.create(**usage, authorizer_appid="wxelsewhere", path="/cgi-bin/draft/count", calls=50)
    GatewayUsage.objects.create(**usage, authorizer_appid=tenant.authorizer_appid, path="/cgi-bin/draft/get", calls=9)

    response = client.get(QUOTA_URL, **key_for(tenant))

    assert response.status_code == 200
    assert response.json() == {
        "api": "/cgi-bin/draft/count",
        "daily_limit": 1000,
        "used": 300,
        "remain": 700,
        "used_by_us": 22,
        "used_by_others": 278,
        "read_at": machine_time(tenant.quota_read_at),
    }
    assert response["Cache-Control"] == "private, no-cache"


def test_quota_never_read_has_only_our_own_calls(client: Client) -> None:
    tenant = make_tenant(quota_day=quota_day(timezone.now()), quota_used=4)

    body = client.get(QUOTA_URL, **key_for(tenant)).json()

    assert body == {
        "api": "/cgi-bin/draft/count",
        "daily_limit": None,
        "used": None,
        "remain": None,
        "used_by_us": 4,
        "used_by_others": None,
        "read_at": None,
    }


def test_quota_read_before_midnight_china_time_leaves_todays_counts_unknown(client: Client) -> None:
    """WeChat's counts restart at midnight in Asia/Shanghai: yesterday's reading tells nothing of today."""
    now = timezone.now()
    before_midnight = quota_day_start(now) - timedelta(minutes=10)
    tenant = read_today(quota_day=quota_day(before_midnight), quota_used=900, quota_read_at=before_midnight)

    body = client.get(QUOTA_URL, **key_for(tenant)).json()

    assert (body["daily_limit"], body["used"], body["remain"], body["used_by_others"]) == (1000, None, None, None)
    assert body["used_by_us"] == 0  # yesterday's 900 calls are not today's
    assert body["read_at"] == machine_time(before_midnight)


def test_quota_answers_304_to_its_own_etag_and_a_new_one_when_it_changes(client: Client) -> None:
    tenant = read_today()
    headers = key_for(tenant)
    first = client.get(QUOTA_URL, **headers)

    again = client.get(QUOTA_URL, **headers, HTTP_IF_NONE_MATCH=first["ETag"])
    Tenant.objects.filter(pk=tenant.pk).update(quota_wechat_used=310, quota_remain=690)
    changed = client.get(QUOTA_URL, **headers, HTTP_IF_NONE_MATCH=first["ETag"])

    assert (again.status_code, again.content) == (304, b"")
    assert changed.status_code == 200
    assert changed["ETag"] != first["ETag"]
    assert changed.json()["used_by_others"] == 290


def test_quota_is_the_calling_tenants_own(client: Client) -> None:
    mine = read_today(quota_wechat_used=100, quota_remain=900, quota_used_at_read=100)
    other = read_today(quota_wechat_used=999, quota_remain=1, quota_used_at_read=1)

    body = client.get(QUOTA_URL, **key_for(mine)).json()

    assert (body["used"], body["used_by_us"], body["used_by_others"]) == (100, 100, 0)
    # No parameter can name another account: an unknown one is not read as such.
    other_body = client.get(QUOTA_URL, {"appid": other.authorizer_appid}, **key_for(mine)).json()
    assert other_body == body


# --- Denied paths: each in the one error shape, each changing nothing ------------------------------------


def _unchanged(tenant: Tenant) -> None:
    stored = Tenant.objects.get(pk=tenant.pk)
    assert (stored.quota_used, stored.quota_wechat_used, stored.quota_read_at) == (
        tenant.quota_used,
        tenant.quota_wechat_used,
        tenant.quota_read_at,
    )


def test_quota_without_a_key_is_401(client: Client) -> None:
    tenant = read_today()

    response = client.get(QUOTA_URL)

    assert response.status_code == 401
    assert error_of(response)["code"] == "not_authenticated"
    _unchanged(tenant)


def test_quota_with_an_unknown_key_is_401(client: Client) -> None:
    tenant = read_today()

    response = client.get(QUOTA_URL, **api_headers("abcdefgh.not-a-key-at-all"))

    assert response.status_code == 401
    assert error_of(response)["code"] == "authentication_failed"
    _unchanged(tenant)


def test_quota_with_a_revoked_key_is_401(client: Client) -> None:
    tenant = read_today()
    key, raw = make_api_key(tenant)
    api_key_revoke(key=key)

    response = client.get(QUOTA_URL, **api_headers(raw))

    assert response.status_code == 401
    assert error_of(response)["code"] == "api_key_revoked"
    _unchanged(tenant)


def test_quota_with_an_expired_key_is_401(client: Client) -> None:
    tenant = read_today()
    _key, raw = make_api_key(tenant, expiry_date=timezone.now() - timedelta(seconds=1))

    response = client.get(QUOTA_URL, **api_headers(raw))

    assert response.status_code == 401
    assert error_of(response)["code"] == "api_key_expired"
    _unchanged(tenant)


def test_quota_with_a_key_of_a_revoked_authorization_is_403_history_only(client: Client) -> None:
    tenant = read_today()
    _key, raw = make_api_key(tenant, history_only=True)

    response = client.get(QUOTA_URL, **api_headers(raw))

    assert response.status_code == 403
    assert error_of(response)["code"] == "api_key_history_only"
    _unchanged(tenant)


def test_quota_over_the_keys_rate_is_429_with_retry_after(client: Client, settings: Settings) -> None:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api_key": "2/min"}}
    tenant = read_today()
    headers = key_for(tenant)
    assert [client.get(QUOTA_URL, **headers).status_code for _ in range(2)] == [200, 200]

    response = client.get(QUOTA_URL, **headers)

    assert response.status_code == 429
    assert error_of(response)["code"] == "throttled"
    assert int(response["Retry-After"]) >= 1
    _unchanged(tenant)


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete", "options"])
def test_quota_is_read_only(client: Client, method: str) -> None:
    tenant = read_today()

    response = getattr(client, method)(QUOTA_URL, **key_for(tenant))

    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"
    _unchanged(tenant)


def test_quota_given_a_parameter_twice_is_400_naming_it(client: Client) -> None:
    tenant = read_today()

    response = client.get(f"{QUOTA_URL}?x=1&x=2", **key_for(tenant))

    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_parameter"
    _unchanged(tenant)
