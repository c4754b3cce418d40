"""Injected faults, added latency and the counters that let tests see what the platform did."""

from __future__ import annotations

import time

import pytest
import requests

from tests.fixtures.sandbox import Sandbox
from tests.sandbox.conftest import WeChat, errcode

DRAFT_COUNT = "/cgi-bin/draft/count"


def draft_count_raw(sandbox: Sandbox, token: str) -> requests.Response:
    return requests.get(f"{sandbox.base_url}{DRAFT_COUNT}", params={"access_token": token}, timeout=30)


def test_errcode_faults_hit_only_the_chosen_endpoint(sandbox: Sandbox, wechat: WeChat) -> None:
    account = sandbox.control.create_authorizer(authorized=True, draft_count=2)
    token = account["authorizer_access_token"]
    sandbox.control.set_faults(rate=1.0, kinds=[45011], endpoints=[DRAFT_COUNT])

    assert [errcode(wechat.draft_count(token)) for _ in range(3)] == [45011] * 3
    quota = wechat.post("/cgi-bin/openapi/quota/get", {"cgi_path": DRAFT_COUNT}, access_token=token).json()
    # A rejected call never reached the account: nothing was spent.
    assert quota["quota"]["used"] == 0
    counters = sandbox.control.counters()
    assert counters["faults_injected"] == {"45011": 3}
    assert counters["endpoints"][DRAFT_COUNT] == {"calls": 3, "ok": 0, "errors": {"45011": 3}}
    assert counters["draft_count_calls"] == {}


def test_faults_follow_the_seed(sandbox: Sandbox, wechat: WeChat) -> None:
    account = sandbox.control.create_authorizer(authorized=True, draft_count=1)

    def run() -> list[int]:
        sandbox.control.set_faults(rate=0.5, kinds=[-1], seed=11)
        return [wechat.draft_count(account["authorizer_access_token"]).get("errcode", 0) for _ in range(30)]

    first = run()
    assert first == run()
    assert set(first) == {0, -1}
    assert sandbox.control.counters()["faults_injected"] == {"-1": first.count(-1) * 2}


def test_max_faults_caps_the_injection(sandbox: Sandbox, wechat: WeChat) -> None:
    account = sandbox.control.create_authorizer(authorized=True, draft_count=1)
    plan = sandbox.control.set_faults(rate=1.0, kinds=[-1], max_faults=2)
    assert plan["max_faults"] == 2
    answers = [wechat.draft_count(account["authorizer_access_token"]) for _ in range(4)]
    assert [a.get("errcode") for a in answers] == [-1, -1, None, None]
    assert answers[0]["errmsg"].startswith("system error rid: ")


@pytest.mark.parametrize("status", [500, 502, 503])
def test_http_faults_answer_with_the_status_and_no_json(sandbox: Sandbox, status: int) -> None:
    account = sandbox.control.create_authorizer(authorized=True)
    sandbox.control.set_faults(rate=1.0, kinds=[f"http_{status}"])
    answer = draft_count_raw(sandbox, account["authorizer_access_token"])
    assert answer.status_code == status
    assert answer.headers["Content-Type"].startswith("text/html")
    assert sandbox.control.counters()["endpoints"][DRAFT_COUNT]["errors"] == {f"http_{status}": 1}


def test_malformed_fault_answers_a_body_that_is_not_json(sandbox: Sandbox) -> None:
    account = sandbox.control.create_authorizer(authorized=True)
    sandbox.control.set_faults(rate=1.0, kinds=["malformed"])
    answer = draft_count_raw(sandbox, account["authorizer_access_token"])
    assert answer.status_code == 200
    with pytest.raises(ValueError):
        answer.json()


def test_timeout_fault_holds_the_answer_then_answers(sandbox: Sandbox) -> None:
    account = sandbox.control.create_authorizer(authorized=True, draft_count=8)
    sandbox.control.set_faults(rate=1.0, kinds=["timeout"], timeout_seconds=0.3)
    started = time.monotonic()
    answer = draft_count_raw(sandbox, account["authorizer_access_token"])
    assert time.monotonic() - started >= 0.3
    assert answer.json() == {"total_count": 8}
    # A client with a shorter read timeout sees a timeout.
    with pytest.raises(requests.ReadTimeout):
        requests.get(
            f"{sandbox.base_url}{DRAFT_COUNT}", params={"access_token": account["authorizer_access_token"]}, timeout=0.1
        )


