"""Helpers for the sandbox's HTTP tests: a WeChat caller and a real event URL that records pushes."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from tests.fixtures.sandbox import Sandbox

COMPONENT_APPID = "wx0000sandbox0comp"
COMPONENT_SECRET = "sandbox-component-secret"
RID = re.compile(r" rid: [0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}$")


class WeChat:
    """Calls the sandbox the way the platform calls api.weixin.qq.com."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.base_url = sandbox.base_url
        self.http = requests.Session()

    def post(self, path: str, body: Any = None, **query: str) -> requests.Response:
        return self.http.post(f"{self.base_url}{path}", params=query, json=body, timeout=30)

    def component(self, name: str, body: dict[str, Any], token: str) -> dict[str, Any]:
        answer = self.post(f"/cgi-bin/component/{name}", {"component_appid": COMPONENT_APPID, **body},
                           component_access_token=token)  # fmt: skip
        assert answer.status_code == 200
        data: dict[str, Any] = answer.json()
        return data

    def draft_count(self, access_token: str | None) -> dict[str, Any]:
        params = {} if access_token is None else {"access_token": access_token}
        answer = self.http.get(f"{self.base_url}/cgi-bin/draft/count", params=params, timeout=30)
        assert answer.status_code == 200
        data: dict[str, Any] = answer.json()
        return data

    def component_token(self) -> str:
        ticket = self.sandbox.control.push_ticket()["ticket"]
        answer = self.post(
            "/cgi-bin/component/api_component_token",
            {
                "component_appid": COMPONENT_APPID,
                "component_appsecret": COMPONENT_SECRET,
                "component_verify_ticket": ticket,
            },
        ).json()
        token: str = answer["component_access_token"]
        return token

    def pre_auth_code(self, token: str) -> str:
        code: str = self.component("api_create_preauthcode", {}, token)["pre_auth_code"]
        return code


@pytest.fixture
def wechat(sandbox: Sandbox) -> WeChat:
    return WeChat(sandbox)


def errcode(data: dict[str, Any]) -> int:
    """The errcode of a WeChat error answer, after checking its errmsg carries a rid as WeChat's do."""
    assert RID.search(data["errmsg"]), data
    code: int = data["errcode"]
    return code


@dataclass
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A real HTTP event URL: records every request and answers `status` / `reply`, or what `respond` returns
    for the request (status, body), after `delay` seconds."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    status: int = 200
    reply: bytes = b"success"
    respond: Callable[[Received], tuple[int, bytes]] | None = None
    delay: float = 0.0

    @property
    def base(self) -> str:
        """scheme://host:port of the receiver, for other URLs on it (the message URL)."""
        return self.url.removesuffix("/wechat/component/events")

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.received)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received = Received(parts.path, dict(parse_qsl(parts.query)), dict(self.headers.items()), body)
            state.received.append(received)
            status, reply = state.respond(received) if state.respond is not None else (state.status, state.reply)
            if state.delay:
                time.sleep(state.delay)
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the sandbox gave up waiting, as WeChat does after 5 s

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/wechat/component/events"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
