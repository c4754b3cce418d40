"""The limits that protect WeChat calls and rows from anonymous clients stay bounded while Redis is down
(issue 28, finding 1): the authorization pages' per-address limit, the service-key failure limit and the
refused-push log's per-minute budget count in the process (wxplatform.core.throttling.LocalWindows) until Redis is
back, and the push log counts the rows it does not store (wxp_push_log_dropped_total).

Redis here is a redis-server of the test's own, stopped mid-test; the live server runs in this process, so
the bound is one process's: the limit per window."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from tenants.models import PushLog
from tests.authority.helpers import component_url, platform_with_token
from tests.chaos.harness import RedisServer
from tests.factories import make_service_key, service_headers
from tests.fixtures.platform import LivePlatform
from tests.tenants.test_authorize import PREAUTH, QUERY_AUTH, calls

pytestmark = [pytest.mark.chaos, pytest.mark.django_db(transaction=True)]

METRICS_TOKEN = "chaos-metrics-token"


def windows_spanned(started: float, ended: float, seconds: int = 60) -> int:
    """Fixed windows a run touched: the bound is the limit per window, and a run may cross a boundary."""
    return int(ended // seconds) - int(started // seconds) + 1


@pytest.fixture
def redis_down(settings: Any, private_redis: RedisServer) -> RedisServer:
    """This test's own Redis as the rate-limit store, stopped: every counter call fails to connect."""
    settings.REDIS_URL = private_redis.url
    settings.REDIS_KEY_PREFIX = f"{settings.REDIS_KEY_PREFIX}-nolimits-{time.time()}"
    private_redis.stop()
    return private_redis


def test_forty_authorization_pages_cost_at_most_the_limit_of_wechat_calls_while_redis_is_down(
    ready_platform: LivePlatform, settings: Any, redis_down: RedisServer
) -> None:
    settings.AUTHORIZE_RATE_LIMIT = "3/min"
    ready_platform.control.reset_counters()

    started = time.time()
    answers = [requests.get(f"{ready_platform.url}/wechat/authorize", timeout=30) for _ in range(40)]
    ended = time.time()

    statuses = [a.status_code for a in answers]
    bound = 3 * windows_spanned(started, ended)
    assert calls(ready_platform, PREAUTH) <= bound
    assert statuses.count(200) == calls(ready_platform, PREAUTH) >= 3
    assert set(statuses) == {200, 429}
    refused = next(a for a in answers if a.status_code == 429)
    assert int(refused.headers["Retry-After"]) >= 1
    assert "Too many attempts" in refused.text

    # Redis back: the limit counts there again (a fresh count: Redis never saw the outage's requests).
    redis_down.start()
    again = requests.get(f"{ready_platform.url}/wechat/authorize", timeout=30)
    assert again.status_code == 200
    assert any(redis_down_keys(redis_down, settings))


def redis_down_keys(server: RedisServer, settings: Any) -> list[bytes]:
    import redis

    client = redis.Redis(port=server.port)
    try:
        return list(client.scan_iter(f"{settings.REDIS_KEY_PREFIX}:throttle:authorize_page:*"))
    finally:
        client.close()


def test_forty_junk_callbacks_cost_at_most_the_limit_of_wechat_calls_while_redis_is_down(
    ready_platform: LivePlatform, settings: Any, redis_down: RedisServer
) -> None:
    settings.AUTHORIZE_RATE_LIMIT = "3/min"
    ready_platform.control.reset_counters()
    junk = "/wechat/authorize/callback?auth_code=queryauthcode@@@junk-{n}&expires_in=600"

    started = time.time()
    statuses = [requests.get(ready_platform.url + junk.format(n=n), timeout=30).status_code for n in range(40)]
    ended = time.time()

    assert calls(ready_platform, QUERY_AUTH) <= 3 * windows_spanned(started, ended)
    assert statuses.count(400) == calls(ready_platform, QUERY_AUTH)
    assert set(statuses) == {400, 429}


def test_service_key_guessing_is_still_throttled_while_redis_is_down(
    client: Client, settings: Any, redis_down: RedisServer
) -> None:
    settings.SERVICE_KEY_FAILURE_RATE = "3/min"
    platform_with_token()
    _key, raw = make_service_key()
    bad = {"HTTP_AUTHORIZATION": "Service-Key abcd1234.wrongsecretwrongsecret", "REMOTE_ADDR": "192.0.2.20"}

    started = time.time()
    statuses = [client.get(component_url(), **bad).status_code for _ in range(40)]
    ended = time.time()
    elsewhere = client.get(component_url(), REMOTE_ADDR="192.0.2.21", **service_headers(raw))

    assert statuses.count(401) <= 3 * windows_spanned(started, ended)
    assert set(statuses) == {401, 429}
    assert elsewhere.status_code == 200


def scrape(client: Client) -> str:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
    assert response.status_code == 200
    return str(response.content.decode())


def sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for entry in family.samples:
            if entry.name == name and entry.labels == labels:
                return float(entry.value)
    return 0.0


def test_three_hundred_garbage_pushes_write_at_most_the_budget_of_rows_while_redis_is_down(
    settings: Any, redis_down: RedisServer
) -> None:
    settings.PUSH_LOG_REJECTED_PER_MINUTE = 10
    settings.METRICS_TOKEN = METRICS_TOKEN
    anonymous = Client()
    query = urlencode({"timestamp": "1", "nonce": "n", "msg_signature": "x"})
    before = scrape(anonymous)

    started = time.time()
    statuses = [
        anonymous.generic("POST", f"/wechat/component/events?{query}", b"<xml>garbage</xml>").status_code
        for _ in range(300)
    ]
    ended = time.time()
    after = scrape(anonymous)

    rows = PushLog.objects.count()
    assert statuses == [400] * 300
    assert 10 <= rows <= 10 * windows_spanned(started, ended)
    # What is not stored is still counted: every push in wxp_pushes_total, every dropped row as dropped.
    name = "wxp_push_log_dropped_total"
    assert sample(after, name, reason="budget") - sample(before, name, reason="budget") == 300 - rows
