"""The per-key API throttle (wxplatform.core.throttling): a fixed-window counter per key, one Redis round trip per
request, exact at the limit, answering 429 with Retry-After; requests pass while Redis is down.

Against the real Redis where REDIS_URL is set (the full suite); the Django cache otherwise.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from django.test import Client
from pytest_django.fixtures import Settings

from tenants.authentication import APIKeyPrincipal, APIKeyRateThrottle
from tenants.models import Tenant, TenantAPIKey
from tests.factories import api_headers, make_api_key
from wxplatform.core import throttling
from wxplatform.core.throttling import LocalWindows, OutageWarning

TENANT_URL = "/api/v1/tenant"
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1

needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL (the full suite runs with Redis)")


@pytest.fixture(autouse=True)
def _fresh_outage_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    # Another test of this process may have warned less than a minute ago.
    monkeypatch.setattr(throttling, "_outage_warning", OutageWarning())


@pytest.fixture
def rate(settings: Settings) -> Iterator[Any]:
    def set_rate(value: str) -> None:
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api_key": value}}

    yield set_rate


@pytest.fixture
def redis_round_trips(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every write redis-py makes to a socket: one per round trip (a pipeline sends its commands at once)."""
    sent: list[bytes] = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        sent.append(command if isinstance(command, bytes) else b"".join(command))
        original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    return sent


def principal(prefix: str) -> SimpleNamespace:
    """Just what the throttle reads of a request: its principal's key prefix."""
    return SimpleNamespace(user=APIKeyPrincipal(tenant=Tenant(), key=TenantAPIKey(prefix=prefix)))


def allow(prefix: str) -> bool:
    return APIKeyRateThrottle().allow_request(principal(prefix), None)  # type: ignore[arg-type]


# --- Through the API ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_request_after_the_limit_is_refused_with_retry_after_and_other_keys_keep_their_budget(
    client: Client, tenant: Tenant, rate: Any
) -> None:
    rate("3/min")
    _key, raw = make_api_key(tenant)
    _spare, spare_raw = make_api_key(tenant)

    statuses = [client.get(TENANT_URL, **api_headers(raw)).status_code for _ in range(3)]
    throttled = client.get(TENANT_URL, **api_headers(raw))

    assert statuses == [200, 200, 200]
    assert throttled.status_code == 429
    retry_after = int(throttled["Retry-After"])
    assert 1 <= retry_after <= 60
    body = throttled.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == "throttled"
    assert body["error"]["retry_after"] == retry_after
    assert client.get(TENANT_URL, **api_headers(raw)).status_code == 429
    assert client.get(TENANT_URL, **api_headers(spare_raw)).status_code == 200


@needs_redis
@pytest.mark.django_db
def test_a_read_costs_one_redis_round_trip(
    client: Client, tenant: Tenant, rate: Any, redis_round_trips: list[bytes]
) -> None:
    rate("1000/min")
    _key, raw = make_api_key(tenant)
    client.get(TENANT_URL, **api_headers(raw))  # connects (and records last_used_at)
    redis_round_trips.clear()

    for _ in range(5):
        assert client.get(TENANT_URL, **api_headers(raw)).status_code == 200

    assert len(redis_round_trips) == 5
    assert all(b"SET" in sent and b"INCR" in sent for sent in redis_round_trips)


