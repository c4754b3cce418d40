"""The delivery task: one at a time across the deployment, so deliveries never take more than one worker
process from the sync, however many are queued."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.utils import timezone

from tenants.models import OutboxEvent
from tests.factories import make_tenant
from tests.fixtures.receiver import Receiver
from tests.webhooks.helpers import make_endpoint, make_event
from webhooks.models import Delivery, DeliveryState
from webhooks.services import events_dispatch
from webhooks.tasks import _SLOT_KEY, deliver, prune

pytestmark = pytest.mark.django_db


def test_a_delivery_task_finding_another_running_leaves_the_work_to_it(
    webhook_settings: Any, receiver: Receiver
) -> None:
    tenant = make_tenant()
    make_endpoint(tenant, receiver.url())
    make_event(tenant)
    cache.set(_SLOT_KEY, "1", timeout=30)
    try:
        assert deliver() == 0
        assert receiver.requests == []
    finally:
        cache.delete(_SLOT_KEY)

    assert deliver() == 1

    receiver.wait_for(1)
    assert Delivery.objects.get().state == DeliveryState.SUCCEEDED
    assert cache.get(_SLOT_KEY) is None


def test_prune_deletes_old_finished_history_and_keeps_what_is_pending_or_recent(
    webhook_settings: Any, receiver: Receiver
) -> None:
    tenant = make_tenant()
    endpoint, _secret = make_endpoint(tenant, receiver.url())
    old_done, old_pending, recent = make_event(tenant), make_event(tenant), make_event(tenant)
    receiver.respond(200, 200, 200)
    events_dispatch()
    long_ago = timezone.now() - timedelta(days=31)
    Delivery.objects.filter(event=old_done).update(
        state=DeliveryState.SUCCEEDED, finished_at=long_ago, next_attempt_at=None
    )
    Delivery.objects.filter(event=recent).update(
        state=DeliveryState.SUCCEEDED, finished_at=timezone.now(), next_attempt_at=None
    )
    OutboxEvent.objects.filter(pk__in=[old_done.pk, old_pending.pk]).update(created_at=long_ago)
    forgotten = make_event(make_tenant())  # nobody subscribed: dispatched with no delivery
    events_dispatch()
    OutboxEvent.objects.filter(pk=forgotten.pk).update(created_at=long_ago)

    assert prune() == {"deliveries": 1, "events": 2}

    assert set(OutboxEvent.objects.values_list("pk", flat=True)) == {old_pending.pk, recent.pk}
    assert set(Delivery.objects.values_list("event_id", flat=True)) == {old_pending.pk, recent.pk}
    assert endpoint.deliveries.filter(state=DeliveryState.PENDING).count() == 1
