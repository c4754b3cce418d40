"""Pushes to the platform's event URL: encrypted and signed as WeChat does (docs/wechat/flow.md#authorization-event-url,
docs/wechat/crypto.md), and recorded."""

from __future__ import annotations

import hashlib

import pytest

from tests.fixtures.sandbox import Sandbox
from tests.sandbox.conftest import COMPONENT_APPID, Received, Receiver, WeChat
from wxplatform.wechat.crypto import MessageCrypto, parse_xml


def open_push(sandbox: Sandbox, push: Received) -> dict[str, str]:
    """Verify and decrypt a push with the component's token and key, as the platform will."""
    config = sandbox.config
    crypto = MessageCrypto(config.component_token, config.component_aes_key, config.component_appid)
    query = push.query
    inner = crypto.decrypt_message(
        push.body, msg_signature=query["msg_signature"], timestamp=query["timestamp"], nonce=query["nonce"]
    )
    return parse_xml(inner)


def test_ticket_push_is_encrypted_signed_and_usable(sandbox: Sandbox, receiver: Receiver, wechat: WeChat) -> None:
    sandbox.control.set_event_url(receiver.url)
    result = sandbox.control.push_ticket()

    [push] = receiver.received
    query = push.query
    plain_signature = hashlib.sha1(  # noqa: S324 - the protocol's signature
        "".join(sorted([sandbox.config.component_token, query["timestamp"], query["nonce"]])).encode()
    ).hexdigest()
    assert push.path == "/wechat/component/events"
    assert set(query) == {"signature", "timestamp", "nonce", "encrypt_type", "msg_signature"}
    assert query["encrypt_type"] == "aes"
    assert query["signature"] == plain_signature
    assert push.headers["Content-Type"] == "text/xml"
    assert parse_xml(push.body)["AppId"] == COMPONENT_APPID
    assert open_push(sandbox, push) == {
        "AppId": COMPONENT_APPID,
        "CreateTime": query["timestamp"],
        "InfoType": "component_verify_ticket",
        "ComponentVerifyTicket": result["ticket"],
    }
    assert result["push"]["status"] == 200
    assert result["push"]["ok"] is True
    assert result["push"]["body"] == "success"
    assert wechat.component_token()


def test_a_push_answered_with_an_error_is_recorded_as_failed(sandbox: Sandbox, receiver: Receiver) -> None:
    receiver.status, receiver.reply = 500, b"boom"
    sandbox.control.set_event_url(receiver.url)
    sandbox.control.push_ticket()
    [attempt] = sandbox.control.pushes()
    assert (attempt["info_type"], attempt["status"], attempt["body"], attempt["ok"]) == (
        "component_verify_ticket",
        500,
        "boom",
        False,
    )


def test_a_push_without_event_url_is_recorded_not_sent(sandbox: Sandbox) -> None:
    result = sandbox.control.push_ticket()
    assert result["push"]["error"] == "event_url is not set"
    assert result["push"]["status"] is None
    assert sandbox.control.ticket() == result["ticket"]


def test_an_unreachable_event_url_is_recorded(sandbox: Sandbox, receiver: Receiver) -> None:
    # Port 9 (discard) is closed on loopback.
    sandbox.control.set_event_url("http://127.0.0.1:9/events")
    attempt = sandbox.control.push_ticket()["push"]
    assert attempt["status"] is None
    assert attempt["error"].startswith("ClientConnectorError")


def test_consent_pushes_authorized_with_the_code(sandbox: Sandbox, receiver: Receiver, wechat: WeChat) -> None:
    sandbox.control.set_event_url(receiver.url)
    token = wechat.component_token()
    pre_auth_code = wechat.pre_auth_code(token)
    account = sandbox.control.create_authorizer()
    consent = sandbox.control.consent(pre_auth_code, account["appid"])

    event = open_push(sandbox, receiver.received[-1])
    assert event == {
        "AppId": COMPONENT_APPID,
        "CreateTime": event["CreateTime"],
        "InfoType": "authorized",
        "AuthorizerAppid": account["appid"],
        "AuthorizationCode": consent["auth_code"],
        "AuthorizationCodeExpiredTime": str(int(event["CreateTime"]) + 600),
        "PreAuthCode": pre_auth_code,
    }
    assert consent["push"]["ok"] is True


