"""The console's service keys: issuing shows the key once (only its hash is stored, the page is not cached),
revoking refuses the key on the next request, both are audited; the hand-out audit is read-only."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.authority.helpers import component_url, platform_with_token
from tests.factories import make_service_key, service_headers
from wxplatform.authority.models import ServiceKey, TokenHandout
from wxplatform.models import AuditEntry

pytestmark = pytest.mark.django_db

ADD_URL = "/admin/authority/servicekey/add/"
LIST_URL = "/admin/authority/servicekey/"


def test_issuing_a_key_shows_it_once_and_stores_only_its_hash(admin_client: Client) -> None:
    platform = platform_with_token("component-token-admin")

    response = admin_client.post(ADD_URL, {"name": "publishing", "component": platform.pk, "expiry_date_0": ""})

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    key = ServiceKey.objects.get()
    assert (key.name, key.component_id) == ("publishing", platform.pk)
    raw = response.context["raw_key"]
    assert raw in response.content.decode()
    assert key.is_valid(raw)
    assert key.hashed_key not in response.content.decode()
    assert AuditEntry.objects.filter(action="service_key.create", detail__prefix=key.prefix).exists()
    # Shown once: the key's page names its prefix, never the key.
    page = admin_client.get(f"{LIST_URL}{key.pk}/change/")
    assert page.status_code == 200
    assert raw not in page.content.decode()
    assert raw.partition(".")[2] not in admin_client.get(LIST_URL).content.decode()
    assert Client().get(component_url(), **service_headers(raw)).json()["access_token"] == "component-token-admin"


def test_revoking_keys_in_the_console_refuses_them_at_once(admin_client: Client) -> None:
    platform_with_token()
    key, raw = make_service_key(name="old service")
    _kept, kept_raw = make_service_key(name="kept")

    response = admin_client.post(LIST_URL, {"action": "revoke_selected", "_selected_action": [key.pk]}, follow=True)

    assert response.status_code == 200
    assert list(ServiceKey.objects.filter(revoked=True).values_list("pk", flat=True)) == [key.pk]
    refused = Client().get(component_url(), **service_headers(raw))
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "service_key_revoked"
    assert Client().get(component_url(), **service_headers(kept_raw)).status_code == 200
    assert AuditEntry.objects.get(action="service_key.revoke").detail == {"prefixes": [key.prefix]}


def test_keys_are_never_deleted_and_hand_outs_never_edited(admin_client: Client) -> None:
    platform_with_token()
    key, raw = make_service_key()
    Client().get(component_url(), **service_headers(raw))
    handout = TokenHandout.objects.get()

    assert admin_client.post(f"{LIST_URL}{key.pk}/delete/", {"post": "yes"}).status_code == 403
    assert admin_client.get("/admin/authority/tokenhandout/").status_code == 200
    assert admin_client.get("/admin/authority/tokenhandout/add/").status_code == 403
    assert admin_client.post(f"/admin/authority/tokenhandout/{handout.pk}/delete/", {"post": "yes"}).status_code == 403
    assert ServiceKey.objects.filter(pk=key.pk).exists()
    assert TokenHandout.objects.filter(pk=handout.pk).exists()
