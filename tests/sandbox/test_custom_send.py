"""message/custom/send: customer-service messages to a fan who wrote recently, recorded per account
(docs/wechat/message-url.md#full-release-test)."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.fixtures.sandbox import Sandbox
from tests.sandbox.conftest import WeChat, errcode
from wxsandbox.config import SandboxConfig
from wxsandbox.state import ManualClock, SandboxState, WeChatFault

CUSTOM_SEND = "/cgi-bin/message/custom/send"
FAN = "oFAN0000000000000000000000001"


def send(wechat: WeChat, token: str | None, body: Any) -> dict[str, Any]:
    query = {"access_token": token} if token is not None else {}
    answer = wechat.post(CUSTOM_SEND, body, **query)
    assert answer.status_code == 200
    data: dict[str, Any] = answer.json()
    return data


def text(content: str, touser: str = FAN) -> dict[str, Any]:
    return {"touser": touser, "msgtype": "text", "text": {"content": content}}


@pytest.fixture
def account(sandbox: Sandbox) -> dict[str, Any]:
    """An authorized account with set 1, to which FAN just wrote (no message URL: the push is only recorded)."""
    created = sandbox.control.create_authorizer(authorized=True, func_ids=[1, 11])
    sandbox.control.send_message(created["appid"], content="你好", from_openid=FAN)
    return created


def test_a_customer_service_message_is_accepted_and_recorded(
    sandbox: Sandbox, wechat: WeChat, account: dict[str, Any]
) -> None:
    assert send(wechat, account["authorizer_access_token"], text("您好")) == {"errcode": 0, "errmsg": "ok"}
    [message] = sandbox.control.custom_messages(account["appid"])
    assert message == {
        "id": 1,
        "time": message["time"],
        "touser": FAN,
        "msgtype": "text",
        "content": "您好",
        "body": text("您好"),
        "auth_code": None,
    }
    view = sandbox.control.get_authorizer(account["appid"])
    assert view is not None and view["quota_used"] == {CUSTOM_SEND: 1}


def test_the_message_records_the_code_its_token_came_from(
    sandbox: Sandbox, wechat: WeChat, account: dict[str, Any]
) -> None:
    code = sandbox.control.issue_auth_code(account["appid"])["auth_code"]
    info = wechat.component("api_query_auth", {"authorization_code": code}, wechat.component_token())
    send(wechat, info["authorization_info"]["authorizer_access_token"], text("x"))
    assert [m["auth_code"] for m in sandbox.control.custom_messages(account["appid"])] == [code]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"msgtype": "text", "text": {"content": "x"}}, 47001),
        ({"touser": FAN, "msgtype": "fax", "fax": {}}, 40008),
        ({"touser": FAN, "msgtype": "text"}, 47001),
        ({"touser": FAN, "msgtype": "text", "text": "x"}, 47001),
        ({"touser": FAN, "msgtype": "text", "text": {"content": 5}}, 47001),
        ({"touser": FAN, "msgtype": 1}, 47001),
        (text("x", touser="oSOMEONEWHONEVERWROTE0000000"), 40003),
    ],
)
def test_malformed_messages_are_refused_and_not_recorded(
    sandbox: Sandbox, wechat: WeChat, account: dict[str, Any], body: dict[str, Any], expected: int
) -> None:
    assert errcode(send(wechat, account["authorizer_access_token"], body)) == expected
    assert sandbox.control.custom_messages(account["appid"]) == []


def test_bodies_that_are_not_json_objects(sandbox: Sandbox, account: dict[str, Any]) -> None:
    url = f"{sandbox.base_url}{CUSTOM_SEND}"
    params = {"access_token": account["authorizer_access_token"]}
    for raw, expected in ((b"", 44002), (b"{", 47001), (b"[]", 47001)):
        assert errcode(requests.post(url, params=params, data=raw, timeout=10).json()) == expected
    assert errcode(requests.get(url, params=params, timeout=10).json()) == 43002


def test_token_and_account_errors(sandbox: Sandbox, wechat: WeChat, account: dict[str, Any]) -> None:
    control = sandbox.control
    no_messages = control.create_authorizer(authorized=True, func_ids=[11])
    control.send_message(no_messages["appid"], content="hi", from_openid=FAN)
    banned = control.create_authorizer(authorized=True, func_ids=[1])
    control.send_message(banned["appid"], content="hi", from_openid=FAN)
    control.update_authorizer(banned["appid"], account_status=16)
    revoked = control.create_authorizer(authorized=True, func_ids=[1])
    control.revoke(revoked["appid"])

    assert errcode(send(wechat, None, text("x"))) == 41001
    assert errcode(send(wechat, "unknown", text("x"))) == 40001
    assert errcode(send(wechat, "no such token", text("x"))) == 40014
    assert errcode(send(wechat, no_messages["authorizer_access_token"], text("x"))) == 61007
    assert errcode(send(wechat, banned["authorizer_access_token"], text("x"))) == 50002
    assert errcode(send(wechat, revoked["authorizer_access_token"], text("x"))) == 61003
    control.expire_authorizer_tokens(account["appid"])
    assert errcode(send(wechat, account["authorizer_access_token"], text("x"))) == 42001
    assert control.counters()["endpoints"][CUSTOM_SEND]["ok"] == 0


def test_twenty_messages_per_fan_message(sandbox: Sandbox, wechat: WeChat, account: dict[str, Any]) -> None:
    token = account["authorizer_access_token"]
    answers = [send(wechat, token, text(str(i))) for i in range(21)]
    assert [a["errcode"] for a in answers[:20]] == [0] * 20
    assert errcode(answers[20]) == 45047
    # The fan writes again: twenty more.
    sandbox.control.send_message(account["appid"], content="再问一下", from_openid=FAN)
    assert send(wechat, token, text("again"))["errcode"] == 0
    assert len(sandbox.control.custom_messages(account["appid"])) == 21


def test_faults_and_counters_apply(sandbox: Sandbox, wechat: WeChat, account: dict[str, Any]) -> None:
    sandbox.control.set_faults(rate=1.0, kinds=[45011], endpoints=[CUSTOM_SEND], max_faults=1)
    assert errcode(send(wechat, account["authorizer_access_token"], text("x"))) == 45011
    assert send(wechat, account["authorizer_access_token"], text("x"))["errcode"] == 0
    assert sandbox.control.counters()["endpoints"][CUSTOM_SEND] == {"calls": 2, "ok": 1, "errors": {"45011": 1}}


def test_a_fan_can_be_answered_for_48_hours() -> None:
    clock = ManualClock()
    # A token that outlives the window, so that only the window can refuse.
    state = SandboxState(SandboxConfig(seed=1, authorizer_token_ttl=10**6), clock=clock)
    account = state.create_authorizer(authorized=True, func_ids=[1])
    state.fan_message(account.appid, content="hi", from_openid=FAN)
    clock.advance(48 * 3600 - 1)
    assert state.custom_send(account.current_token, text("still"))["errcode"] == 0
    clock.advance(1)
    with pytest.raises(WeChatFault) as info:
        state.custom_send(account.current_token, text("too late"))
    assert info.value.errcode == 45015