def test_clear_faults_and_reset_remove_the_plan(sandbox: Sandbox, wechat: WeChat) -> None:
    account = sandbox.control.create_authorizer(authorized=True, draft_count=5)
    sandbox.control.set_faults(rate=1.0, kinds=[-1])
    sandbox.control.clear_faults()
    assert wechat.draft_count(account["authorizer_access_token"]) == {"total_count": 5}
    sandbox.control.set_faults(rate=1.0, kinds=[-1])
    sandbox.control.reset()
    again = sandbox.control.create_authorizer(authorized=True, draft_count=5)
    assert wechat.draft_count(again["authorizer_access_token"]) == {"total_count": 5}


def test_faults_never_touch_the_control_api(sandbox: Sandbox) -> None:
    sandbox.control.set_faults(rate=1.0, kinds=["http_500"])
    assert sandbox.control.health() is True
    assert sandbox.control.create_authorizer()["authorized"] is False


def test_latency_delays_answers(sandbox: Sandbox, wechat: WeChat) -> None:
    account = sandbox.control.create_authorizer(authorized=True)
    sandbox.control.set_latency(0.2)
    started = time.monotonic()
    wechat.draft_count(account["authorizer_access_token"])
    assert time.monotonic() - started >= 0.2


def test_latency_can_target_one_endpoint(sandbox: Sandbox, wechat: WeChat) -> None:
    account = sandbox.control.create_authorizer(authorized=True)
    answer = sandbox.control.set_latency(0.3, endpoint=DRAFT_COUNT)
    assert answer == {"latency": 0.0, "endpoint_latency": {DRAFT_COUNT: 0.3}}
    started = time.monotonic()
    wechat.draft_count(account["authorizer_access_token"])
    assert time.monotonic() - started >= 0.3
    assert sandbox.control.get_config()["endpoint_latency"] == {DRAFT_COUNT: 0.3}
    sandbox.control.reset()
    assert sandbox.control.get_config()["endpoint_latency"] == {}


def test_counters_count_calls_per_endpoint_and_account(sandbox: Sandbox, wechat: WeChat) -> None:
    token = wechat.component_token()
    first = sandbox.control.create_authorizer(authorized=True)
    second = sandbox.control.create_authorizer(authorized=True, kind="mini_program")
    for _ in range(2):
        wechat.draft_count(first["authorizer_access_token"])
    wechat.draft_count(second["authorizer_access_token"])
    wechat.draft_count("nope")
    wechat.component(
        "api_authorizer_token",
        {"authorizer_appid": first["appid"], "authorizer_refresh_token": first["authorizer_refresh_token"]},
        token,
    )

    counters = sandbox.control.counters()
    assert counters["endpoints"][DRAFT_COUNT] == {"calls": 4, "ok": 2, "errors": {"48001": 1, "40001": 1}}
    assert counters["endpoints"]["/cgi-bin/component/api_authorizer_token"] == {"calls": 1, "ok": 1, "errors": {}}
    assert counters["draft_count_calls"] == {first["appid"]: 2, second["appid"]: 1}
    assert counters["authorizer_token_calls"] == {first["appid"]: 1}
    assert counters["faults_injected"] == {}

    sandbox.control.reset_counters()
    assert sandbox.control.counters() == {
        "endpoints": {},
        "faults_injected": {},
        "draft_count_calls": {},
        "authorizer_token_calls": {},
    }


@pytest.mark.parametrize(
    "path",
    [
        "/cgi-bin/openapi/rid/get",
        "/cgi-bin/openapi/quota/get",
        "/cgi-bin/clear_quota",
        "/cgi-bin/component/clear_quota/v2",
        "/cgi-bin/message/custom/send",
    ],
)
def test_the_newer_endpoints_take_latency_and_faults_like_the_others(sandbox: Sandbox, path: str) -> None:
    url = f"{sandbox.base_url}{path}"
    sandbox.control.set_latency(0.2, endpoint=path)
    started = time.monotonic()
    garbage = requests.post(url, params={"access_token": "x"}, data=b"{", timeout=10)
    assert time.monotonic() - started >= 0.2
    assert errcode(garbage.json()) == 47001
    sandbox.control.set_faults(rate=1.0, kinds=["http_503"], endpoints=[path])
    assert requests.post(url, params={"access_token": "x"}, json={}, timeout=10).status_code == 503
    assert sandbox.control.counters()["endpoints"][path] == {
        "calls": 2,
        "ok": 0,
        "errors": {"47001": 1, "http_503": 1},
    }
