"""With the broker down, the web process still answers WeChat's `authorized` push and a merchant's sync
request well inside WeChat's 5 s deadline: publishing gives up at once (bounded connect and publish
timeouts, no retries in the request), and the work, recorded in the database first, is swept into the
queue when the broker returns.

The broker is a redis-server of the test's own, stopped for the test: the shared one serves other runs."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import requests

from drafts.models import SyncJob
from tenants.models import AuthorizationCode
from tests.chaos.harness import ApiServer, RedisServer, note
from tests.factories import make_api_key, make_tenant
from tests.fixtures.platform import EVENTS_PATH, signed_push
from tests.fixtures.sandbox import Sandbox

pytestmark = [pytest.mark.chaos, pytest.mark.django_db(transaction=True)]

# WeChat waits 5 s for `success`; the issue asks for an answer within 1 s with the broker down.
PUSH_DEADLINE = 1.0


def test_pushes_and_sync_requests_answer_within_a_second_with_the_broker_down(
    wechat_settings: Sandbox, private_redis: RedisServer, api_server_factory: Callable[..., ApiServer]
) -> None:
    tenant = make_tenant()
    _key, raw_key = make_api_key(tenant)
    server = api_server_factory(env={"REDIS_URL": private_redis.url})
    private_redis.stop()

    timings: list[float] = []
    for n in range(3):
        body, params = signed_push(
            {
                "AppId": "wx0000sandbox0comp",
                "CreateTime": int(time.time()),
                "InfoType": "authorized",
                "AuthorizerAppid": f"wxbrokerdown00000{n}",
                "AuthorizationCode": f"queryauthcode@@@broker-down-{n}",
                "AuthorizationCodeExpiredTime": int(time.time()) + 600,
            }
        )
        started = time.monotonic()
        answer = requests.post(f"{server.url}{EVENTS_PATH}", params=params, data=body, timeout=30)
        timings.append(time.monotonic() - started)
        assert (answer.status_code, answer.text) == (200, "success")
    started = time.monotonic()
    sync = requests.post(
        f"{server.url}/api/v1/draft-count/sync", headers={"Authorization": f"Api-Key {raw_key}"}, timeout=30
    )
    sync_seconds = time.monotonic() - started

    note(
        "broker down: authorized push answered in "
        + ", ".join(f"{t * 1000:.0f} ms" for t in timings)
        + f"; sync request in {sync_seconds * 1000:.0f} ms"
    )
    assert max(timings) < PUSH_DEADLINE, timings
    assert sync.status_code == 202, sync.text
    assert sync_seconds < PUSH_DEADLINE, sync_seconds
    # Recorded in the database, to be swept into the queue when the broker returns.
    assert AuthorizationCode.objects.filter(processed_at__isnull=True).count() == 3
    assert SyncJob.objects.filter(tenant=tenant).count() == 1
