"""The per-key API throttle counts in each process and tells Redis in batches (tenants.throttling): exact
near the limit, far fewer Redis round trips than requests, bounded over-admission across processes.

Everything runs against the real Redis. Several processes are several ThrottleCounters sharing one Redis
key; their clocks are set by hand, so that no assertion depends on how fast the machine is.
"""

from __future__ import annotations

import logging
import random
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from django.test import Client
from pytest_django.fixtures import Settings

from tenants.models import Tenant
from tenants.throttling import (
    BATCH_DIVISOR,
    CacheCounterStore,
    RedisCounterStore,
    ThrottleCounters,
    throttle_counters_clear,
)
from tests.factories import api_headers, make_api_key

TENANT_URL = "/api/v1/tenant"
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
DAY = 86400

needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL (the full suite runs with Redis)")


class ManualClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _fresh_counters() -> Iterator[None]:
    # Another test of this process may have warned less than a minute ago.
    throttle_counters_clear()
    yield
    throttle_counters_clear()


@pytest.fixture
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


@pytest.fixture
def store() -> RedisCounterStore:
    return RedisCounterStore(settings.REDIS_URL)


def fresh_key() -> str:
    return f"{settings.REDIS_KEY_PREFIX}:throttle-test:{uuid.uuid4().hex}"


def stored(client: redis.Redis, key: str) -> int:
    value = client.get(key)
    return 0 if value is None else int(value)


def api_key_total(client: redis.Redis, prefix: str, window: int) -> int:
    """The key's count in Redis, summed over windows (a test may straddle a window boundary)."""
    pattern = f"{settings.REDIS_KEY_PREFIX}:throttle:api_key:{prefix}:{window}:*"
    return sum(stored(client, key.decode()) for key in client.scan_iter(match=pattern))


