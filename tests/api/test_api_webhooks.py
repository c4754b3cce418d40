"""/api/v1/webhooks: a merchant manages its own webhooks with its key; another account's are a 404; every
refusal is a 400 naming the problem and writes nothing; the secret is shown on creation and rotation only."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from tenants.models import Tenant
from tests.factories import api_headers, make_api_key
from tests.fixtures.receiver import Receiver
from tests.webhooks.helpers import make_endpoint, make_event, run_until_settled, verified
from webhooks.models import Endpoint

pytestmark = pytest.mark.django_db

HOOK = "https://hooks.example.net/wx"
WEBHOOKS = "/api/v1/webhooks"


@pytest.fixture
def key(tenant: Tenant) -> str:
    return make_api_key(tenant)[1]


@pytest.fixture
def other_key(other_tenant: Tenant) -> str:
    return make_api_key(other_tenant)[1]


def post(client: Client, key: str, path: str, body: Any = None) -> Any:
    return client.post(path, body, content_type="application/json", **api_headers(key))


def patch(client: Client, key: str, path: str, body: Any) -> Any:
    return client.patch(path, body, content_type="application/json", **api_headers(key))


def test_create_answers_201_with_the_secret_once(client: Client, tenant: Tenant, key: str) -> None:
    response = post(client, key, WEBHOOKS, {"url": HOOK, "events": ["draft_count.changed"]})

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {
        "id",
        "url",
        "events",
        "enabled",
        "disabled_reason",
        "disabled_at",
        "created_at",
        "updated_at",
        "secret",
    }
    assert (body["url"], body["events"], body["enabled"]) == (HOOK, ["draft_count.changed"], True)
    assert body["secret"].startswith("whsec_")
    endpoint = Endpoint.objects.get(pk=body["id"], tenant=tenant)
    assert endpoint.secret == body["secret"]
    # Encrypted at rest, and never shown again.
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM webhooks_endpoint WHERE id = %s", [endpoint.pk])
        assert body["secret"] not in cursor.fetchone()[0]
    listed = client.get(WEBHOOKS, **api_headers(key))
    assert listed.status_code == 200
    assert [w["id"] for w in listed.json()] == [body["id"]]
    assert "secret" not in listed.json()[0]
    assert "secret" not in client.get(f"{WEBHOOKS}/{body['id']}", **api_headers(key)).json()


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (
            {"url": "http://hooks.example.net/x", "events": ["draft_count.changed"]},
            "invalid_url",
            "url: The URL must use https.",
        ),
        (
            {"url": "https://169.254.169.254/latest/meta-data", "events": ["draft_count.changed"]},
            "invalid_url",
            "url: 169.254.169.254 is the cloud metadata address and is never a webhook target.",
        ),
        (
            {"url": "https://10.0.0.7/x", "events": ["draft_count.changed"]},
            "invalid_url",
            "url: 10.0.0.7 is a private or reserved address.",
        ),
        (
            # The metadata address through NAT64 (issue 28, finding 8): was 201.
            {"url": "https://[64:ff9b::a9fe:a9fe]/", "events": ["draft_count.changed"]},
            "invalid_url",
            "url: 64:ff9b::a9fe:a9fe reaches the IPv4 address 169.254.169.254: 169.254.169.254 is the cloud "
            "metadata address and is never a webhook target.",
        ),
        (
            {"url": "https://localhost/x", "events": ["draft_count.changed"]},
            "invalid_url",
            "url: localhost resolves to a refused address: 127.0.0.1 is a loopback address.",
        ),
        (
            {"url": HOOK, "events": ["draft.count"]},
            "invalid_events",
            "events: draft.count is not an event type; choose from draft_count.changed, tenant.status_changed, "
            "tenant.eligibility_changed.",
        ),
        ({"url": HOOK, "events": []}, "invalid_events", "events: Subscribe to at least one event type."),
        ({"url": HOOK}, "invalid_request", "events: This field is required."),
        (
            {"url": HOOK, "events": ["draft_count.changed"], "secret": "mine"},
            "invalid_request",
            "secret: unknown field.",
        ),
        (
            {"url": 7, "events": "draft_count.changed"},
            "invalid_request",
            'events: Expected a list of items but got type "str".',
        ),
        ([HOOK], "invalid_request", "The body must be a JSON object."),
    ],
)
def test_create_refuses_with_a_400_naming_the_problem_and_writes_nothing(
    client: Client, key: str, body: Any, code: str, message: str
) -> None:
    response = post(client, key, WEBHOOKS, body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["message"]) == (code, message)
    assert not Endpoint.objects.exists()


def test_an_account_has_a_bounded_number_of_webhooks(client: Client, tenant: Tenant, key: str, settings: Any) -> None:
    settings.WEBHOOK_MAX_ENDPOINTS = 2
    for _ in range(2):
        assert post(client, key, WEBHOOKS, {"url": HOOK, "events": ["draft_count.changed"]}).status_code == 201

    response = post(client, key, WEBHOOKS, {"url": HOOK, "events": ["draft_count.changed"]})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_many_webhooks"
    assert Endpoint.objects.filter(tenant=tenant).count() == 2


def test_another_accounts_webhook_is_not_found_and_unchanged(client: Client, tenant: Tenant, other_key: str) -> None:
    endpoint, secret = make_endpoint(tenant, HOOK)
    path = f"{WEBHOOKS}/{endpoint.pk}"

    answers = [
        client.get(path, **api_headers(other_key)),
        patch(client, other_key, path, {"enabled": False}),
        post(client, other_key, f"{path}/rotate-secret"),
        client.get(f"{path}/deliveries", **api_headers(other_key)),
        client.delete(path, **api_headers(other_key)),
    ]

    assert [a.status_code for a in answers] == [404] * 5
    assert {a.json()["error"]["code"] for a in answers} == {"not_found"}
    assert client.get(WEBHOOKS, **api_headers(other_key)).json() == []
    endpoint.refresh_from_db()
    assert (endpoint.enabled, endpoint.secret) == (True, secret)


def test_an_unknown_id_is_not_found(client: Client, key: str) -> None:
    response = client.get(f"{WEBHOOKS}/{uuid.uuid4()}", **api_headers(key))

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_patch_changes_what_it_names_and_re_enabling_clears_the_reason(
    client: Client, tenant: Tenant, key: str
) -> None:
    endpoint, _secret = make_endpoint(tenant, HOOK)
    Endpoint.objects.filter(pk=endpoint.pk).update(
        enabled=False, disabled_reason="Every delivery failed for 24 hours", disabled_at=timezone.now()
    )
    path = f"{WEBHOOKS}/{endpoint.pk}"
    shown = client.get(path, **api_headers(key)).json()
    assert (shown["enabled"], shown["disabled_reason"]) == (False, "Every delivery failed for 24 hours")

    response = patch(client, key, path, {"enabled": True, "events": ["tenant.status_changed"]})

    assert response.status_code == 200
    body = response.json()
    assert (body["enabled"], body["disabled_reason"], body["disabled_at"]) == (True, None, None)
    assert body["events"] == ["tenant.status_changed"]
    assert body["url"] == HOOK


def test_patch_refuses_a_bad_url_and_changes_nothing(client: Client, tenant: Tenant, key: str) -> None:
    endpoint, _secret = make_endpoint(tenant, HOOK)

    response = patch(client, key, f"{WEBHOOKS}/{endpoint.pk}", {"url": "https://127.0.0.1/x", "enabled": False})

    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "invalid_url",
        "message": "url: 127.0.0.1 is a loopback address.",
        "request_id": response.json()["error"]["request_id"],
    }
    endpoint.refresh_from_db()
    assert (endpoint.url, endpoint.enabled) == (HOOK, True)


def test_delete_removes_the_webhook(client: Client, tenant: Tenant, key: str) -> None:
    endpoint, _secret = make_endpoint(tenant, HOOK)

    response = client.delete(f"{WEBHOOKS}/{endpoint.pk}", **api_headers(key))

    assert response.status_code == 204
    assert not Endpoint.objects.exists()
    assert client.get(f"{WEBHOOKS}/{endpoint.pk}", **api_headers(key)).status_code == 404


def test_rotating_the_secret_signs_the_next_delivery_with_the_new_one(
    client: Client, tenant: Tenant, key: str, webhook_settings: Any, receiver: Receiver
) -> None:
    endpoint, old = make_endpoint(tenant, receiver.url())

    response = post(client, key, f"{WEBHOOKS}/{endpoint.pk}/rotate-secret")

    assert response.status_code == 200
    new = response.json()["secret"]
    assert new.startswith("whsec_") and new != old
    make_event(tenant)
    run_until_settled()
    [request] = receiver.wait_for(1)
    assert verified(new, request)["type"] == "draft_count.changed"
    with pytest.raises(Exception, match="No matching signature"):
        verified(old, request)


def test_deliveries_list_attempts_status_codes_durations_and_the_next_retry(
    client: Client, tenant: Tenant, key: str, webhook_settings: Any, receiver: Receiver
) -> None:
    endpoint, _secret = make_endpoint(tenant, receiver.url())
    first, second = make_event(tenant), make_event(tenant)
    receiver.respond(500)
    run_until_settled()
    path = f"{WEBHOOKS}/{endpoint.pk}/deliveries"

    page = client.get(path, {"page_size": 1}, **api_headers(key))

    assert page.status_code == 200
    body = page.json()
    [newest] = body["results"]
    assert newest["event_id"] in {str(first.pk), str(second.pk)}
    assert newest["event_type"] == "draft_count.changed"
    assert newest["state"] == "succeeded"
    assert newest["next_attempt_at"] is None
    older = client.get(body["next"], **api_headers(key)).json()
    assert older["next"] is None
    both = [newest, *older["results"]]
    assert {d["event_id"] for d in both} == {str(first.pk), str(second.pk)}
    statuses = sorted([a["status_code"] for a in d["attempts"]] for d in both)
    assert statuses == [[200], [500, 200]]
    for delivery in both:
        for attempt in delivery["attempts"]:
            assert attempt["duration_ms"] >= 0 and attempt["at"]


@pytest.mark.parametrize(
    ("query", "parameter"),
    [({"cursor": "cD1hYmM="}, "cursor"), ({"page_size": "0"}, "page_size"), ({"sort": "x"}, "sort")],
)
def test_deliveries_refuse_bad_query_parameters(
    client: Client, tenant: Tenant, key: str, query: dict[str, str], parameter: str
) -> None:
    endpoint, _secret = make_endpoint(tenant, HOOK)

    response = client.get(f"{WEBHOOKS}/{endpoint.pk}/deliveries", query, **api_headers(key))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_parameter"
    assert response.json()["error"]["parameter"] == parameter


def test_webhooks_need_a_key(client: Client) -> None:
    response = client.get(WEBHOOKS)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
