"""openapi/rid/get: the call behind an error's rid, for the account that made it, for 7 days
(docs/wechat/errors.md#rid)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from tests.fixtures.sandbox import Sandbox
from tests.sandbox.conftest import COMPONENT_APPID, COMPONENT_SECRET, WeChat, errcode
from wxsandbox.config import SandboxConfig
from wxsandbox.ridlog import RidRecord
from wxsandbox.state import ManualClock, SandboxState, WeChatFault

RID_GET = "/cgi-bin/openapi/rid/get"
DRAFT_COUNT = "/cgi-bin/draft/count"


def rid_of(answer: dict[str, Any]) -> str:
    errcode(answer)
    rid: str = answer["errmsg"].rsplit(" rid: ", 1)[1]
    return rid


def rid_get(wechat: WeChat, token: str | None, body: Any) -> dict[str, Any]:
    query = {"access_token": token} if token is not None else {}
    answer = wechat.post(RID_GET, body, **query)
    assert answer.status_code == 200
    data: dict[str, Any] = answer.json()
    return data


def refreshed_token(wechat: WeChat, component_token: str, account: dict[str, Any]) -> str:
    body = {"authorizer_appid": account["appid"], "authorizer_refresh_token": account["authorizer_refresh_token"]}
    token: str = wechat.component("api_authorizer_token", body, component_token)["authorizer_access_token"]
    return token


def test_an_authorizer_error_is_remembered_for_the_same_account(sandbox: Sandbox, wechat: WeChat) -> None:
    component_token = wechat.component_token()
    account = sandbox.control.create_authorizer(authorized=True)
    old = account["authorizer_access_token"]
    sandbox.control.expire_authorizer_tokens(account["appid"])
    raw = requests.get(f"{sandbox.base_url}{DRAFT_COUNT}", params={"access_token": old}, timeout=10)
    rid = rid_of(raw.json())

    answer = rid_get(wechat, refreshed_token(wechat, component_token, account), {"rid": rid})

    assert (answer["errcode"], answer["errmsg"]) == (0, "ok")
    request = answer["request"]
    assert set(request) == {"invoke_time", "cost_in_ms", "request_url", "request_body", "response_body", "client_ip"}
    # WeChat's request_url is the query string as sent, token included (get_rid_info.html).
    assert request["request_url"] == f"access_token={old}"
    assert request["request_body"] == ""
    assert request["response_body"] == raw.text
    assert request["client_ip"] == "127.0.0.1"
    assert isinstance(request["invoke_time"], int) and isinstance(request["cost_in_ms"], int)
    assert sandbox.control.rid(rid)["owner"] == account["appid"]  # type: ignore[index]


def test_a_component_error_keeps_the_body_and_is_read_with_the_component_token(
    sandbox: Sandbox, wechat: WeChat
) -> None:
    token = wechat.component_token()
    sent = {"component_appid": COMPONENT_APPID, "authorization_code": "queryauthcode@@@forged"}
    answer = wechat.post("/cgi-bin/component/api_query_auth", sent, component_access_token=token).json()
    assert errcode(answer) == 61009

    request = rid_get(wechat, token, {"rid": rid_of(answer)})["request"]

    assert json.loads(request["request_body"]) == sent
    assert request["request_url"] == f"component_access_token={token}"
    assert json.loads(request["response_body"]) == answer


def test_a_tokenless_component_call_belongs_to_the_component(sandbox: Sandbox, wechat: WeChat) -> None:
    ticket = sandbox.control.push_ticket()["ticket"]
    body = {"component_appid": COMPONENT_APPID, "component_appsecret": "wrong", "component_verify_ticket": ticket}
    answer = wechat.post("/cgi-bin/component/api_component_token", body).json()
    assert errcode(answer) == 40125
    token = wechat.component_token()
    assert rid_get(wechat, token, {"rid": rid_of(answer)})["errcode"] == 0


def test_another_accounts_token_may_not_read_a_rid(sandbox: Sandbox, wechat: WeChat) -> None:
    component_token = wechat.component_token()
    mine = sandbox.control.create_authorizer(authorized=True, kind="mini_program")
    other = sandbox.control.create_authorizer(authorized=True)
    rid = rid_of(wechat.draft_count(mine["authorizer_access_token"]))  # 48001: a Mini Program
    bad = wechat.component("api_query_auth", {"authorization_code": "nope"}, component_token)

    assert errcode(rid_get(wechat, other["authorizer_access_token"], {"rid": rid})) == 76003
    assert errcode(rid_get(wechat, component_token, {"rid": rid})) == 76003
    assert errcode(rid_get(wechat, mine["authorizer_access_token"], {"rid": rid_of(bad)})) == 76003
    assert rid_get(wechat, mine["authorizer_access_token"], {"rid": rid})["errcode"] == 0


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"rid": "0123abcd-0123abcd-0123abcd"}, 76001),
        ({"rid": "not-a-rid"}, 76002),
        ({"rid": "0123ABCD-0123ABCD-0123ABCD"}, 76002),
        ({}, 76002),
        ({"rid": 5}, 47001),
    ],
)
def test_unknown_and_malformed_rids(sandbox: Sandbox, wechat: WeChat, body: dict[str, Any], expected: int) -> None:
    account = sandbox.control.create_authorizer(authorized=True)
    assert errcode(rid_get(wechat, account["authorizer_access_token"], body)) == expected


def test_rid_get_checks_its_token_and_body(sandbox: Sandbox, wechat: WeChat) -> None:
    account = sandbox.control.create_authorizer(authorized=True)
    assert errcode(rid_get(wechat, None, {"rid": "0123abcd-0123abcd-0123abcd"})) == 41001
    assert errcode(rid_get(wechat, "unknown-token", {"rid": "0123abcd-0123abcd-0123abcd"})) == 40001
    assert errcode(rid_get(wechat, "bad token!", {"rid": "0123abcd-0123abcd-0123abcd"})) == 40014
    garbage = requests.post(
        f"{sandbox.base_url}{RID_GET}",
        params={"access_token": account["authorizer_access_token"]},
        data=b"{",
        timeout=10,
    )
    assert errcode(garbage.json()) == 47001
    sandbox.control.expire_authorizer_tokens(account["appid"])
    assert errcode(rid_get(wechat, account["authorizer_access_token"], {"rid": "0123abcd-0123abcd-0123abcd"})) == 42001
    assert sandbox.control.counters()["endpoints"][RID_GET] == {
        "calls": 5,
        "ok": 0,
        "errors": {"41001": 1, "40001": 1, "40014": 1, "47001": 1, "42001": 1},
    }


def test_injected_errcode_faults_are_remembered_and_hit_rid_get_too(sandbox: Sandbox, wechat: WeChat) -> None:
    account = sandbox.control.create_authorizer(authorized=True)
    token = account["authorizer_access_token"]
    sandbox.control.set_faults(rate=1.0, kinds=[45011], endpoints=[DRAFT_COUNT])
    rid = rid_of(wechat.draft_count(token))
    assert rid_get(wechat, token, {"rid": rid})["request"]["response_body"].startswith('{"errcode":45011')
    sandbox.control.set_faults(rate=1.0, kinds=[-1], endpoints=[RID_GET])
    assert errcode(rid_get(wechat, token, {"rid": rid})) == -1


def test_success_answers_carry_no_rid_and_are_not_remembered(sandbox: Sandbox, wechat: WeChat) -> None:
    account = sandbox.control.create_authorizer(authorized=True, draft_count=2)
    assert wechat.draft_count(account["authorizer_access_token"]) == {"total_count": 2}
    assert sandbox.control.rids() == []


def test_the_rid_log_keeps_only_the_newest(sandbox: Sandbox, wechat: WeChat) -> None:
    sandbox.control.update_config(rid_log_size=3)
    account = sandbox.control.create_authorizer(authorized=True, kind="mini_program")
    token = account["authorizer_access_token"]
    rids = [rid_of(wechat.draft_count(token)) for _ in range(5)]
    assert [r["rid"] for r in sandbox.control.rids()] == rids[2:]
    assert errcode(rid_get(wechat, token, {"rid": rids[0]})) == 76001
    # rid/get's own errors are remembered too: the log holds the newest three, that one included.
    assert len(sandbox.control.rids()) == 3


def test_rids_are_kept_seven_days_of_sandbox_clock() -> None:
    clock = ManualClock()
    state = SandboxState(SandboxConfig(seed=1), clock=clock)
    account = state.create_authorizer(authorized=True)
    assert account.current_token is not None
    rid = "0123abcd-0123abcd-0123abcd"
    state.record_rid(
        RidRecord(rid, account.appid, int(clock()), 3, "access_token=x", "", "{}", "10.0.0.1", DRAFT_COUNT)
    )
    clock.advance(7 * 86400 - 1)
    state.expire_authorizer_tokens(account.appid)
    fresh = state.authorizer_token(_component_token(state), COMPONENT_APPID, account.appid, str(account.refresh_token))[
        "authorizer_access_token"
    ]
    assert state.rid_get(fresh, rid)["request"]["client_ip"] == "10.0.0.1"
    clock.advance(1)
    with pytest.raises(WeChatFault) as info:
        state.rid_get(fresh, rid)
    assert info.value.errcode == 76001


def _component_token(state: SandboxState) -> str:
    ticket = str(state.issue_ticket()["ComponentVerifyTicket"])
    return str(state.component_access_token(COMPONENT_APPID, COMPONENT_SECRET, ticket)["component_access_token"])
