"""Whatever arrives on WeChat's host, the answer is WeChat-style errcode JSON and the sandbox stays up."""

from __future__ import annotations

import json
import socket
from urllib.parse import quote

import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sandbox.conftest import RID
from wxsandbox.app import API_PATHS
from wxsandbox.control import SandboxControl
from wxsandbox.server import SandboxServer

METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]

segment = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="/?#"), min_size=0, max_size=12)
random_path = st.lists(segment, min_size=1, max_size=5).map(lambda parts: "/" + "/".join(quote(p) for p in parts))
paths = st.one_of(st.sampled_from(sorted(API_PATHS)), random_path).filter(lambda p: not p.startswith("/sandbox/"))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=4),
    max_leaves=12,
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(
        st.sampled_from(["component_appid", "component_appsecret", "authorization_code", "authorizer_appid",
                         "authorizer_refresh_token", "offset", "count", "cgi_path", "component_secret"]),
        json_values,
    ).map(lambda v: json.dumps(v).encode()),
)  # fmt: skip
queries = st.dictionaries(
    st.sampled_from(["access_token", "component_access_token", "x"]), st.text(max_size=30), max_size=2
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(METHODS), path=paths, body=bodies, query=queries)
def test_random_requests_get_errcode_json(
    sandbox_server: SandboxServer, method: str, path: str, body: bytes, query: dict[str, str]
) -> None:
    control = SandboxControl(sandbox_server.base_url)
    control.reset()  # no faults or latency left over from another test
    answer = requests.request(method, f"{sandbox_server.base_url}{path}", params=query, data=body, timeout=10)
    assert answer.status_code == 200
    data = answer.json()
    assert isinstance(data, dict)
    assert isinstance(data["errcode"], int)
    # 0 would be a success by chance; -1 is what a handler exception turns into.
    assert data["errcode"] not in (0, -1)
    assert RID.search(data["errmsg"])
    assert control.health() is True


def test_head_requests_get_an_empty_200(sandbox_server: SandboxServer) -> None:
    answer = requests.head(f"{sandbox_server.base_url}/cgi-bin/draft/count", timeout=10)
    assert (answer.status_code, answer.content) == (200, b"")


def test_a_broken_http_request_does_not_take_the_server_down(sandbox_server: SandboxServer) -> None:
    host, port = sandbox_server.host, sandbox_server.port
    with socket.create_connection((host, port), timeout=5) as raw:
        raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        raw.recv(1024)
    with socket.create_connection((host, port), timeout=5) as raw:
        raw.sendall(b"POST /cgi-bin/draft/count HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nshort")
    assert SandboxControl(sandbox_server.base_url).health() is True
