"""Merchant onboarding: the authorization page, the callback, the `authorized` push, in any order."""

from __future__ import annotations

import re
import time
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tenants.models import AuthorizationCode, Eligibility, Tenant, TenantAPIKey, TenantStatus
from tests.fixtures.platform import LivePlatform
from wxplatform.component.services import default_component

pytestmark = pytest.mark.django_db(transaction=True)

PREAUTH = "/cgi-bin/component/api_create_preauthcode"
QUERY_AUTH = "/cgi-bin/component/api_query_auth"


def calls(platform: LivePlatform, path: str) -> int:
    return int(platform.control.counters()["endpoints"].get(path, {}).get("calls", 0))


def authorization_link(platform: LivePlatform, browser: requests.Session | None = None) -> dict[str, str]:
    page = (browser or requests.Session()).get(f"{platform.url}/wechat/authorize", timeout=10)
    assert page.status_code == 200, page.text
    link = unescape(re.search(r'id="authorize-pc"[^>]*href="([^"]+)"', page.text).group(1))  # type: ignore[union-attr]
    return {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}


def consent(
    platform: LivePlatform, appid: str, *, push: bool, browser: requests.Session | None = None
) -> dict[str, Any]:
    """The merchant's consent on WeChat's page, reached from the authorization page in `browser`."""
    link = authorization_link(platform, browser)
    return platform.control.consent(link["pre_auth_code"], appid, redirect_uri=link["redirect_uri"], push=push)


def api_key_on(page: requests.Response) -> str | None:
    match = re.search(r'id="api-key">([^<]+)<', page.text)
    return match.group(1) if match else None


def test_authorization_page_offers_official_accounts_a_fresh_single_use_link(ready_platform: LivePlatform) -> None:
    link = authorization_link(ready_platform)

    assert link["auth_type"] == "1"
    assert link["component_appid"] == "wx0000sandbox0comp"
    assert link["redirect_uri"] == f"{ready_platform.url}/wechat/authorize/callback"
    assert link["pre_auth_code"]
    assert calls(ready_platform, PREAUTH) == 1


@pytest.mark.smoke
def test_callback_creates_the_tenant_and_shows_its_first_key_once(ready_platform: LivePlatform) -> None:
    ready_platform.control.create_authorizer(
        appid="wxaaaa000000000001", nickname="Tea House", kind="service", func_ids=[1, 11], draft_count=4
    )
    browser = requests.Session()
    answer = consent(ready_platform, "wxaaaa000000000001", push=False, browser=browser)

    first = browser.get(answer["redirect_url"], timeout=30)
    again = browser.get(answer["redirect_url"], timeout=30)

    assert first.status_code == again.status_code == 200
    tenant = Tenant.objects.get(authorizer_appid="wxaaaa000000000001")
    assert (tenant.nickname, tenant.account_kind, tenant.status) == ("Tea House", "service", TenantStatus.ACTIVE)
    assert (tenant.eligibility, tenant.func_ids) == (Eligibility.ELIGIBLE, [1, 11])
    assert tenant.access_token and tenant.refresh_token and tenant.access_token_expires_at
    key = api_key_on(first)
    assert key is not None and api_key_on(again) is None
    assert TenantAPIKey.objects.get_from_key(key).tenant == tenant
    assert TenantAPIKey.objects.filter(tenant=tenant).count() == 1
    assert calls(ready_platform, QUERY_AUTH) == 1


@pytest.mark.parametrize(
    ("kind", "func_ids", "eligibility"),
    [
        ("subscription", [1, 100], Eligibility.ELIGIBLE),
        ("subscription", [1, 7], Eligibility.MISSING_PERMISSION),
        ("mini_program", [11, 17], Eligibility.WRONG_KIND),
    ],
)
def test_ineligible_accounts_are_stored_with_the_reason(
    ready_platform: LivePlatform, kind: str, func_ids: list[int], eligibility: str
) -> None:
    account = ready_platform.control.create_authorizer(kind=kind, func_ids=func_ids)
    answer = consent(ready_platform, account["appid"], push=False)

    page = requests.get(answer["redirect_url"], timeout=30)

    assert page.status_code == 200
    tenant = Tenant.objects.get(authorizer_appid=account["appid"])
    assert tenant.eligibility == eligibility
    assert bool(tenant.eligibility_detail) == (eligibility != Eligibility.ELIGIBLE)


@pytest.mark.smoke
def test_push_first_then_callback_gives_the_same_tenant_with_one_exchange(
    ready_platform: LivePlatform, worker_factory: Any
) -> None:
    worker_factory()
    account = ready_platform.control.create_authorizer(kind="service", func_ids=[11])
    browser = requests.Session()
    answer = consent(ready_platform, account["appid"], push=True, browser=browser)
    assert answer["push"]["status"] == 200
    deadline = time.monotonic() + 20
    while not Tenant.objects.filter(authorizer_appid=account["appid"]).exists() and time.monotonic() < deadline:
        time.sleep(0.1)

    page = browser.get(answer["redirect_url"], timeout=30)

    assert page.status_code == 200
    assert Tenant.objects.filter(authorizer_appid=account["appid"]).count() == 1
    assert api_key_on(page) is not None
    assert calls(ready_platform, QUERY_AUTH) == 1


