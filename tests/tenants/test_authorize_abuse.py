"""The anonymous authorization pages under abuse: junk codes on the callback, a flood of page views, a
replayed callback URL. Each costs WeChat calls or rows, so each is bounded (issue 18, Medium 1 and 2)."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
import requests
from django.utils import timezone

from tenants.events import authorization_event_handle
from tenants.models import AuthorizationCode, Tenant, TenantAPIKey
from tenants.tasks import authorize_from_push, authorize_pending_codes
from tests.fixtures.platform import LivePlatform
from tests.tenants.test_authorize import PREAUTH, QUERY_AUTH, api_key_on, calls, consent
from wxplatform.component.services import default_component
from wxplatform.core.redis_client import redis_client

pytestmark = pytest.mark.django_db(transaction=True)

JUNK = "/wechat/authorize/callback?auth_code=queryauthcode@@@junk-{n}&expires_in=600"


@pytest.fixture
def limit(settings: Any) -> int:
    """A small per-address limit, with this session's counters of the authorization pages cleared."""
    settings.AUTHORIZE_RATE_LIMIT = "3/min"
    client = redis_client()
    for key in client.scan_iter(f"{settings.REDIS_KEY_PREFIX}:throttle:authorize_*"):
        client.delete(key)
    return 3


def test_junk_codes_on_the_callback_are_limited_per_address_and_leave_no_row(
    ready_platform: LivePlatform, limit: int
) -> None:
    answers = [requests.get(ready_platform.url + JUNK.format(n=n), timeout=10) for n in range(limit + 3)]

    assert [a.status_code for a in answers] == [400] * limit + [429] * 3
    assert int(answers[-1].headers["Retry-After"]) >= 1
    assert "Too many attempts" in answers[-1].text
    assert calls(ready_platform, QUERY_AUTH) == limit
    # Nothing vouched for these codes (no push, no session of ours): nothing is kept, nothing retried.
    assert AuthorizationCode.objects.count() == 0
    assert authorize_pending_codes() == 0
    assert calls(ready_platform, QUERY_AUTH) == limit


def test_the_authorization_page_is_limited_per_client_address(ready_platform: LivePlatform, limit: int) -> None:
    answers = [requests.get(f"{ready_platform.url}/wechat/authorize", timeout=10) for _ in range(limit + 2)]

    assert [a.status_code for a in answers] == [200] * limit + [429] * 2
    assert calls(ready_platform, PREAUTH) == limit


def test_forwarded_addresses_count_only_behind_a_trusted_proxy(
    ready_platform: LivePlatform, limit: int, settings: Any
) -> None:
    def page(forwarded_for: str) -> int:
        url = f"{ready_platform.url}/wechat/authorize"
        return requests.get(url, headers={"X-Forwarded-For": forwarded_for}, timeout=10).status_code

    # From an untrusted address the header is ignored: every "client" shares 127.0.0.1's allowance.
    assert [page(f"198.51.100.{n}") for n in range(limit + 1)] == [200] * limit + [429]
    # Behind the configured proxy each real client (the address the proxy appended) has its own.
    settings.TRUSTED_PROXIES = ["127.0.0.1/32"]
    assert [page("203.0.113.7, 198.51.100.1") for _ in range(limit + 1)] == [200] * limit + [429]
    assert page("203.0.113.7, 198.51.100.2") == 200
    # A client cannot pose as another by prepending addresses: only the proxy's hop counts.
    assert page("198.51.100.2, 198.51.100.1") == 429


def test_a_pushed_code_wechat_refuses_is_exchanged_once_and_never_swept_again(ready_platform: LivePlatform) -> None:
    authorization_event_handle(
        default_component(),
        fields={
            "InfoType": "authorized",
            "AuthorizerAppid": "wxrefused000000001",
            "AuthorizationCode": "queryauthcode@@@refused",
            "CreateTime": str(int(time.time())),
        },
    )
    row = AuthorizationCode.objects.get()

    authorize_from_push(row.pk)
    swept = authorize_pending_codes()

    assert swept == 0
    assert calls(ready_platform, QUERY_AUTH) == 1
    row.refresh_from_db()
    assert (row.code, row.processed_at is not None, row.tenant_id) == ("", True, None)
    # The callback bringing the same code later does not ask WeChat again either.
    again = requests.get(f"{ready_platform.url}/wechat/authorize/callback?auth_code=queryauthcode@@@refused")
    assert again.status_code == 400
    assert calls(ready_platform, QUERY_AUTH) == 1


