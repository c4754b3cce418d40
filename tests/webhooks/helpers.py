"""Helpers for webhook tests: endpoints pointing at the loopback receiver, events, and running deliveries."""

from __future__ import annotations

import time
from typing import Any

from standardwebhooks.webhooks import Webhook

from tenants.models import EventType, OutboxEvent, Tenant
from tests.fixtures.receiver import Received
from webhooks.models import Delivery, DeliveryState, Endpoint
from webhooks.services import endpoint_create, webhooks_run

ALL_EVENTS = list(EventType.values)


def make_endpoint(tenant: Tenant, url: str, events: list[str] | None = None) -> tuple[Endpoint, str]:
    return endpoint_create(tenant=tenant, url=url, events=events or ALL_EVENTS)


def make_event(tenant: Tenant, *, type: str = EventType.DRAFT_COUNT_CHANGED, **data: Any) -> OutboxEvent:
    payload = {"appid": tenant.authorizer_appid, "total_count": 3, "previous_total_count": 2, **data}
    return OutboxEvent.objects.create(tenant=tenant, type=type, payload=payload)


def run_until_settled(timeout: float = 20.0) -> None:
    """Delivers (in this process, as a worker would) until no delivery is pending."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        webhooks_run(budget_seconds=5)
        if not Delivery.objects.filter(state=DeliveryState.PENDING).exists():
            return
        time.sleep(0.02)
    raise AssertionError("deliveries still pending")


def verified(secret: str, request: Received) -> Any:
    """The payload, verified the way a merchant would, with the standardwebhooks package."""
    return Webhook(secret).verify(request.body, request.headers)
