"""The delivery task: one at a time across the deployment, so deliveries never take more than one worker
process from the sync, however many are queued."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache

from tests.factories import make_tenant
from tests.fixtures.receiver import Receiver
from tests.webhooks.helpers import make_endpoint, make_event
from webhooks.models import Delivery, DeliveryState
from webhooks.tasks import _SLOT_KEY, deliver

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