def worst_case_excess(limit: int, processes: int) -> int:
    """The module docstring's bound: each process admits at most one batch, less one, too many."""
    return processes * (max(1, limit // BATCH_DIVISOR) - 1)


# --- Through the API ---------------------------------------------------------------------------------


@needs_redis
@pytest.mark.django_db
def test_the_request_after_a_small_limit_is_refused_with_retry_after_and_other_keys_keep_their_budget(
    client: Client, tenant: Tenant, settings: Settings
) -> None:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api_key": "3/min"}}
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
def test_a_busy_key_reaches_redis_in_batches_and_catches_up_after_the_sync_interval(
    client: Client, tenant: Tenant, settings: Settings, redis_client: redis.Redis
) -> None:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api_key": "1000000/d"}}
    settings.API_THROTTLE_SYNC_INTERVAL = 3600.0  # the interval does not pass during the test
    key, raw = make_api_key(tenant)

    statuses = {client.get(TENANT_URL, **api_headers(raw)).status_code for _ in range(100)}
    lagging = api_key_total(redis_client, key.prefix, DAY)
    settings.API_THROTTLE_SYNC_INTERVAL = 0.0  # as if the interval had passed
    client.get(TENANT_URL, **api_headers(raw))

    assert statuses == {200}
    # The first request of the window asked Redis; the next 99 stayed in this process.
    assert lagging == 1
    assert api_key_total(redis_client, key.prefix, DAY) == 101


@pytest.mark.django_db
def test_requests_pass_and_one_warning_is_logged_while_redis_is_down(
    client: Client, tenant: Tenant, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings.REDIS_URL = DEAD_REDIS_URL
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api_key": "1/min"}}
    settings.API_THROTTLE_SYNC_INTERVAL = 0.0  # every request tries Redis again
    _key, raw = make_api_key(tenant)

    with caplog.at_level(logging.WARNING, logger="tenants.throttling"):
        statuses = [client.get(TENANT_URL, **api_headers(raw)).status_code for _ in range(20)]

    assert statuses == [200] * 20
    warnings = [record for record in caplog.records if record.name == "tenants.throttling"]
    assert len(warnings) == 1
    assert "ConnectionError" in warnings[0].getMessage()


@pytest.mark.django_db
def test_without_redis_url_the_django_cache_counts_exactly_near_the_limit(
    client: Client, tenant: Tenant, settings: Settings
) -> None:
    settings.REDIS_URL = ""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api_key": "3/min"}}
    _key, raw = make_api_key(tenant)

    statuses = [client.get(TENANT_URL, **api_headers(raw)).status_code for _ in range(5)]

    assert statuses == [200, 200, 200, 429, 429]


@pytest.mark.django_db
def test_without_redis_url_the_django_cache_receives_batches(
    client: Client, tenant: Tenant, settings: Settings
) -> None:
    settings.REDIS_URL = ""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api_key": "1000000/d"}}
    settings.API_THROTTLE_SYNC_INTERVAL = 3600.0
    key, raw = make_api_key(tenant)
    day = int(time.time() // DAY)
    cache_key = f"{settings.REDIS_KEY_PREFIX}:throttle:api_key:{key.prefix}:{DAY}:{day}"

    for _ in range(50):
        client.get(TENANT_URL, **api_headers(raw))
    lagging = cache.get(cache_key)
    settings.API_THROTTLE_SYNC_INTERVAL = 0.0
    client.get(TENANT_URL, **api_headers(raw))

    assert lagging == 1
    assert cache.get(cache_key) == 51


# --- One process ---------------------------------------------------------------------------------------


@needs_redis
def test_one_process_admits_exactly_the_limit_with_few_round_trips(
    store: RedisCounterStore, redis_client: redis.Redis
) -> None:
    counters = ThrottleCounters(clock=ManualClock())  # the interval never passes: only batches sync
    key, limit = fresh_key(), 1000
    now = 60.0 * 1000 + 1

    admitted = 0
    syncs = 0
    seen = 0
    for _ in range(limit + 100):
        admitted += counters.hit(store, key=key, limit=limit, window=60, now=now, sync_interval=0.25)
        total = stored(redis_client, f"{key}:1000")
        syncs += total != seen
        seen = total

    assert admitted == limit
    # The first request past the limit reached Redis alone; the 99 after it were refused on that total.
    assert seen == limit + 1
    assert syncs < limit // 8  # batches shrink from 62 to 1 on the way


@needs_redis
def test_the_redis_counter_lags_by_one_batch_then_catches_up_after_the_sync_interval(
    store: RedisCounterStore, redis_client: redis.Redis
) -> None:
    clock = ManualClock()
    counters = ThrottleCounters(clock=clock)
    key, limit = fresh_key(), 1000
    now = 60.0 * 7 + 1
    redis_key = f"{key}:7"

    def hits(n: int) -> None:
        for _ in range(n):
            assert counters.hit(store, key=key, limit=limit, window=60, now=now, sync_interval=0.25)

    hits(1)
    assert stored(redis_client, redis_key) == 1  # a new counter asks Redis at once
    hits(61)
    assert stored(redis_client, redis_key) == 1  # batch (1000 - 1) // 16 = 62 not reached
    hits(1)
    assert stored(redis_client, redis_key) == 63
    hits(10)
    assert stored(redis_client, redis_key) == 63
    clock.now += 0.25
    hits(1)
    assert stored(redis_client, redis_key) == 74


@needs_redis
def test_threads_of_one_process_admit_exactly_the_limit(store: RedisCounterStore, redis_client: redis.Redis) -> None:
    counters = ThrottleCounters(clock=ManualClock())
    limit, now = 200, 60.0 * 3 + 1

    def run(key: str) -> int:
        admitted: list[int] = []

        def worker() -> None:
            hits = (
                counters.hit(store, key=key, limit=limit, window=60, now=now, sync_interval=0.25) for _ in range(40)
            )
            admitted.append(sum(hits))

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sum(admitted)

    keys = [fresh_key() for _ in range(30)]
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns between almost every bytecode, so that races show
    try:
        admitted = [run(key) for key in keys]
    finally:
        sys.setswitchinterval(switch_interval)

    assert admitted == [limit] * len(keys)
    # Redis heard of every admitted request and of the first refused one; the rest were refused on that total.
    assert [stored(redis_client, f"{key}:3") for key in keys] == [limit + 1] * len(keys)


@needs_redis
def test_a_new_window_starts_a_fresh_count_and_drops_the_old_counter(
    store: RedisCounterStore, redis_client: redis.Redis
) -> None:
    counters = ThrottleCounters(clock=ManualClock())
    key = fresh_key()

    first = [counters.hit(store, key=key, limit=3, window=60, now=60.0 * 5 + t, sync_interval=0.25) for t in range(4)]
    second = [counters.hit(store, key=key, limit=3, window=60, now=60.0 * 6 + t, sync_interval=0.25) for t in range(4)]

    assert first == [True, True, True, False]
    assert second == [True, True, True, False]
    assert stored(redis_client, f"{key}:5") == 4
    assert stored(redis_client, f"{key}:6") == 4
    assert len(counters) == 1
    assert 0 < redis_client.ttl(f"{key}:6") <= 61  # it outlives its window by a second at most


@needs_redis
def test_counters_are_bounded_and_past_windows_go_first(store: RedisCounterStore) -> None:
    counters = ThrottleCounters(clock=ManualClock(), max_counters=3)
    old_a, old_b, live, new = fresh_key(), fresh_key(), fresh_key(), fresh_key()

    for key in (old_a, old_b):
        counters.hit(store, key=key, limit=10, window=60, now=60.0 * 8, sync_interval=0.25)
    counters.hit(store, key=live, limit=10, window=60, now=60.0 * 9, sync_interval=0.25)
    counters.hit(store, key=new, limit=10, window=60, now=60.0 * 9 + 1, sync_interval=0.25)

    assert len(counters) == 2  # the two past windows were dropped, the live one kept


@needs_redis
def test_a_forgotten_counter_learns_its_total_again_from_redis(store: RedisCounterStore) -> None:
    counters = ThrottleCounters(clock=ManualClock(), max_counters=2)
    busy, other, third = fresh_key(), fresh_key(), fresh_key()
    now = 60.0 * 11

    used = [counters.hit(store, key=busy, limit=3, window=60, now=now, sync_interval=0.25) for _ in range(3)]
    counters.hit(store, key=other, limit=3, window=60, now=now, sync_interval=0.25)
    counters.hit(store, key=third, limit=3, window=60, now=now, sync_interval=0.25)  # all live: all forgotten

    assert used == [True, True, True]
    assert len(counters) == 1
    assert counters.hit(store, key=busy, limit=3, window=60, now=now, sync_interval=0.25) is False


# --- Several processes ---------------------------------------------------------------------------------


@needs_redis
def test_a_process_with_a_stale_total_admits_less_than_one_batch_too_many(store: RedisCounterStore) -> None:
    # The worst case of the documented bound: process b last heard from Redis when the window was empty,
    # then a fills it, all within one sync interval.
    a, b = ThrottleCounters(clock=ManualClock()), ThrottleCounters(clock=ManualClock())
    key, limit = fresh_key(), 160
    now = 60.0 * 13

    def hit(process: ThrottleCounters) -> bool:
        return process.hit(store, key=key, limit=limit, window=60, now=now, sync_interval=0.25)

    assert hit(a) and hit(b)  # totals 1 and 2
    by_a = 1 + sum(hit(a) for _ in range(200))
    by_b = 1 + sum(hit(b) for _ in range(200))

    assert by_a == limit - 1
    # b's batch is (160 - 2) // 16 = 9: it admits 8 on its own, and its 9th request learns the total.
    assert by_b == 1 + 8
    assert by_a + by_b - limit <= worst_case_excess(limit, processes=2)


@needs_redis
def test_a_process_that_heard_from_redis_within_the_interval_admits_nothing_extra(store: RedisCounterStore) -> None:
    a, b_clock = ThrottleCounters(clock=ManualClock()), ManualClock()
    b = ThrottleCounters(clock=b_clock)
    key, limit = fresh_key(), 160
    now = 60.0 * 17

    def hit(process: ThrottleCounters) -> bool:
        return process.hit(store, key=key, limit=limit, window=60, now=now, sync_interval=0.25)

    assert hit(a) and hit(b)
    by_a = 1 + sum(hit(a) for _ in range(200))
    b_clock.now += 0.25
    by_b = 1 + sum(hit(b) for _ in range(200))

    assert by_a + by_b == limit


@needs_redis
@pytest.mark.parametrize("seed", range(5))
def test_two_processes_sharing_a_key_admit_the_limit_and_at_most_the_documented_excess(
    store: RedisCounterStore, redis_client: redis.Redis, seed: int
) -> None:
    rng = random.Random(seed)
    clocks = [ManualClock(), ManualClock()]
    processes = [ThrottleCounters(clock=clock) for clock in clocks]
    key, limit = fresh_key(), 300
    now = 60.0 * 19 + seed

    admitted = 0
    requests = 0
    for _ in range(3 * limit):
        # Uneven traffic in bursts, and now and then a process whose interval has passed.
        turn = rng.choice([0, 0, 0, 1])
        if rng.random() < 0.02:
            clocks[turn].now += 0.25
        for _ in range(rng.randint(1, 20)):
            requests += 1
            admitted += processes[turn].hit(store, key=key, limit=limit, window=60, now=now, sync_interval=0.25)

    assert limit <= admitted <= limit + worst_case_excess(limit, processes=2)
    # What Redis was not told of the admitted requests is less than a batch per process; of the refused ones
    # it heard at most one per process (the one whose total said the window was spent).
    total = stored(redis_client, f"{key}:{int(now // 60)}")
    assert admitted - 2 * (limit // BATCH_DIVISOR) < total <= admitted + 2
    assert limit < total < requests


# --- Redis unreachable ---------------------------------------------------------------------------------


def test_a_dead_redis_lets_requests_through_and_warns_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    counters = ThrottleCounters(clock=clock)
    dead = RedisCounterStore(DEAD_REDIS_URL)
    key = fresh_key()

    def hit() -> bool:
        clock.now += 1.0  # past the sync interval and the retry pause: every request tries Redis
        return counters.hit(dead, key=key, limit=1, window=60, now=60.0 * 23, sync_interval=0.25)

    with caplog.at_level(logging.WARNING, logger="tenants.throttling"):
        within_a_minute = [hit() for _ in range(30)]
        warned_first = len([record for record in caplog.records if record.name == "tenants.throttling"])
        clock.now += 60.0
        after = hit()

    assert within_a_minute == [True] * 30
    assert after is True
    assert warned_first == 1
    assert len([record for record in caplog.records if record.name == "tenants.throttling"]) == 2


@needs_redis
def test_after_a_failure_a_counter_waits_one_interval_then_counts_again(store: RedisCounterStore) -> None:
    clock = ManualClock()
    counters = ThrottleCounters(clock=clock)
    key = fresh_key()
    now = 60.0 * 29

    while_down = [
        counters.hit(RedisCounterStore(DEAD_REDIS_URL), key=key, limit=2, window=60, now=now, sync_interval=0.25)
        for _ in range(5)
    ]
    paused = counters.hit(store, key=key, limit=2, window=60, now=now, sync_interval=0.25)
    clock.now += 0.25
    back = [counters.hit(store, key=key, limit=2, window=60, now=now, sync_interval=0.25) for _ in range(3)]

    assert while_down == [True] * 5
    assert paused is True  # within the retry pause Redis is not asked
    assert back == [True, True, False]


def test_the_cache_store_receives_the_same_batches() -> None:
    counters = ThrottleCounters(clock=ManualClock())
    key, limit = fresh_key(), 1000
    now = 60.0 * 31

    def hits(n: int) -> None:
        for _ in range(n):
            assert counters.hit(CacheCounterStore(), key=key, limit=limit, window=60, now=now, sync_interval=0.25)

    hits(62)
    lagging = cache.get(f"{key}:31")
    hits(1)

    assert lagging == 1
    assert cache.get(f"{key}:31") == 63