# Longer than their columns (issue 28, finding 2): the callback answered 500 and the pushed code failed on every
# retry with DataError.
OVER_LONG = {"nickname": "名" * 300, "principal_name": "p" * 300, "head_img": "https://wx.qlogo.cn/" + "h" * 600}


def _stored_cut(appid: str) -> None:
    tenant = Tenant.objects.get(authorizer_appid=appid)
    assert (tenant.nickname, tenant.principal_name) == ("名" * 255, "p" * 255)
    assert tenant.head_img == OVER_LONG["head_img"][:500]
    assert (tenant.profile_raw["nick_name"], tenant.profile_raw["head_img"]) == (
        OVER_LONG["nickname"],
        OVER_LONG["head_img"],
    )


def test_an_over_long_profile_is_onboarded_through_the_callback_cut_to_fit(ready_platform: LivePlatform) -> None:
    account = ready_platform.control.create_authorizer(kind="service", func_ids=[1, 11], **OVER_LONG)
    browser = requests.Session()
    answer = consent(ready_platform, account["appid"], push=False, browser=browser)

    page = browser.get(answer["redirect_url"], timeout=30)

    assert page.status_code == 200
    assert api_key_on(page) is not None
    _stored_cut(account["appid"])


def test_an_over_long_profile_is_onboarded_through_the_push_cut_to_fit(
    ready_platform: LivePlatform, worker_factory: Any
) -> None:
    worker_factory()
    account = ready_platform.control.create_authorizer(kind="service", func_ids=[1, 11], **OVER_LONG)

    answer = consent(ready_platform, account["appid"], push=True)

    assert answer["push"]["status"] == 200
    deadline = time.monotonic() + 20
    while not Tenant.objects.filter(authorizer_appid=account["appid"]).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    _stored_cut(account["appid"])
    assert AuthorizationCode.objects.get(authorizer_appid=account["appid"]).processed_at is not None


def test_used_authorization_code_gives_a_clear_message_and_writes_nothing(ready_platform: LivePlatform) -> None:
    page = requests.get(f"{ready_platform.url}/wechat/authorize/callback?auth_code=queryauthcode@@@bogus", timeout=10)

    assert page.status_code == 400
    assert 'id="error-message"' in page.text
    assert Tenant.objects.count() == 0
    assert not AuthorizationCode.objects.filter(tenant__isnull=False).exists()


def test_callback_without_a_code_is_refused(ready_platform: LivePlatform) -> None:
    page = requests.get(f"{ready_platform.url}/wechat/authorize/callback", timeout=10)

    assert page.status_code == 400
    assert Tenant.objects.count() == 0


def test_wechat_failure_during_onboarding_leaves_nothing_half_written(ready_platform: LivePlatform) -> None:
    account = ready_platform.control.create_authorizer(kind="service", func_ids=[11])
    answer = consent(ready_platform, account["appid"], push=False)
    ready_platform.control.set_faults(rate=1.0, kinds=[-1], endpoints=["/cgi-bin/component/api_get_authorizer_info"])

    failed = requests.get(answer["redirect_url"], timeout=30)

    assert failed.status_code == 502
    assert Tenant.objects.count() == 0
    assert TenantAPIKey.objects.count() == 0
    ready_platform.control.clear_faults()
    retried = requests.get(answer["redirect_url"], timeout=30)
    assert retried.status_code == 200
    assert Tenant.objects.filter(authorizer_appid=account["appid"]).count() == 1


def test_without_a_ticket_the_page_is_unavailable_and_wechat_is_asked_to_push(platform: LivePlatform) -> None:
    page = requests.get(f"{platform.url}/wechat/authorize", timeout=10)

    assert page.status_code == 503
    assert calls(platform, "/cgi-bin/component/api_start_push_ticket") == 1
    platform.control.wait_for_pushes(1)
    ready = requests.get(f"{platform.url}/readyz", timeout=10).json()
    assert ready["conditions"]["component"] == "ok"


def test_readyz_names_the_missing_ticket(platform: LivePlatform, client: Any) -> None:
    from wxplatform.component.services import ComponentNotReady, component_access_token

    platform.control.set_event_url(None)  # WeChat is asked for a ticket, but none arrives
    with pytest.raises(ComponentNotReady):
        component_access_token(default_component())

    body = requests.get(f"{platform.url}/readyz", timeout=10).json()
    assert body["status"] == "ok"
    assert body["conditions"]["component"].startswith("no component_verify_ticket")


def test_a_component_token_wechat_no_longer_accepts_is_replaced_once(ready_platform: LivePlatform) -> None:
    authorization_link(ready_platform)  # obtains and stores a component token
    ready_platform.control.expire_component_token()
    ready_platform.control.reset_counters()

    link = authorization_link(ready_platform)

    assert link["pre_auth_code"]
    assert calls(ready_platform, "/cgi-bin/component/api_component_token") == 1
    assert calls(ready_platform, PREAUTH) == 2
