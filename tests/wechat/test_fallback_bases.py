"""Another door to WeChat: with WECHAT_API_FALLBACK_BASES, calls move to the next base when a connection to the
first cannot be made (refused, or a black hole that never answers a GET), never on WeChat's own errcodes; a
failed base stays out for its cool-down, then is tried again. The sandbox answers on one port; the other is
closed or black-holed."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from tests.fixtures.sandbox import Sandbox
from tests.wechat.helpers import closed_port_url
from wxplatform.component.clients import wechat_bases, wechat_client
from wxplatform.wechat.bases import Bases
from wxplatform.wechat.bulk import fetch_draft_counts
from wxplatform.wechat.client import WeChatClient
from wxplatform.wechat.errors import TokenError, TransportError
from wxsandbox.state import DRAFT_COUNT_PATH


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A base URL whose server accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(timeout=5)
    for conn in held:
        conn.close()
    server.close()


def client(bases: Bases, *, read_timeout: float = 10.0) -> WeChatClient:
    return WeChatClient(
        base_url=bases.primary, component_appid="", component_appsecret="", read_timeout=read_timeout, bases=bases
    )


def test_the_bases_keep_a_failed_one_out_for_its_cool_down_then_try_it_again() -> None:
    clock = Clock()
    changes: list[tuple[str, str]] = []
    bases = Bases(
        "https://api.weixin.qq.com/",
        ["https://api2.weixin.qq.com", "https://sh.api.weixin.qq.com"],
        cooldown=60,
        clock=clock,
        on_change=lambda old, new: changes.append((old, new)),
    )

    bases.failed("https://api.weixin.qq.com")
    first_out = bases.order()
    clock.now += 59
    still_out = bases.current()
    clock.now += 2
    back = bases.order()

    assert first_out == ["https://api2.weixin.qq.com", "https://sh.api.weixin.qq.com", "https://api.weixin.qq.com"]
    assert still_out == "https://api2.weixin.qq.com"
    assert back[0] == "https://api.weixin.qq.com"
    assert changes == [("https://api.weixin.qq.com", "https://api2.weixin.qq.com")]


def test_with_every_base_out_the_one_that_reopens_first_is_still_tried() -> None:
    clock = Clock()
    bases = Bases("https://a.example", ["https://b.example"], cooldown=60, clock=clock)

    bases.failed("https://a.example")
    clock.now += 10
    bases.failed("https://b.example")

    assert bases.order() == ["https://a.example", "https://b.example"]


def test_a_refused_primary_sends_calls_to_the_fallback_and_stays_out(sandbox: Sandbox) -> None:
    account = sandbox.control.create_authorizer(authorized=True, draft_count=6)
    dead = closed_port_url()
    bases = Bases(dead, [sandbox.base_url], cooldown=300)
    wechat = client(bases)

    counts = [wechat.draft_count(access_token=account["authorizer_access_token"]) for _ in range(3)]

    assert counts == [6, 6, 6]
    assert bases.current() == sandbox.base_url
    assert sandbox.control.counters()["endpoints"][DRAFT_COUNT_PATH]["calls"] == 3


def test_wechats_own_errcodes_never_move_a_call(sandbox: Sandbox) -> None:
    account = sandbox.control.create_authorizer(authorized=True)
    sandbox.control.invalidate_authorizer_tokens(account["appid"])
    other = closed_port_url()
    bases = Bases(sandbox.base_url, [other], cooldown=300)

    with pytest.raises(TokenError):
        client(bases).draft_count(access_token=account["authorizer_access_token"])

    assert bases.current() == sandbox.base_url


def test_a_black_holed_primary_moves_a_get_after_its_read_timeout(sandbox: Sandbox, black_hole: str) -> None:
    account = sandbox.control.create_authorizer(authorized=True, draft_count=2)
    bases = Bases(black_hole, [sandbox.base_url], cooldown=300)

    count = client(bases, read_timeout=0.5).draft_count(access_token=account["authorizer_access_token"])

    assert count == 2
    assert bases.current() == sandbox.base_url


def test_a_post_whose_answer_was_lost_is_not_sent_twice(sandbox: Sandbox, black_hole: str) -> None:
    # The black hole took the request; WeChat may have executed it: a POST must not be repeated elsewhere.
    account = sandbox.control.create_authorizer(authorized=True)
    bases = Bases(black_hole, [sandbox.base_url], cooldown=300)

    with pytest.raises(TransportError):
        client(bases, read_timeout=0.5).openapi_quota_get(
            access_token=account["authorizer_access_token"], cgi_path=DRAFT_COUNT_PATH
        )

    assert sandbox.control.counters()["endpoints"] == {}


def test_the_fan_out_moves_to_the_fallback_with_the_same_breakers(sandbox: Sandbox) -> None:
    accounts = sandbox.control.bulk_create_authorizers(20, draft_count=(0, 9))
    bases = Bases(closed_port_url(), [sandbox.base_url], cooldown=300)

    results = fetch_draft_counts(
        "unused", [(a["appid"], a["authorizer_access_token"]) for a in accounts], concurrency=4, bases=bases
    )

    assert [(r.key, r.total_count) for r in results] == [(a["appid"], a["draft_count"]) for a in accounts]
    assert bases.current() == sandbox.base_url


@pytest.fixture
def _forget_the_base() -> Iterator[None]:
    from django.core.cache import cache

    from wxplatform.core.egress import BASE_CACHE_KEY

    cache.delete(BASE_CACHE_KEY)
    yield
    cache.delete(BASE_CACHE_KEY)


@pytest.mark.django_db
@pytest.mark.usefixtures("_forget_the_base")
def test_readyz_and_the_status_page_say_which_base_is_in_use(
    wechat_settings: Sandbox, settings: Any, client: Client, admin_client: Client
) -> None:
    primary = closed_port_url()
    settings.WECHAT_API_BASE = primary
    settings.WECHAT_API_FALLBACK_BASES = [wechat_settings.base_url]
    account = wechat_settings.control.create_authorizer(authorized=True, draft_count=1)

    before = client.get("/readyz").json()["conditions"]["wechat_base"]
    assert wechat_client().draft_count(access_token=account["authorizer_access_token"]) == 1
    after = client.get("/readyz").json()["conditions"]["wechat_base"]
    page = admin_client.get("/admin/status/").content.decode()

    assert wechat_bases().current() == wechat_settings.base_url
    assert before == "ok"
    assert after.startswith(f"calls go to {wechat_settings.base_url} since ")
    assert f"<code>{wechat_settings.base_url}</code>" in page
    assert "fallback" in page