def test_revoke_pushes_unauthorized_only_when_asked(sandbox: Sandbox, receiver: Receiver) -> None:
    sandbox.control.set_event_url(receiver.url)
    quiet = sandbox.control.create_authorizer(authorized=True)
    loud = sandbox.control.create_authorizer(authorized=True)
    assert sandbox.control.revoke(quiet["appid"])["push"] is None
    result = sandbox.control.revoke(loud["appid"], push=True)

    [push] = receiver.received
    event = open_push(sandbox, push)
    assert event == {
        "AppId": COMPONENT_APPID,
        "CreateTime": event["CreateTime"],
        "InfoType": "unauthorized",
        "AuthorizerAppid": loud["appid"],
    }
    assert result["authorizer"]["authorized"] is False
    assert result["authorizer"]["authorizer_refresh_token"] is None


def test_updateauthorized_on_demand(sandbox: Sandbox, receiver: Receiver, wechat: WeChat) -> None:
    sandbox.control.set_event_url(receiver.url)
    account = sandbox.control.create_authorizer(authorized=True, func_ids=[1])
    result = sandbox.control.push_updateauthorized(account["appid"], func_ids=[1, 11])

    event = open_push(sandbox, receiver.received[-1])
    assert event["InfoType"] == "updateauthorized"
    assert event["AuthorizationCode"] == result["auth_code"]
    assert result["authorizer_refresh_token"] != account["authorizer_refresh_token"]
    token = wechat.component_token()
    info = wechat.component("api_query_auth", {"authorization_code": result["auth_code"]}, token)
    assert [f["funcscope_category"]["id"] for f in info["authorization_info"]["func_info"]] == [1, 11]


def test_start_push_ticket_pushes_in_the_background(sandbox: Sandbox, receiver: Receiver, wechat: WeChat) -> None:
    sandbox.control.set_event_url(receiver.url)
    answer = wechat.post(
        "/cgi-bin/component/api_start_push_ticket",
        {"component_appid": COMPONENT_APPID, "component_secret": sandbox.config.component_appsecret},
    )
    assert answer.json() == {"errcode": 0, "errmsg": "ok"}
    [push] = receiver.wait_for(1)
    assert open_push(sandbox, push)["ComponentVerifyTicket"] == sandbox.control.ticket()
    assert [p["info_type"] for p in sandbox.control.wait_for_pushes(1)] == ["component_verify_ticket"]


def test_tickets_are_pushed_on_a_schedule(sandbox: Sandbox, receiver: Receiver) -> None:
    sandbox.control.set_event_url(receiver.url)
    sandbox.control.set_ticket_interval(0.05)
    pushes = receiver.wait_for(3)
    sandbox.control.set_ticket_interval(0)
    tickets = [open_push(sandbox, p)["ComponentVerifyTicket"] for p in pushes[:3]]
    assert len(set(tickets)) == 3


@pytest.mark.parametrize("info_type", ["authorized", "unauthorized"])
def test_pushes_list_what_was_sent(sandbox: Sandbox, receiver: Receiver, wechat: WeChat, info_type: str) -> None:
    sandbox.control.set_event_url(receiver.url)
    token = wechat.component_token()
    account = sandbox.control.create_authorizer(authorized=info_type == "unauthorized")
    if info_type == "authorized":
        sandbox.control.consent(wechat.pre_auth_code(token), account["appid"])
    else:
        sandbox.control.revoke(account["appid"], push=True)
    attempts = [p for p in sandbox.control.pushes() if p["info_type"] != "component_verify_ticket"]
    assert [(p["info_type"], p["authorizer_appid"], p["url"], p["ok"]) for p in attempts] == [
        (info_type, account["appid"], receiver.url, True)
    ]
