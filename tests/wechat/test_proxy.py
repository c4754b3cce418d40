"""WECHAT_HTTP_PROXY: every call to WeChat leaves through the egress proxy, the requests client and the aiohttp
fan-out alike, proven with a real forward proxy on loopback (tests/fixtures/proxy.py) in front of the sandbox."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.utils import timezone

from drafts.models import JobState, SyncJob, SyncTrigger
from drafts.services import draft_count_request_sync
from tests.fixtures.proxy import ForwardProxy
from tests.fixtures.sandbox import Sandbox
from tests.fixtures.sync import component_ready, sandbox_tenant, worker_env
from tests.fixtures.worker import ROOT, Worker
from tests.wechat.test_client import make_client
from wxplatform.wechat.bulk import fetch_draft_counts
from wxplatform.wechat.client import call_outcome
from wxplatform.wechat.errors import TransportError

COMPONENT_TOKEN = "/cgi-bin/component/api_component_token"
PREAUTH = "/cgi-bin/component/api_create_preauthcode"
AUTHORIZER_TOKEN = "/cgi-bin/component/api_authorizer_token"
DRAFT_COUNT = "/cgi-bin/draft/count"


def host(sandbox: Sandbox) -> str:
    return sandbox.base_url.removeprefix("http://")


def paths(forwarded: list[str], sandbox: Sandbox) -> list[str]:
    """The WeChat paths of forwarded requests ("POST 127.0.0.1:PORT/cgi-bin/…?…" → "/cgi-bin/…")."""
    return [line.split(" ", 1)[1].removeprefix(host(sandbox)).split("?")[0] for line in forwarded]


def test_the_client_sends_every_call_through_the_proxy(sandbox: Sandbox, forward_proxy: ForwardProxy) -> None:
    ticket = sandbox.control.push_ticket()["ticket"]
    with make_client(sandbox.base_url, sandbox, proxy=forward_proxy.url) as wechat:
        token = wechat.api_component_token(component_verify_ticket=ticket).access_token
        wechat.api_create_preauthcode(component_access_token=token)

        assert paths(forward_proxy.wait_for(2), sandbox) == [COMPONENT_TOKEN, PREAUTH]
        # Without the proxy there is no way out: the client never falls back to a direct connection.
        forward_proxy.stop()
        with pytest.raises(TransportError) as refused:
            wechat.api_create_preauthcode(component_access_token=token)
    assert call_outcome(refused.value) == "connection"


def test_without_wechat_http_proxy_the_client_connects_directly_whatever_the_environment_says(
    sandbox: Sandbox, forward_proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticket = sandbox.control.push_ticket()["ticket"]
    # As the fan-out does: the environment's proxy variables are not a way out (and are not read on every call).
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, forward_proxy.url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)

    with make_client(sandbox.base_url, sandbox) as wechat:
        assert wechat.api_component_token(component_verify_ticket=ticket).access_token

    assert forward_proxy.requests() == []


def test_the_fan_out_sends_every_draft_count_through_the_proxy(sandbox: Sandbox, forward_proxy: ForwardProxy) -> None:
    accounts = sandbox.control.bulk_create_authorizers(5, draft_count=(0, 20))
    items = [(a["appid"], a["authorizer_access_token"]) for a in accounts]

    results = fetch_draft_counts(sandbox.base_url, items, concurrency=3, proxy=forward_proxy.url)

    assert [(r.key, r.total_count) for r in results] == [(a["appid"], a["draft_count"]) for a in accounts]
    assert len(forward_proxy.wait_for(5, path=DRAFT_COUNT)) == 5
    assert all(line.startswith(f"GET {host(sandbox)}{DRAFT_COUNT}?access_token=") for line in forward_proxy.requests())
    forward_proxy.stop()
    refused = fetch_draft_counts(sandbox.base_url, items[:1], proxy=forward_proxy.url)
    assert refused[0].error is not None and call_outcome(refused[0].error) == "connection"


@pytest.mark.django_db(transaction=True)
def test_a_worker_configured_with_wechat_http_proxy_makes_every_call_through_it(
    sync_settings: Sandbox, forward_proxy: ForwardProxy, worker_factory: Callable[..., Worker]
) -> None:
    # The component token is not fetched yet and the tenant's token has expired: the on-demand sync needs a
    # component token, an authorizer token and the count itself, three different WeChat calls.
    component_ready(sync_settings)
    tenant = sandbox_tenant(sync_settings, draft_count=9, access_token_expires_at=timezone.now() - timedelta(1))
    worker_factory(env=worker_env(WECHAT_HTTP_PROXY=forward_proxy.url))

    job = draft_count_request_sync(tenant=tenant, trigger=SyncTrigger.API).job
    deadline = time.monotonic() + 30
    while SyncJob.objects.get(pk=job.pk).state != JobState.SUCCEEDED:
        assert time.monotonic() < deadline, "the job did not succeed"
        time.sleep(0.05)

    assert paths(forward_proxy.wait_for(3), sync_settings) == [COMPONENT_TOKEN, AUTHORIZER_TOKEN, DRAFT_COUNT]
    assert SyncJob.objects.get(pk=job.pk).total_count == 9


@pytest.mark.parametrize("value", ["socks5://127.0.0.1:1080", "127.0.0.1:3128", "http://:3128", "http://gw:port"])
def test_a_wechat_http_proxy_that_is_not_an_http_url_stops_start_up(value: str) -> None:
    env = dict(os.environ, DEBUG="false", WECHAT_HTTP_PROXY=value)

    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode != 0
    assert "WECHAT_HTTP_PROXY must be an http:// or https:// URL with a host" in result.stderr
    assert value not in result.stderr
