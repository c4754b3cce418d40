"""Webhooks in the console: staff see every tenant's endpoints and deliveries (never a secret), send a test
event, disable and enable, each audited; the read-only support group sees and changes nothing."""

from __future__ import annotations

import importlib
import re
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import Group
from django.test import Client

from tenants.models import TEST_EVENT_TYPE
from tests.factories import make_tenant
from tests.fixtures.receiver import Receiver
from tests.webhooks.helpers import make_endpoint, make_event, run_until_settled, verified
from webhooks.models import Delivery, DeliveryState, Endpoint
from wxplatform.models import AuditEntry

pytestmark = pytest.mark.django_db

ENDPOINTS = "/admin/webhooks/endpoint/"
DELIVERIES = "/admin/webhooks/delivery/"


def test_staff_see_every_tenants_endpoints_and_deliveries_without_secrets(
    admin_client: Client, webhook_settings: Any, receiver: Receiver
) -> None:
    tenant, other = make_tenant(), make_tenant()
    endpoint, secret = make_endpoint(tenant, receiver.url("/a"))
    _other, other_secret = make_endpoint(other, receiver.url("/b"))
    make_event(tenant)
    receiver.respond(500)
    run_until_settled()

    listing = admin_client.get(ENDPOINTS).content.decode()
    page = admin_client.get(f"{ENDPOINTS}{endpoint.pk}/change/").content.decode()
    per_tenant = admin_client.get(ENDPOINTS, {"tenant": tenant.pk}).content.decode()
    deliveries = admin_client.get(DELIVERIES, {"tenant": tenant.pk}).content.decode()
    delivery = Delivery.objects.get(endpoint=endpoint)
    delivery_page = admin_client.get(f"{DELIVERIES}{delivery.pk}/change/").content.decode()

    assert receiver.url("/a") in listing and receiver.url("/b") in listing
    assert receiver.url("/a") in per_tenant and receiver.url("/b") not in per_tenant
    assert receiver.url("/a") in deliveries and receiver.url("/b") not in deliveries
    # Both tries, inline: the 500 and the 200.
    codes = re.findall(r'<td class="field-status_code">\s*<p>(\d+)</p>', delivery_page)
    assert codes == ["500", "200"]
    for html in (listing, page, per_tenant, deliveries, delivery_page):
        assert secret not in html and other_secret not in html
        assert secret.removeprefix("whsec_") not in html


def test_send_test_event_delivers_a_signed_test_event_and_is_audited(
    admin_client: Client, webhook_settings: Any, receiver: Receiver
) -> None:
    tenant = make_tenant()
    endpoint, secret = make_endpoint(tenant, receiver.url())

    response = admin_client.post(ENDPOINTS, {"action": "send_test_event", "_selected_action": [str(endpoint.pk)]})

    assert response.status_code == 302
    run_until_settled()
    [request] = receiver.wait_for(1)
    payload = verified(secret, request)
    assert payload["type"] == TEST_EVENT_TYPE
    assert payload["data"] == {"appid": tenant.authorizer_appid, "endpoint_id": str(endpoint.pk)}
    entry = AuditEntry.objects.get(action="webhook.test")
    assert entry.target.startswith(f"webhooks.endpoint:{endpoint.pk}")
    assert Delivery.objects.get(endpoint=endpoint).state == DeliveryState.SUCCEEDED


def test_staff_disable_and_enable_endpoints_audited(admin_client: Client) -> None:
    tenant = make_tenant()
    endpoint, _secret = make_endpoint(tenant, "https://hooks.example.net/wx")

    admin_client.post(ENDPOINTS, {"action": "disable_selected", "_selected_action": [str(endpoint.pk)]})
    endpoint.refresh_from_db()
    assert not endpoint.enabled
    admin_client.post(ENDPOINTS, {"action": "enable_selected", "_selected_action": [str(endpoint.pk)]})
    endpoint.refresh_from_db()

    assert endpoint.enabled
    assert list(AuditEntry.objects.order_by("created_at").values_list("action", flat=True)) == [
        "webhook.disable",
        "webhook.enable",
    ]


@pytest.fixture
def support_client_with_webhooks(support_client: Client, support_group: Group) -> Client:
    migration = importlib.import_module("webhooks.migrations.0003_support_group_views")
    migration.support_views_add(apps, None)
    return support_client


def test_support_sees_webhooks_but_cannot_act(support_client_with_webhooks: Client, receiver: Receiver) -> None:
    client = support_client_with_webhooks
    tenant = make_tenant()
    endpoint, _secret = make_endpoint(tenant, "https://hooks.example.net/wx")

    listing = client.get(ENDPOINTS)
    refused = client.post(ENDPOINTS, {"action": "send_test_event", "_selected_action": [str(endpoint.pk)]})

    assert listing.status_code == 200
    assert 'name="action"' not in listing.content.decode()
    assert refused.status_code == 403
    assert not Delivery.objects.exists()
    assert not AuditEntry.objects.exists()
    assert Endpoint.objects.get(pk=endpoint.pk).enabled


def test_the_tenant_page_lists_its_webhooks_and_links_to_their_deliveries(admin_client: Client) -> None:
    tenant, other = make_tenant(), make_tenant()
    _endpoint, secret = make_endpoint(tenant, "https://hooks.example.net/mine")
    make_endpoint(other, "https://hooks.example.net/theirs")

    html = admin_client.get(f"/admin/tenants/tenant/{tenant.pk}/change/").content.decode()

    panel = html[html.index('id="webhooks"') :]
    assert "https://hooks.example.net/mine" in panel
    assert "https://hooks.example.net/theirs" not in panel
    assert f"{DELIVERIES}?tenant={tenant.pk}" in panel
    assert secret not in html
