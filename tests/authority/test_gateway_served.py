"""The WeChat gateway as production serves it: gunicorn processes of their own, the sandbox as WeChat. Many
services call through it at once with a token WeChat no longer accepts: WeChat sees one refresh, every caller
gets WeChat's answer, and none of them ever sees a token."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from django.db import connection

from tests.chaos.harness import ApiServer
from tests.factories import make_service_key
from tests.fixtures.sandbox import Sandbox
from tests.fixtures.sync import component_ready, sandbox_tenant
from tests.fixtures.worker import _worker_env
from wxplatform.component.services import component_access_token, default_component

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="gunicorn's processes share the database"),
]

CALLERS = 16
DRAFT_COUNT = "/cgi-bin/draft/count"
AUTHORIZER_TOKEN = "/cgi-bin/component/api_authorizer_token"


@pytest.fixture
def gunicorn(wechat_settings: Sandbox) -> Iterator[ApiServer]:
    server = ApiServer(_worker_env({}), workers=2, threads=8).start()
    yield server
    server.stop()


def calls(sandbox: Sandbox, path: str) -> int:
    return int(sandbox.control.counters()["endpoints"].get(path, {}).get("calls", 0))


def test_callers_through_gunicorn_heal_a_dead_token_with_one_refresh(
    wechat_settings: Sandbox, gunicorn: ApiServer
) -> None:
    component_ready(wechat_settings)
    component_access_token(default_component())
    tenant = sandbox_tenant(wechat_settings, draft_count=9)
    _key, raw = make_service_key(name="publisher", allowed_paths=["/cgi-bin/draft/*"])
    wechat_settings.control.invalidate_authorizer_tokens(tenant.authorizer_appid)
    url = (
        f"{gunicorn.url}/internal/v1/components/{default_component().component_appid}"
        f"/authorizers/{tenant.authorizer_appid}/wechat{DRAFT_COUNT}"
    )
    barrier = threading.Barrier(CALLERS)

    def call(_index: int) -> Any:
        barrier.wait()
        return requests.get(url, headers={"Authorization": f"Service-Key {raw}"}, timeout=60)

    with ThreadPoolExecutor(max_workers=CALLERS) as pool:
        answers = list(pool.map(call, range(CALLERS)))

    assert [(a.status_code, a.json()) for a in answers] == [(200, {"total_count": 9})] * CALLERS
    assert calls(wechat_settings, AUTHORIZER_TOKEN) == 1
    tenant.refresh_from_db()
    assert all(tenant.access_token not in a.text for a in answers)
    assert tenant.access_token not in gunicorn.output()