def test_stored_codes_are_pruned_after_a_day(db: None) -> None:
    old = AuthorizationCode.objects.create(
        component=default_component(), code_hash="a" * 64, code="", pushed=True, processed_at=timezone.now()
    )
    AuthorizationCode.objects.filter(pk=old.pk).update(received_at=timezone.now() - timedelta(days=2))
    recent = AuthorizationCode.objects.create(
        component=default_component(), code_hash="b" * 64, code="", pushed=True, processed_at=timezone.now()
    )

    authorize_pending_codes()

    assert list(AuthorizationCode.objects.values_list("pk", flat=True)) == [recent.pk]


def test_a_replayed_callback_url_shows_no_key_and_the_merchant_still_gets_one(ready_platform: LivePlatform) -> None:
    account = ready_platform.control.create_authorizer(kind="service", func_ids=[11])
    merchant = requests.Session()
    answer = consent(ready_platform, account["appid"], push=False, browser=merchant)
    ready_platform.control.set_faults(rate=1.0, kinds=[-1], endpoints=["/cgi-bin/component/api_get_authorizer_info"])
    assert merchant.get(answer["redirect_url"], timeout=30).status_code == 502
    ready_platform.control.clear_faults()

    # Someone replays the URL (from a log) in another browser, even one holding its own authorization page.
    replayer = requests.Session()
    replayer.get(f"{ready_platform.url}/wechat/authorize", timeout=10)
    replayed = replayer.get(answer["redirect_url"], timeout=30)
    retried = merchant.get(answer["redirect_url"], timeout=30)
    again = merchant.get(answer["redirect_url"], timeout=30)

    assert replayed.status_code == retried.status_code == again.status_code == 200
    tenant = Tenant.objects.get(authorizer_appid=account["appid"])
    assert api_key_on(replayed) is None
    key = api_key_on(retried)
    assert key is not None and TenantAPIKey.objects.get_from_key(key).tenant == tenant
    assert api_key_on(again) is None
    assert TenantAPIKey.objects.filter(tenant=tenant).count() == 1


def test_a_callback_without_the_authorization_page_session_shows_no_key(ready_platform: LivePlatform) -> None:
    account = ready_platform.control.create_authorizer(kind="service", func_ids=[11])
    answer = consent(ready_platform, account["appid"], push=False)

    page = requests.get(answer["redirect_url"], timeout=30)

    assert page.status_code == 200
    assert re.search(r'id="tenant-appid">' + account["appid"], page.text)
    assert api_key_on(page) is None
    assert TenantAPIKey.objects.count() == 0


def test_while_wechat_is_slow_one_process_lets_only_a_few_visitors_wait_and_turns_the_next_away_at_once(
    ready_platform: LivePlatform, settings: Any
) -> None:
    settings.AUTHORIZE_CONCURRENCY = 1
    settings.AUTHORIZE_WECHAT_TIMEOUT = 1.0
    requests.get(f"{ready_platform.url}/wechat/authorize", timeout=10)  # the component token, fetched at once
    ready_platform.control.set_faults(rate=1.0, kinds=["timeout"], endpoints=[PREAUTH], timeout_seconds=5)

    with ThreadPoolExecutor(max_workers=1) as pool:
        waiting = pool.submit(requests.get, f"{ready_platform.url}/wechat/authorize", timeout=30)
        deadline = time.monotonic() + 10
        while ready_platform.control.counters()["faults_injected"].get("timeout", 0) < 1:
            assert time.monotonic() < deadline, "the first view never reached WeChat"
            time.sleep(0.02)
        turned_away = requests.get(
            f"{ready_platform.url}/wechat/authorize", headers={"Accept-Language": "zh-Hans"}, timeout=10
        )
        gave_up = waiting.result()

    assert turned_away.status_code == 503
    assert turned_away.headers["Retry-After"] == "10"
    assert "授权页面正忙" in turned_away.text
    # The visitor who waited is told WeChat did not answer in time (AUTHORIZE_WECHAT_TIMEOUT, not 5 s).
    assert gave_up.status_code == 503
    assert "temporarily unavailable" in gave_up.text
    assert ready_platform.control.counters()["faults_injected"] == {"timeout": 1}
    # The slot is free again once the view returned.
    ready_platform.control.clear_faults()
    assert requests.get(f"{ready_platform.url}/wechat/authorize", timeout=10).status_code == 200
