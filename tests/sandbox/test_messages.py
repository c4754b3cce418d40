"""Fans' messages and events pushed to the message-and-event URL (docs/wechat/message-url.md#the-url-and-appid), and
what the platform answered."""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

import pytest

from tests.fixtures.sandbox import Sandbox
from tests.sandbox.conftest import COMPONENT_APPID, Received, Receiver
from tests.sandbox.fake_platform import FakePlatform
from wxplatform.wechat.crypto import MessageCrypto, build_xml, parse_xml
from wxsandbox.control import SandboxControlError

OPENID = "oFAN0000000000000000000000002"


def crypto(sandbox: Sandbox) -> MessageCrypto:
    config = sandbox.config
    return MessageCrypto(config.component_token, config.component_aes_key, config.component_appid)


def opened(sandbox: Sandbox, push: Received) -> dict[str, str]:
    query = push.query
    inner = crypto(sandbox).decrypt_message(
        push.body, msg_signature=query["msg_signature"], timestamp=query["timestamp"], nonce=query["nonce"]
    )
    return parse_xml(inner)


@pytest.fixture
def account(sandbox: Sandbox, receiver: Receiver) -> dict[str, Any]:
    sandbox.control.set_message_url(f"{receiver.base}/wechat/authorizers/$APPID$/events")
    return sandbox.control.create_authorizer(authorized=True)


def test_a_text_message_is_encrypted_with_the_components_key(
    sandbox: Sandbox, receiver: Receiver, account: dict[str, Any]
) -> None:
    receiver.reply = b""
    result = sandbox.control.send_message(account["appid"], content="你好", from_openid=OPENID, msg_id=42)

    [push] = receiver.received
    query = push.query
    plain = hashlib.sha1(  # noqa: S324 - the protocol's signature
        "".join(sorted([sandbox.config.component_token, query["timestamp"], query["nonce"]])).encode()
    ).hexdigest()
    assert push.path == f"/wechat/authorizers/{account['appid']}/events"
    assert set(query) == {"signature", "timestamp", "nonce", "openid", "encrypt_type", "msg_signature"}
    assert (query["openid"], query["encrypt_type"], query["signature"]) == (OPENID, "aes", plain)
    outer = parse_xml(push.body)
    assert set(outer) == {"ToUserName", "Encrypt"}
    assert outer["ToUserName"] == account["user_name"]
    assert opened(sandbox, push) == {
        "ToUserName": account["user_name"],
        "FromUserName": OPENID,
        "CreateTime": query["timestamp"],
        "MsgType": "text",
        "Content": "你好",
        "MsgId": "42",
    }
    assert result["message"]["Content"] == "你好"
    assert (result["answered"], result["status"], result["body"], result["reply_kind"]) == (True, 200, "", "empty")
    assert isinstance(result["elapsed_ms"], int)
    assert [a["try"] for a in result["attempts"]] == [1]


def test_an_event_has_no_msgid_and_carries_its_fields(
    sandbox: Sandbox, receiver: Receiver, account: dict[str, Any]
) -> None:
    sandbox.control.send_message(account["appid"], msg_type="event", event="LOCATION", from_openid=OPENID)
    inner = opened(sandbox, receiver.received[0])
    assert inner["MsgType"] == "event"
    assert (inner["Event"], "MsgId" in inner) == ("LOCATION", False)
    assert set(inner) >= {"Latitude", "Longitude", "Precision"}


def test_an_encrypted_passive_reply_is_verified_and_decrypted(sandbox: Sandbox, account: dict[str, Any]) -> None:
    platform = FakePlatform(sandbox.base_url, sandbox.config)
    platform.start()
    try:
        sandbox.control.set_message_url(platform.message_url)
        result = sandbox.control.send_message(account["appid"], content="ping", from_openid=OPENID)
    finally:
        platform.stop()
    assert (result["reply_kind"], result["encrypted"], result["signature_ok"]) == ("encrypted", True, True)
    assert result["reply"] == {
        "ToUserName": OPENID,
        "FromUserName": account["user_name"],
        "CreateTime": result["reply"]["CreateTime"],
        "MsgType": "text",
        "Content": "ping_callback",
    }
    assert parse_xml(result["body"])["MsgSignature"]


def test_a_reply_with_a_wrong_signature_is_flagged(sandbox: Sandbox, account: dict[str, Any]) -> None:
    platform = FakePlatform(sandbox.base_url, sandbox.config)
    platform.knobs.sign_badly = True
    platform.start()
    try:
        sandbox.control.set_message_url(platform.message_url)
        result = sandbox.control.send_message(account["appid"], content="ping", from_openid=OPENID)
    finally:
        platform.stop()
    assert (result["reply_kind"], result["signature_ok"]) == ("encrypted", False)
    assert result["reply"]["Content"] == "ping_callback"


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b"success", "success"),
        (b"  \n", "empty"),
        (b"<xml><ToUserName>o</ToUserName><Content>plain</Content></xml>", "plain"),
        (b"<html>oops", "invalid"),
    ],
)
def test_other_answers_are_told_apart(
    sandbox: Sandbox, receiver: Receiver, account: dict[str, Any], body: bytes, kind: str
) -> None:
    receiver.reply = body
    result = sandbox.control.send_message(account["appid"], content="x")
    assert (result["reply_kind"], result["encrypted"], result["signature_ok"]) == (kind, False, None)
    if kind == "plain":
        assert result["reply"] == {"ToUserName": "o", "Content": "plain"}


