"""Many services ask the authority at once for a token within its refresh margin, over real HTTP (a live server
with a thread per request, PostgreSQL row locks): WeChat sees exactly one refresh and every caller gets the same
new token (a second refresh would invalidate the first token after WeChat's overlap, docs/wechat/tokens.md)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
import requests
from django.db import connection
from django.utils import timezone

from tenants.models import Tenant
from tests.authority.helpers import authorizer_url, component_url
from tests.factories import make_service_key
from tests.fixtures.sandbox import Sandbox
from tests.fixtures.sync import component_ready, sandbox_tenant
from wxplatform.component.models import Platform
from wxplatform.component.services import component_access_token, default_component
from wxplatform.core.times import machine_time

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL"),
]

CALLERS = 32
AUTHORIZER_TOKEN = "/cgi-bin/component/api_authorizer_token"
COMPONENT_TOKEN = "/cgi-bin/component/api_component_token"


def calls(sandbox: Sandbox, path: str) -> int:
    return int(sandbox.control.counters()["endpoints"].get(path, {}).get("calls", 0))


def burst(url: str, raw_key: str) -> list[requests.Response]:
    """CALLERS GETs of `url`, released at the same moment."""
    barrier = threading.Barrier(CALLERS)

    def ask(_index: int) -> requests.Response:
        barrier.wait()
        return requests.get(url, headers={"Authorization": f"Service-Key {raw_key}"}, timeout=60)

    with ThreadPoolExecutor(max_workers=CALLERS) as pool:
        return list(pool.map(ask, range(CALLERS)))


def test_32_callers_on_an_authorizer_token_within_its_margin_refresh_it_once(
    sync_settings: Sandbox, live_server: Any
) -> None:
    sandbox = sync_settings
    component_ready(sandbox)
    component_access_token(default_component())
    tenant = sandbox_tenant(sandbox, draft_count=4)
    # Five minutes left: inside the authority's ten-minute margin, still valid at WeChat.
    Tenant.objects.filter(pk=tenant.pk).update(access_token_expires_at=timezone.now() + timedelta(minutes=5))
    _key, raw = make_service_key()
    sandbox.control.reset_counters()

    responses = burst(f"{live_server.url}{authorizer_url(tenant.authorizer_appid)}", raw)

    assert [r.status_code for r in responses] == [200] * CALLERS
    tokens = {r.json()["access_token"] for r in responses}
    stored = Tenant.objects.get(pk=tenant.pk)
    assert tokens == {stored.access_token}
    assert stored.access_token != tenant.access_token
    assert stored.token_version == tenant.token_version + 1
    assert calls(sandbox, AUTHORIZER_TOKEN) == 1
    assert sandbox.control.counters()["authorizer_token_calls"] == {tenant.authorizer_appid: 1}
    assert calls(sandbox, COMPONENT_TOKEN) == 0
    # The token handed out is WeChat's current one.
    count = requests.get(
        f"{sandbox.base_url}/cgi-bin/draft/count", params={"access_token": tokens.pop()}, timeout=10
    ).json()
    assert count["total_count"] == 4


def test_32_callers_on_a_component_token_within_its_margin_refresh_it_once(
    sync_settings: Sandbox, live_server: Any
) -> None:
    sandbox = sync_settings
    component_ready(sandbox)
    old = component_access_token(default_component())
    Platform.objects.update(access_token_expires_at=timezone.now() + timedelta(minutes=5))
    _key, raw = make_service_key()
    sandbox.control.reset_counters()

    responses = burst(f"{live_server.url}{component_url()}", raw)

    assert [r.status_code for r in responses] == [200] * CALLERS
    stored = Platform.objects.get()
    assert {r.json()["access_token"] for r in responses} == {stored.access_token}
    assert stored.access_token != old
    assert calls(sandbox, COMPONENT_TOKEN) == 1
    assert {r.json()["expires_at"] for r in responses} == {machine_time(stored.access_token_expires_at)}
