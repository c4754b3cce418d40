"""POST /wechat/authorizers/<appid>/events, the message-and-event URL: WeChat's release-test accounts get the
test's answers, merchants' fans get `success`, retries are handled once, and nothing else gets through."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

import pytest
from django.conf import settings as django_settings

from tenants.models import AuthorizerMessage, PushLog, Tenant
from tenants.pushes import rejected_budget_key
from tenants.selectors import syncable_tenants
from tests.fixtures.platform import LivePlatform, sealed_message, text_message
from wxplatform.core.redis_client import redis_client
from wxplatform.wechat.crypto import MessageCrypto, parse_xml

TEST_APPID = "wx570bc396a51b8ff8"
TEST_USER_NAME = "gh_3c884a361561"


def post(client: Any, appid: str, push: tuple[bytes, dict[str, str]]) -> Any:
    body, query = push
    return client.generic(
        "POST", f"/wechat/authorizers/{appid}/events?{urlencode(query)}", body, content_type="text/xml"
    )


def decrypted_reply(response: Any) -> dict[str, str]:
    """The reply's fields, after checking its MsgSignature as WeChat does."""
    envelope = parse_xml(response.content)
    crypto = MessageCrypto(
        django_settings.WECHAT_COMPONENT_TOKEN,
        django_settings.WECHAT_COMPONENT_AES_KEY,
        django_settings.WECHAT_COMPONENT_APPID,
    )
    crypto.verify_signature(
        envelope["MsgSignature"], timestamp=envelope["TimeStamp"], nonce=envelope["Nonce"], encrypt=envelope["Encrypt"]
    )
    return parse_xml(crypto.decrypt(envelope["Encrypt"]))


# --- Through the sandbox's WeChat -------------------------------------------------------------------


@pytest.mark.smoke
@pytest.mark.django_db(transaction=True)
def test_the_test_text_gets_its_callback_reply_to_the_sender_through_the_sandbox(ready_platform: LivePlatform) -> None:
    platform = ready_platform
    authorize_test_account(platform, push=False)
    answer = platform.control.send_message(TEST_APPID, content="TESTCOMPONENT_MSG_TYPE_TEXT", from_openid="oFan1")

    assert answer["status"] == 200
    assert answer["reply_kind"] == "encrypted"
    assert answer["signature_ok"] is True
    assert answer["reply"]["ToUserName"] == "oFan1"
    assert answer["reply"]["FromUserName"] == TEST_USER_NAME
    assert answer["reply"]["MsgType"] == "text"
    assert answer["reply"]["Content"] == "TESTCOMPONENT_MSG_TYPE_TEXT_callback"


@pytest.mark.django_db(transaction=True)
def test_an_event_to_a_test_account_gets_event_from_callback(ready_platform: LivePlatform) -> None:
    platform = ready_platform
    authorize_test_account(platform, push=False)
    answer = platform.control.send_message(TEST_APPID, msg_type="event", event="LOCATION", from_openid="oFan2")

    assert answer["reply_kind"] == "encrypted"
    assert answer["reply"]["Content"] == "LOCATIONfrom_callback"
    assert answer["reply"]["ToUserName"] == "oFan2"


@pytest.mark.django_db(transaction=True)
def test_a_merchant_fan_gets_success_even_for_the_test_strings(platform: LivePlatform) -> None:
    account = platform.control.create_authorizer(kind="service", func_ids=[1, 11], authorized=True)

    text = platform.control.send_message(account["appid"], content="TESTCOMPONENT_MSG_TYPE_TEXT")
    event = platform.control.send_message(account["appid"], msg_type="event", event="LOCATION")

    assert (text["status"], text["reply_kind"]) == (200, "success")
    assert (event["status"], event["reply_kind"]) == (200, "success")


@pytest.mark.django_db(transaction=True)
def test_query_auth_code_is_answered_empty_then_by_a_customer_service_message_from_the_worker(
    ready_platform: LivePlatform, worker_factory: Any
) -> None:
    worker_factory()
    control = ready_platform.control
    authorize_test_account(ready_platform, push=True)
    _wait(lambda: Tenant.objects.filter(authorizer_appid=TEST_APPID).exists())
    code = control.issue_auth_code(TEST_APPID)["auth_code"]

    answer = control.send_message(TEST_APPID, content=f"QUERY_AUTH_CODE:{code}", from_openid="oFan3")

    assert (answer["status"], answer["reply_kind"]) == (200, "empty")
    _wait(lambda: bool(control.custom_messages(TEST_APPID)))
    [sent] = control.custom_messages(TEST_APPID)
    assert (sent["touser"], sent["msgtype"], sent["content"]) == ("oFan3", "text", f"{code}_from_api")
    assert sent["auth_code"] == code
    message = AuthorizerMessage.objects.get()
    assert message.answered_at is not None
    assert message.query_auth_code == ""


