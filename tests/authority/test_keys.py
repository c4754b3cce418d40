"""Service keys: hashed at rest, issued by a command that prints the key alone, refused when revoked, expired,
malformed or sent with another scheme; a merchant's API key is not a service key and a service key is not a
merchant key; a key scoped to one platform fetches that platform's tokens only."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.utils import timezone, translation

from tests.authority.helpers import authorizer_url, component_url, platform_with_token
from tests.factories import api_headers, make_api_key, make_service_key, make_tenant, service_headers
from wxplatform.authority.models import ServiceKey, TokenHandout
from wxplatform.component.models import Platform

pytestmark = pytest.mark.django_db


def error(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


def test_a_key_is_stored_only_as_its_hash(client: Client) -> None:
    key, raw = make_service_key()

    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM authority_servicekey")
        row = " ".join(str(value) for value in cursor.fetchone())
    secret = raw.partition(".")[2]
    assert secret not in row
    assert key.hashed_key != secret
    assert key.is_valid(raw)


def test_the_command_prints_the_key_alone_and_the_key_works(client: Client) -> None:
    platform_with_token("component-token-1")
    out, err = StringIO(), StringIO()

    call_command("issue_service_key", "reporting", stdout=out, stderr=err)

    raw = out.getvalue().strip()
    assert out.getvalue() == raw + "\n"
    key = ServiceKey.objects.get()
    assert (key.name, key.component, key.revoked) == ("reporting", None, False)
    assert key.is_valid(raw)
    assert raw not in err.getvalue()
    assert key.prefix in err.getvalue()
    assert client.get(component_url(), **service_headers(raw)).json()["access_token"] == "component-token-1"


def test_the_command_scopes_a_key_to_one_platform(settings: Any) -> None:
    out = StringIO()

    call_command(
        "issue_service_key", "staging", "--component", settings.WECHAT_COMPONENT_APPID, stdout=out, stderr=StringIO()
    )

    key = ServiceKey.objects.get()
    assert key.component == Platform.objects.get(component_appid=settings.WECHAT_COMPONENT_APPID)


def test_the_command_refuses_an_unknown_platform_and_issues_nothing() -> None:
    out = StringIO()

    with pytest.raises(CommandError, match=r"No platform with component AppID wxnotaplatform\."):
        call_command("issue_service_key", "staging", "--component", "wxnotaplatform", stdout=out, stderr=StringIO())

    assert out.getvalue() == ""
    assert not ServiceKey.objects.exists()


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "not_authenticated"),
        ({"HTTP_AUTHORIZATION": "Service-Key"}, 401, "authentication_failed"),
        ({"HTTP_AUTHORIZATION": "Service-Key nonsense"}, 401, "authentication_failed"),
        ({"HTTP_AUTHORIZATION": "Service-Key abcd1234.wrongsecretwrongsecret"}, 401, "authentication_failed"),
        ({"HTTP_AUTHORIZATION": "Bearer abc"}, 401, "authentication_failed"),
    ],
)
def test_requests_without_a_valid_service_key_are_refused_in_the_error_shape(
    client: Client, headers: dict[str, str], status: int, code: str
) -> None:
    platform_with_token()

    response = client.get(component_url(), **headers)

    assert response.status_code == status
    assert error(response)["code"] == code
    assert "access_token" not in response.json()
    assert response["WWW-Authenticate"] == "Service-Key"
    assert not TokenHandout.objects.exists()


def test_a_service_key_sent_with_the_merchant_scheme_is_refused(client: Client) -> None:
    platform_with_token()
    _key, raw = make_service_key()

    response = client.get(component_url(), HTTP_AUTHORIZATION=f"Api-Key {raw}")

    assert response.status_code == 401
    assert error(response)["code"] == "authentication_failed"


def test_the_scheme_name_is_case_insensitive_as_for_merchant_keys(client: Client) -> None:
    # RFC 9110 section 11.1: an authentication scheme is a case-insensitive token; the merchant API (the
    # library's parser) always read it so, and both kinds share one parser now.
    platform_with_token("component-token-1")
    _key, raw = make_service_key()

    response = client.get(component_url(), HTTP_AUTHORIZATION=f"service-key {raw}")

    assert (response.status_code, response.json()["access_token"]) == (200, "component-token-1")


def test_a_merchant_api_key_is_not_a_service_key(client: Client) -> None:
    platform_with_token()
    tenant = make_tenant()
    _key, raw = make_api_key(tenant)

    for headers in (api_headers(raw), service_headers(raw)):
        response = client.get(authorizer_url(tenant.authorizer_appid), **headers)
        assert response.status_code == 401
        assert error(response)["code"] == "authentication_failed"
        assert tenant.access_token not in response.content.decode()
    assert not TokenHandout.objects.exists()


def test_a_service_key_is_not_a_merchant_api_key(client: Client) -> None:
    _key, raw = make_service_key()

    for headers in (service_headers(raw), api_headers(raw)):
        response = client.get("/api/v1/tenant", **headers)
        assert response.status_code == 401
        assert error(response)["code"] == "authentication_failed"


def test_a_revoked_key_is_refused_on_the_next_request(client: Client) -> None:
    platform_with_token()
    key, raw = make_service_key()
    assert client.get(component_url(), **service_headers(raw)).status_code == 200

    ServiceKey.objects.filter(pk=key.pk).update(revoked=True)
    response = client.get(component_url(), **service_headers(raw))

    assert response.status_code == 401
    assert error(response)["code"] == "service_key_revoked"
    assert "access_token" not in response.json()
    assert TokenHandout.objects.count() == 1


def test_an_expired_key_is_refused(client: Client) -> None:
    platform_with_token()
    _key, raw = make_service_key(expiry_date=timezone.now() - timedelta(seconds=1))

    response = client.get(component_url(), **service_headers(raw))

    assert response.status_code == 401
    assert error(response)["code"] == "service_key_expired"
    assert not TokenHandout.objects.exists()


def test_a_key_for_all_platforms_and_a_key_for_this_platform_both_fetch_its_token(client: Client) -> None:
    platform = platform_with_token("component-token-2")
    _all, raw_all = make_service_key(name="all")
    _one, raw_one = make_service_key(name="one", component=platform)

    for raw in (raw_all, raw_one):
        response = client.get(component_url(), **service_headers(raw))
        assert response.status_code == 200
        assert response.json()["access_token"] == "component-token-2"


def test_a_key_scoped_to_another_platform_is_refused_with_a_code(client: Client) -> None:
    platform_with_token("component-token-3")
    tenant = make_tenant()
    other = Platform.objects.create(component_appid="wx0000other0platform")
    key, raw = make_service_key(component=other)

    for url in (component_url(), authorizer_url(tenant.authorizer_appid)):
        response = client.get(url, **service_headers(raw))
        assert response.status_code == 403
        assert error(response)["code"] == "service_key_out_of_scope"
        assert "component-token-3" not in response.content.decode()
        assert tenant.access_token not in response.content.decode()
    assert (
        list(TokenHandout.objects.values_list("key", "outcome", "error_code"))
        == [(key.pk, "forbidden", "service_key_out_of_scope")] * 2
    )


def test_wrong_keys_from_one_address_are_throttled_while_a_good_key_from_it_is_answered(
    client: Client, settings: Any
) -> None:
    # Issue 28, finding 10a: the address was checked before the key, so every service behind one NAT was locked
    # out by one neighbour's wrong key.
    settings.SERVICE_KEY_FAILURE_RATE = "3/min"
    settings.REDIS_KEY_PREFIX = f"{settings.REDIS_KEY_PREFIX}-throttle-{timezone.now().timestamp()}"
    platform_with_token()
    _key, raw = make_service_key()
    bad = {"HTTP_AUTHORIZATION": "Service-Key abcd1234.wrongsecretwrongsecret", "REMOTE_ADDR": "192.0.2.10"}

    statuses = [client.get(component_url(), **bad).status_code for _ in range(5)]
    neighbour = client.get(component_url(), REMOTE_ADDR="192.0.2.10", **service_headers(raw))
    still_wrong = client.get(component_url(), **bad)
    elsewhere = client.get(component_url(), REMOTE_ADDR="192.0.2.11", **service_headers(raw))

    assert statuses == [401, 401, 401, 429, 429]
    assert neighbour.status_code == 200
    assert "access_token" in neighbour.json()
    # A good key does not reset the count of the wrong ones.
    assert still_wrong.status_code == 429
    assert error(still_wrong)["code"] == "throttled"
    assert int(still_wrong["Retry-After"]) >= 1
    assert elsewhere.status_code == 200
    assert TokenHandout.objects.count() == 2


def test_each_keys_requests_are_limited_without_an_audit_row_past_the_limit(client: Client, settings: Any) -> None:
    settings.SERVICE_KEY_RATE = "3/min"
    settings.REDIS_KEY_PREFIX = f"{settings.REDIS_KEY_PREFIX}-keyrate-{timezone.now().timestamp()}"
    platform_with_token()
    _key, raw = make_service_key(name="runaway")
    _other, other_raw = make_service_key(name="calm")

    statuses = [client.get(component_url(), **service_headers(raw)).status_code for _ in range(5)]
    limited = client.get(component_url(), **service_headers(raw))
    calm = client.get(component_url(), **service_headers(other_raw))

    assert statuses == [200, 200, 200, 429, 429]
    assert error(limited)["code"] == "throttled"
    assert int(limited["Retry-After"]) >= 1
    assert "access_token" not in limited.json()
    assert calm.status_code == 200
    # Only the answered requests are audited: a runaway loop writes no row per refusal.
    assert TokenHandout.objects.filter(key__name="runaway").count() == 3


def test_a_key_scoped_to_a_second_platform_gets_that_platforms_tokens_and_only_those(client: Client) -> None:
    platform_with_token("default-component-token")
    second = Platform.objects.create(
        component_appid="wx0000second0platform",
        access_token="second-component-token",
        access_token_expires_at=timezone.now() + timedelta(hours=2),
    )
    # The same Official Account authorized both platforms: two tenants, two tokens.
    on_default = make_tenant()
    on_second = make_tenant(component=second, authorizer_appid=on_default.authorizer_appid)
    _key, raw = make_service_key(component=second)

    component = client.get(component_url(second.component_appid), **service_headers(raw))
    authorizer = client.get(authorizer_url(on_second.authorizer_appid, second.component_appid), **service_headers(raw))
    refused = client.get(authorizer_url(on_default.authorizer_appid), **service_headers(raw))

    assert component.json()["access_token"] == "second-component-token"
    assert authorizer.json()["access_token"] == on_second.access_token
    assert refused.status_code == 403
    assert on_default.access_token not in refused.content.decode()


def test_the_command_speaks_chinese_in_a_chinese_terminal(settings: Any) -> None:
    err = StringIO()

    with translation.override("zh-hans"):
        call_command("issue_service_key", "发布", stdout=StringIO(), stderr=err)
        with pytest.raises(CommandError, match="NAME 必须是 1 到"):
            call_command("issue_service_key", " ", stdout=StringIO(), stderr=StringIO())

    prefix = ServiceKey.objects.get().prefix
    assert err.getvalue() == f"已为所有平台签发服务密钥 {prefix}…（发布）。它不会再次显示。\n"  # noqa: RUF001
