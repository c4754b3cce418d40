"""Drafts leaving the box (docs/wechat/draft-events.md): freepublish/submit and message/mass/sendall of a draft take it
out of the box and, after the configured delay, push PUBLISHJOBFINISH / MASSSENDJOBFINISH to the account's message
URL, encrypted as every message push; the control calls do the same without a token; drafts saved in the web
editor grow the box without a push."""

from __future__ import annotations

import re
from typing import Any

import pytest
from defusedxml import ElementTree

from tests.fixtures.sandbox import Sandbox
from tests.sandbox.conftest import Received, Receiver, WeChat, errcode
from wxplatform.wechat.crypto import MessageCrypto, parse_xml
from wxsandbox.control import SandboxControlError


def decrypted(sandbox: Sandbox, push: Received) -> str:
    config = sandbox.config
    crypto = MessageCrypto(config.component_token, config.component_aes_key, config.component_appid)
    query = push.query
    return crypto.decrypt_message(
        push.body, msg_signature=query["msg_signature"], timestamp=query["timestamp"], nonce=query["nonce"]
    )


@pytest.fixture
def account(sandbox: Sandbox, receiver: Receiver) -> dict[str, Any]:
    sandbox.control.set_message_url(f"{receiver.base}/wechat/authorizers/$APPID$/events")
    sandbox.control.update_config(draft_event_delay=0)
    return sandbox.control.create_authorizer(authorized=True, func_ids=[7, 11], draft_count=3)


def test_publishing_a_draft_removes_it_and_pushes_publishjobfinish(
    sandbox: Sandbox, receiver: Receiver, wechat: WeChat, account: dict[str, Any]
) -> None:
    media_id = account["draft_media_ids"][1]

    answer = wechat.post(
        "/cgi-bin/freepublish/submit", {"media_id": media_id}, access_token=account["authorizer_access_token"]
    ).json()

    assert answer["errcode"] == 0 and re.fullmatch(r"[0-9]+", answer["publish_id"])
    assert wechat.draft_count(account["authorizer_access_token"]) == {"total_count": 2}
    after = sandbox.control.get_authorizer(account["appid"])
    assert after is not None and media_id not in after["draft_media_ids"]
    [push] = receiver.wait_for(1)
    assert push.path == f"/wechat/authorizers/{account['appid']}/events"
    xml = ElementTree.fromstring(decrypted(sandbox, push))
    assert xml.findtext("ToUserName") == account["user_name"]
    assert (xml.findtext("MsgType"), xml.findtext("Event")) == ("event", "PUBLISHJOBFINISH")
    info = xml.find("PublishEventInfo")
    assert info is not None
    assert info.findtext("publish_id") == answer["publish_id"]
    assert info.findtext("publish_status") == "0"
    assert info.findtext("article_id")
    assert info.findtext("article_detail/item/article_url", "").startswith("http://mp.weixin.qq.com/s/")


def test_mass_sending_a_draft_removes_it_and_pushes_masssendjobfinish(
    sandbox: Sandbox, receiver: Receiver, wechat: WeChat, account: dict[str, Any]
) -> None:
    media_id = account["draft_media_ids"][0]
    body = {"filter": {"is_to_all": True}, "mpnews": {"media_id": media_id}, "msgtype": "mpnews"}

    answer = wechat.post("/cgi-bin/message/mass/sendall", body, access_token=account["authorizer_access_token"])

    data = answer.json()
    assert (data["errcode"], data["errmsg"]) == (0, "send job submission success")
    assert wechat.draft_count(account["authorizer_access_token"]) == {"total_count": 2}
    [push] = receiver.wait_for(1)
    fields = parse_xml(decrypted(sandbox, push))
    assert (fields["Event"], fields["MsgID"], fields["Status"]) == (
        "MASSSENDJOBFINISH",
        str(data["msg_id"]),
        "send success",
    )
    assert push.query["openid"] == fields["FromUserName"]


def test_an_unknown_draft_is_40007_and_changes_nothing(
    sandbox: Sandbox, receiver: Receiver, wechat: WeChat, account: dict[str, Any]
) -> None:
    answer = wechat.post(
        "/cgi-bin/freepublish/submit", {"media_id": "no-such-draft"}, access_token=account["authorizer_access_token"]
    ).json()

    assert errcode(answer) == 40007
    assert wechat.draft_count(account["authorizer_access_token"]) == {"total_count": 3}
    assert receiver.wait_for(1, timeout=0.3) == []


def test_publishing_needs_set_7_granted_to_the_platform(sandbox: Sandbox, wechat: WeChat, receiver: Receiver) -> None:
    account = sandbox.control.create_authorizer(authorized=True, func_ids=[11], draft_count=1)

    answer = wechat.post(
        "/cgi-bin/freepublish/submit",
        {"media_id": account["draft_media_ids"][0]},
        access_token=account["authorizer_access_token"],
    ).json()

    assert errcode(answer) == 61007
    assert wechat.draft_count(account["authorizer_access_token"]) == {"total_count": 1}


def test_the_control_call_publishes_without_a_token_and_returns_the_platforms_answer(
    sandbox: Sandbox, receiver: Receiver, account: dict[str, Any]
) -> None:
    result = sandbox.control.publish(account["appid"], wait=True)

    assert (result["kind"], result["event"], result["draft_count"]) == ("publish", "PUBLISHJOBFINISH", 2)
    assert result["media_id"] == account["draft_media_ids"][0]
    push = result["push"]
    assert (push["status"], push["reply_kind"]) == (200, "success")
    assert push["message"]["PublishEventInfo"]["publish_id"] == int(result["job_id"])
    assert push["attempts"][0]["sent_at"] > 0
    assert [m["message"]["Event"] for m in sandbox.control.messages()] == ["PUBLISHJOBFINISH"]


def test_the_event_waits_for_the_configured_delay(
    sandbox: Sandbox, receiver: Receiver, account: dict[str, Any]
) -> None:
    result = sandbox.control.mass_send(account["appid"], delay=0.5)

    assert result["push"] is None
    assert receiver.wait_for(1, timeout=0.2) == []
    assert len(receiver.wait_for(1, timeout=5)) == 1


def test_drafts_saved_in_the_web_editor_grow_the_box_silently(
    sandbox: Sandbox, receiver: Receiver, wechat: WeChat, account: dict[str, Any]
) -> None:
    added = sandbox.control.add_drafts(account["appid"], 4)

    assert added["draft_count"] == 7 and len(set(added["draft_media_ids"])) == 7
    assert wechat.draft_count(account["authorizer_access_token"]) == {"total_count": 7}
    assert receiver.wait_for(1, timeout=0.3) == []


def test_an_empty_box_has_nothing_to_publish(sandbox: Sandbox, receiver: Receiver) -> None:
    account = sandbox.control.create_authorizer(authorized=True, draft_count=0)

    with pytest.raises(SandboxControlError) as refused:
        sandbox.control.publish(account["appid"])

    assert refused.value.status == 409
    assert receiver.wait_for(1, timeout=0.3) == []
