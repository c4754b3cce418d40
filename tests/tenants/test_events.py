"""POST /wechat/component/events: verify, decrypt, dispatch; refuse everything else without a state change."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

import pytest
from django.db import connection

from tests.fixtures.platform import EVENTS_PATH, LivePlatform, signed_push, ticket_fields
from wxplatform.component.models import Platform

pytestmark = pytest.mark.django_db


def post(client: Any, body: bytes, query: dict[str, str]) -> Any:
    return client.generic("POST", f"{EVENTS_PATH}?{urlencode(query)}", body, content_type="text/xml")


def stored_ticket() -> str | None:
    credential = Platform.objects.filter().first()
    return (credential.verify_ticket or None) if credential else None


def test_ticket_push_from_the_sandbox_is_stored_encrypted_at_rest(platform: LivePlatform) -> None:
    ticket = platform.push_ticket()

    credential = Platform.objects.get()
    assert credential.verify_ticket == ticket
    assert credential.ticket_received_at is not None
    with connection.cursor() as cursor:
        cursor.execute("SELECT verify_ticket FROM component_platform")
        (raw,) = cursor.fetchone()
    assert ticket not in raw


@pytest.mark.smoke
def test_valid_ticket_push_answers_the_bare_string_success(client: Any) -> None:
    body, query = signed_push(ticket_fields("ticket@@@one"))

    response = post(client, body, query)

    assert response.status_code == 200
    assert response.content == b"success"
    assert response["Content-Type"].startswith("text/plain")
    assert stored_ticket() == "ticket@@@one"


def test_forged_signature_is_refused_and_changes_nothing(client: Any) -> None:
    body, query = signed_push(ticket_fields("ticket@@@forged"), token="not-the-platform-token")

    response = post(client, body, query)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "bad_signature"
    assert stored_ticket() is None


def test_tampered_body_is_refused(client: Any) -> None:
    body, query = signed_push(ticket_fields("ticket@@@one"))
    tampered = body.replace(b"<Encrypt><![CDATA[", b"<Encrypt><![CDATA[AAAA")

    response = post(client, tampered, query)

    assert response.status_code == 401
    assert stored_ticket() is None


def test_push_encrypted_for_another_appid_is_refused(client: Any) -> None:
    body, query = signed_push(ticket_fields("ticket@@@other"), appid="wx1111111111111111")

    response = post(client, body, query)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "wrong_appid"
    assert stored_ticket() is None


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not xml at all",
        b"<xml><Encrypt>",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b"<xml><Encrypt>&b;</Encrypt></xml>",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Encrypt>&e;</Encrypt></xml>',
    ],
    ids=["empty", "garbage", "truncated", "entity-bomb", "external-entity"],
)
def test_malformed_bodies_get_a_clear_4xx(client: Any, body: bytes) -> None:
    query = {"timestamp": str(int(time.time())), "nonce": "1", "encrypt_type": "aes", "msg_signature": "0" * 40}

    response = post(client, body, query)

    assert 400 <= response.status_code < 500
    assert "error" in response.json()
    assert stored_ticket() is None


def test_missing_query_parameters_are_refused(client: Any) -> None:
    body, query = signed_push(ticket_fields("ticket@@@one"))
    del query["msg_signature"]

    response = post(client, body, query)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "missing_parameters"
    assert stored_ticket() is None


def test_oversized_body_is_refused_before_parsing(client: Any) -> None:
    _body, query = signed_push(ticket_fields("ticket@@@one"))

    response = post(client, b"<xml>" + b"A" * 70_000 + b"</xml>", query)

    assert response.status_code == 413
    assert stored_ticket() is None


def test_verified_push_outside_the_time_window_is_refused_as_a_replay(client: Any) -> None:
    body, query = signed_push(ticket_fields("ticket@@@old"), timestamp=int(time.time()) - 7200)

    response = post(client, body, query)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "stale_message"
    assert stored_ticket() is None


def test_get_is_not_allowed(client: Any) -> None:
    assert client.get(EVENTS_PATH).status_code == 405


def test_a_late_push_of_an_older_ticket_keeps_the_newer_one(client: Any) -> None:
    now = int(time.time())
    post(client, *signed_push(ticket_fields("ticket@@@newer", created=now)))
    body, query = signed_push(ticket_fields("ticket@@@older", created=now - 600), nonce="2")

    response = post(client, body, query)

    assert response.content == b"success"
    assert stored_ticket() == "ticket@@@newer"


def test_duplicate_push_is_idempotent(client: Any) -> None:
    body, query = signed_push(ticket_fields("ticket@@@dup"))

    first, second = post(client, body, query), post(client, body, query)

    assert (first.content, second.content) == (b"success", b"success")
    assert Platform.objects.count() == 1
    assert stored_ticket() == "ticket@@@dup"


def test_unknown_info_type_is_acknowledged_and_ignored(client: Any) -> None:
    fields = {"AppId": "wx0000sandbox0comp", "CreateTime": int(time.time()), "InfoType": "notify_third_fasteregister"}

    response = post(client, *signed_push(fields))

    assert response.content == b"success"
    credential = Platform.objects.get()
    assert (credential.verify_ticket, credential.last_push_info_type) == ("", "notify_third_fasteregister")
