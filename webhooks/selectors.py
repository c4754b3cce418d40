"""Reads for webhooks, always scoped to a tenant."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable

from django.db.models import Prefetch, QuerySet

from webhooks.models import Delivery, DeliveryAttempt, Endpoint


def subscribed_tenants(*, tenant_ids: Iterable[int]) -> dict[int, set[str]]:
    """The event types each of these tenants' enabled endpoints subscribe to (tenants with none are absent):
    one query over the few endpoints of these tenants, so the sync can skip events nobody wants."""
    subscribed: dict[int, set[str]] = defaultdict(set)
    for tenant_id, events in Endpoint.objects.filter(tenant_id__in=list(tenant_ids), enabled=True).values_list(
        "tenant_id", "events"
    ):
        subscribed[tenant_id].update(events)
    return dict(subscribed)


def endpoint_list(*, tenant_id: int) -> QuerySet[Endpoint]:
    return Endpoint.objects.filter(tenant_id=tenant_id).order_by("created_at")


def endpoint_get(*, tenant_id: int, endpoint_id: uuid.UUID) -> Endpoint | None:
    return Endpoint.objects.filter(tenant_id=tenant_id, pk=endpoint_id).first()


def delivery_list(*, endpoint: Endpoint) -> QuerySet[Delivery]:
    """The endpoint's deliveries with their attempts and event (newest first, paginated by the caller)."""
    return (
        Delivery.objects.filter(endpoint=endpoint, tenant_id=endpoint.tenant_id)
        .select_related("event")
        .prefetch_related(Prefetch("attempt_rows", queryset=DeliveryAttempt.objects.order_by("at", "id")))
    )