@pytest.mark.django_db
def test_requests_pass_and_one_warning_is_logged_while_redis_is_down(
    client: Client, tenant: Tenant, settings: Settings, rate: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.REDIS_URL = DEAD_REDIS_URL
    rate("1/min")
    _key, raw = make_api_key(tenant)

    with caplog.at_level(logging.WARNING, logger="wxplatform.core.throttling"):
        statuses = [client.get(TENANT_URL, **api_headers(raw)).status_code for _ in range(20)]

    assert statuses == [200] * 20
    warnings = [record for record in caplog.records if record.name == "wxplatform.core.throttling"]
    assert len(warnings) == 1
    assert "ConnectionError" in warnings[0].getMessage()


@pytest.mark.django_db
def test_without_redis_url_the_django_cache_counts_exactly(
    client: Client, tenant: Tenant, settings: Settings, rate: Any
) -> None:
    settings.REDIS_URL = ""
    rate("3/min")
    _key, raw = make_api_key(tenant)

    statuses = [client.get(TENANT_URL, **api_headers(raw)).status_code for _ in range(5)]

    assert statuses == [200, 200, 200, 429, 429]


# --- The counter ---------------------------------------------------------------------------------------


@needs_redis
def test_a_new_window_starts_a_fresh_count_that_outlives_its_window_by_a_second(
    rate: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rate("3/min")
    prefix = uuid.uuid4().hex[:8]
    clock = SimpleNamespace(now=60.0 * 5)
    monkeypatch.setattr(throttling.time, "time", lambda: clock.now)

    first = []
    for second in range(4):
        clock.now = 60.0 * 5 + second
        first.append(allow(prefix))
    clock.now = 60.0 * 6
    second_window = [allow(prefix) for _ in range(4)]

    assert first == [True, True, True, False]
    assert second_window == [True, True, True, False]
    client = redis.Redis.from_url(settings.REDIS_URL)
    key = f"{settings.REDIS_KEY_PREFIX}:throttle:api_key:{prefix}:60:6"
    assert int(client.get(key) or 0) == 4
    assert 0 < client.ttl(key) <= 61


@needs_redis
def test_a_refused_request_says_how_long_until_the_window_ends(rate: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    rate("1/min")
    prefix = uuid.uuid4().hex[:8]
    monkeypatch.setattr(throttling.time, "time", lambda: 60.0 * 9 + 45.5)
    throttle = APIKeyRateThrottle()

    admitted = throttle.allow_request(principal(prefix), None)  # type: ignore[arg-type]
    refused = throttle.allow_request(principal(prefix), None)  # type: ignore[arg-type]

    assert (admitted, refused) == (True, False)
    assert throttle.wait() == pytest.approx(14.5)


@needs_redis  # INCR is atomic; the file cache's incr() is a read then a write
def test_concurrent_requests_on_one_key_admit_exactly_the_limit(rate: Any) -> None:
    rate("200/d")
    prefixes = [uuid.uuid4().hex[:8] for _ in range(10)]

    def run(prefix: str) -> int:
        admitted: list[int] = []

        def worker() -> None:
            admitted.append(sum(allow(prefix) for _ in range(40)))

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sum(admitted)

    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns between almost every bytecode, so that races show
    try:
        admitted = [run(prefix) for prefix in prefixes]
    finally:
        sys.setswitchinterval(switch_interval)

    assert admitted == [200] * len(prefixes)


def test_a_dead_redis_lets_requests_through_and_warns_once_a_minute(
    settings: Settings, rate: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.REDIS_URL = DEAD_REDIS_URL
    rate("1/min")
    clock = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(throttling, "_outage_warning", OutageWarning(clock=lambda: clock.now))
    prefix = uuid.uuid4().hex[:8]

    with caplog.at_level(logging.WARNING, logger="wxplatform.core.throttling"):
        within_a_minute = [allow(prefix) for _ in range(30)]
        warned_first = len([record for record in caplog.records if record.name == "wxplatform.core.throttling"])
        clock.now += 60.0
        after = allow(prefix)

    assert within_a_minute == [True] * 30
    assert after is True
    assert warned_first == 1
    assert len([record for record in caplog.records if record.name == "wxplatform.core.throttling"]) == 2


def test_without_redis_url_the_counter_is_in_the_django_cache(settings: Settings, rate: Any) -> None:
    settings.REDIS_URL = ""
    rate("1000/d")
    prefix = uuid.uuid4().hex[:8]
    day = int(time.time() // 86400)

    for _ in range(3):
        assert allow(prefix)

    assert cache.get(f"{settings.REDIS_KEY_PREFIX}:throttle:api_key:{prefix}:86400:{day}") == 3


# --- The in-process fallback (while Redis is unreachable) ------------------------------------------------


def test_the_in_process_fallback_holds_at_most_its_size_and_new_clients_share_an_overflow_count() -> None:
    clock = SimpleNamespace(now=1000.0)
    windows = LocalWindows(max_keys=3, clock=lambda: clock.now)

    firsts = [windows.count(f"client-{n}", overflow_key="overflow", expires_at=1060.0) for n in range(6)]
    again = windows.count("client-0", overflow_key="overflow", expires_at=1060.0)

    # Three clients have their own counter; the next three share the overflow's, which counts all of them.
    assert firsts == [1, 1, 1, 1, 2, 3]
    assert again == 2
    assert windows.peek("client-5", overflow_key="overflow") == 3
    assert len(windows._counts) == 4


def test_the_in_process_fallback_forgets_a_window_once_it_ended() -> None:
    clock = SimpleNamespace(now=1000.0)
    windows = LocalWindows(max_keys=2, clock=lambda: clock.now)
    for n in range(2):
        windows.count(f"client-{n}:window-16", overflow_key="overflow", expires_at=1020.0)

    clock.now = 1020.0
    next_window = windows.count("client-9:window-17", overflow_key="overflow", expires_at=1080.0)

    assert next_window == 1
    assert windows.peek("client-0:window-16", overflow_key="overflow") == 0
    assert set(windows._counts) == {"client-9:window-17"}