def authorize_test_account(platform: LivePlatform, *, push: bool) -> None:
    """WeChat's test account authorizes the platform in the sandbox (with the `authorized` push, or without)."""
    answer = platform.control.consent(_platform_pre_auth_code(platform), TEST_APPID, push=push)
    if push:
        assert answer["push"]["status"] == 200


def _platform_pre_auth_code(platform: LivePlatform) -> str:
    """A pre_auth_code created by the platform, as its authorization page does."""
    import re
    from html import unescape
    from urllib.parse import parse_qs, urlsplit

    import requests

    page = requests.get(f"{platform.url}/wechat/authorize", timeout=10)
    link = unescape(re.search(r'id="authorize-pc"[^>]*href="([^"]+)"', page.text).group(1))  # type: ignore[union-attr]
    return parse_qs(urlsplit(link).query)["pre_auth_code"][0]


def _wait(condition: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.django_db(transaction=True)
def test_a_test_account_is_marked_and_never_synced(ready_platform: LivePlatform, worker_factory: Any) -> None:
    worker_factory()
    authorize_test_account(ready_platform, push=True)

    _wait(lambda: Tenant.objects.filter(authorizer_appid=TEST_APPID).exists())

    tenant = Tenant.objects.get(authorizer_appid=TEST_APPID)
    assert tenant.is_test_account is True
    assert not syncable_tenants().filter(pk=tenant.pk).exists()


# --- Retries ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_retried_query_auth_code_is_recorded_and_queued_once(
    client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    message = text_message("QUERY_AUTH_CODE:queryauthcode@@@retried", msg_id=77)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = post(client, TEST_APPID, sealed_message(message, nonce="1"))
        # WeChat's retry: the same message newly encrypted and signed.
        second = post(client, TEST_APPID, sealed_message(message, nonce="2"))

    assert (first.status_code, first.content) == (200, b"")
    assert (second.status_code, second.content) == (200, b"")
    assert AuthorizerMessage.objects.count() == 1
    assert len(callbacks) == 1


@pytest.mark.django_db
def test_events_without_msgid_are_deduplicated_on_sender_and_create_time(
    client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from tenants.messages import dedup_key

    event = {"FromUserName": "oFan", "CreateTime": "1700000000", "MsgType": "event", "Event": "LOCATION"}

    assert dedup_key(event) == dedup_key(dict(event))
    assert dedup_key(event) != dedup_key({**event, "CreateTime": "1700000001"})
    assert dedup_key(event) != dedup_key({**event, "FromUserName": "oOther"})


# --- Refused --------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("appid", ["wx%20x", "%3Cx%3E", "a" * 65, "", "/", "wx1/x", "%2F", "%0A", "wx%0D%0Ax"])
def test_a_path_appid_that_is_not_an_appid_is_refused(client: Any, appid: str) -> None:
    response = post(client, appid, sealed_message(text_message("TESTCOMPONENT_MSG_TYPE_TEXT")))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_appid"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/wechat/authorizers/wx570bc396a51b8ff8/events", "/wechat/component/events"])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_get_405_in_the_error_shape(client: Any, path: str, method: str) -> None:
    response = client.generic(method, path)

    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert PushLog.objects.count() == 0


@pytest.mark.django_db
def test_a_forged_message_is_refused_never_success(client: Any) -> None:
    push = sealed_message(text_message("QUERY_AUTH_CODE:queryauthcode@@@forged"), token="not-the-platform-token")

    response = post(client, TEST_APPID, push)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "bad_signature"
    assert AuthorizerMessage.objects.count() == 0


@pytest.mark.django_db
def test_a_message_encrypted_for_another_component_is_refused(client: Any) -> None:
    push = sealed_message(text_message("TESTCOMPONENT_MSG_TYPE_TEXT"), appid="wx1111111111111111")

    response = post(client, TEST_APPID, push)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "wrong_appid"


# --- Push log ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_push_is_logged_as_received_without_its_decrypted_contents(client: Any) -> None:
    # Refused pushes are logged up to a budget per minute, which earlier tests (the fuzzers) may have spent.
    redis_client().delete(rejected_budget_key(time.time()))
    push = sealed_message(text_message("TESTCOMPONENT_MSG_TYPE_TEXT", openid="oLogged"))
    post(client, TEST_APPID, push)
    post(client, TEST_APPID, sealed_message(text_message("x"), token="wrong"))

    replied, refused = PushLog.objects.order_by("id")
    assert (replied.endpoint, replied.authorizer_appid, replied.kind) == ("message", TEST_APPID, "text")
    assert (replied.signature_ok, replied.decrypted, replied.outcome) == (True, True, "reply")
    assert replied.status_code == 200
    assert replied.component_appid == django_settings.WECHAT_COMPONENT_APPID
    assert replied.body == push[0].decode()
    assert replied.query["msg_signature"] == push[1]["msg_signature"]
    assert "TESTCOMPONENT" not in replied.body
    assert replied.duration_ms > 0
    assert (refused.outcome, refused.signature_ok, refused.error_code, refused.status_code) == (
        "rejected",
        False,
        "bad_signature",
        401,
    )