def test_an_encrypted_reply_for_another_appid_cannot_be_decrypted(
    sandbox: Sandbox, receiver: Receiver, account: dict[str, Any]
) -> None:
    foreign = MessageCrypto(sandbox.config.component_token, sandbox.config.component_aes_key, "wxsomeoneelse")
    encrypt, signature = foreign.encrypt_message("<xml><Content>x</Content></xml>", timestamp="1", nonce="2")
    receiver.reply = build_xml({"Encrypt": encrypt, "MsgSignature": signature, "TimeStamp": 1, "Nonce": "2"}).encode()
    result = sandbox.control.send_message(account["appid"], content="x")
    assert (result["reply_kind"], result["signature_ok"], result["reply"]) == ("encrypted", True, None)
    assert "AppIdMismatchError" in result["error"]


def test_no_answer_within_the_timeout_is_retried_with_the_same_message(
    sandbox: Sandbox, receiver: Receiver, account: dict[str, Any]
) -> None:
    receiver.delay = 1.0
    started = time.monotonic()
    result = sandbox.control.send_message(account["appid"], content="slow", tries=3, timeout=0.2)
    elapsed = time.monotonic() - started

    bodies = [opened(sandbox, push) for push in receiver.wait_for(3)]
    assert len(bodies) == 3
    assert len({(b["MsgId"], b["CreateTime"]) for b in bodies}) == 1
    assert len({push.query["nonce"] for push in receiver.received}) == 3
    assert result["answered"] is False
    assert [(a["try"], a["status"], a["error"]) for a in result["attempts"]] == [
        (n, None, "no answer within 0.2 s") for n in (1, 2, 3)
    ]
    assert result["error"] == "no answer within 0.2 s"
    assert 0.6 <= elapsed < 3


def test_a_late_first_answer_is_retried_and_the_second_counts(
    sandbox: Sandbox, receiver: Receiver, account: dict[str, Any]
) -> None:
    calls = {"n": 0}
    lock = threading.Lock()

    def respond(received: Received) -> tuple[int, bytes]:
        with lock:
            calls["n"] += 1
            first = calls["n"] == 1
        if first:
            time.sleep(0.6)
        return 200, b"success"

    receiver.respond = respond
    result = sandbox.control.send_message(account["appid"], content="x", timeout=0.3)
    assert [a["try"] for a in result["attempts"]] == [1, 2]
    assert (result["answered"], result["reply_kind"]) == (True, "success")


def test_an_http_error_is_an_answer_and_is_not_retried(
    sandbox: Sandbox, receiver: Receiver, account: dict[str, Any]
) -> None:
    receiver.status, receiver.reply = 500, b"boom"
    result = sandbox.control.send_message(account["appid"], content="x")
    assert (len(result["attempts"]), result["status"], result["body"]) == (1, 500, "boom")
    assert len(receiver.received) == 1


def test_the_retries_come_from_the_config(sandbox: Sandbox, receiver: Receiver, account: dict[str, Any]) -> None:
    sandbox.control.update_config(message_tries=2, message_timeout=0.2)
    receiver.delay = 0.6
    result = sandbox.control.send_message(account["appid"], content="x")
    assert len(result["attempts"]) == 2


def test_without_a_message_url_the_push_is_recorded_not_sent(sandbox: Sandbox) -> None:
    account = sandbox.control.create_authorizer(authorized=True)
    result = sandbox.control.send_message(account["appid"], content="x")
    assert (result["error"], result["attempts"], result["url"]) == ("message_url is not set", [], None)
    assert [m["id"] for m in sandbox.control.messages()] == [result["id"]]


def test_messages_lists_every_push(sandbox: Sandbox, receiver: Receiver, account: dict[str, Any]) -> None:
    first = sandbox.control.send_message(account["appid"], content="1")
    second = sandbox.control.send_message(account["appid"], msg_type="event", event="subscribe")
    listed = sandbox.control.messages()
    assert [(m["id"], m["message"]["MsgType"]) for m in listed] == [(first["id"], "text"), (second["id"], "event")]
    assert listed[0]["url"] == f"{receiver.base}/wechat/authorizers/{account['appid']}/events"


def test_refused_message_calls(sandbox: Sandbox, receiver: Receiver, account: dict[str, Any]) -> None:
    never = sandbox.control.create_authorizer()
    cases = [
        (lambda: sandbox.control.send_message(never["appid"], content="x"), 409),
        (lambda: sandbox.control.send_message("wxnobody", content="x"), 404),
        (lambda: sandbox.control.send_message(account["appid"]), 400),
        (lambda: sandbox.control.send_message(account["appid"], msg_type="event"), 400),
        (lambda: sandbox.control.send_message(account["appid"], msg_type="video", content="x"), 400),
        (lambda: sandbox.control.send_message(account["appid"], content="x", tries=0), 400),
        (lambda: sandbox.control.set_message_url("https://p.example.com/no-placeholder"), 400),
    ]
    for call, status in cases:
        with pytest.raises(SandboxControlError) as info:
            call()
        assert info.value.status == status
    assert receiver.received == []
    assert sandbox.control.get_config()["message_url"].endswith("/$APPID$/events")
    assert sandbox.control.component()["component_appid"] == COMPONENT_APPID
