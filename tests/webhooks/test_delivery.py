"""Delivery to a real receiver on loopback, in this process: signing, retries with one webhook-id, timeouts,
giving up, disabling and re-enabling, and one tenant's slow receiver not holding up another's."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tenants.models import EventType, TenantStatus
from tenants.services import tenant_revoke
from tests.factories import make_tenant
from tests.fixtures.receiver import Receiver
from tests.webhooks.helpers import make_endpoint, make_event, run_until_settled, verified
from webhooks.models import Delivery, DeliveryAttempt, DeliveryState, Endpoint
from webhooks.services import endpoint_update, events_dispatch, webhooks_run
from wxplatform.component.services import default_component
from wxplatform.core.times import machine_time

pytestmark = pytest.mark.django_db


def test_an_event_is_delivered_signed_and_verifies_with_standardwebhooks(
    webhook_settings: Any, receiver: Receiver
) -> None:
    tenant = make_tenant()
    endpoint, secret = make_endpoint(tenant, receiver.url())

    tenant_revoke(component_id=default_component().pk, authorizer_appid=tenant.authorizer_appid)
    run_until_settled()

    [request] = receiver.wait_for(1)
    payload = verified(secret, request)
    [event] = tenant.outbox_events.all()
    assert payload == {
        "id": str(event.pk),
        "type": "tenant.status_changed",
        "created_at": machine_time(event.created_at),
        "data": {"appid": tenant.authorizer_appid, "status": "revoked", "previous_status": "active"},
    }
    assert request.headers["webhook-id"] == str(event.pk)
    assert request.headers["webhook-signature"].startswith("v1,")
    assert request.headers["content-type"] == "application/json"
    # Another secret does not verify it.
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "QUJD" * 8).verify(request.body, request.headers)
    delivery = Delivery.objects.get(endpoint=endpoint)
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == (DeliveryState.SUCCEEDED, 1, 200)


def test_failed_tries_are_retried_with_the_same_webhook_id(webhook_settings: Any, receiver: Receiver) -> None:
    tenant = make_tenant()
    endpoint, secret = make_endpoint(tenant, receiver.url())
    event = make_event(tenant)
    receiver.respond(500, 503)

    run_until_settled()

    requests = receiver.wait_for(3)
    assert len(requests) == 3
    assert {r.headers["webhook-id"] for r in requests} == {str(event.pk)}
    for r in requests:
        assert verified(secret, r)["id"] == str(event.pk)
    attempts = list(DeliveryAttempt.objects.filter(delivery__endpoint=endpoint).values_list("status_code", flat=True))
    assert attempts == [500, 503, 200]
    delivery = Delivery.objects.get(endpoint=endpoint)
    assert (delivery.state, delivery.attempts, delivery.next_attempt_at) == (DeliveryState.SUCCEEDED, 3, None)


def test_a_failed_try_waits_for_its_backoff_before_the_next(webhook_settings: Any, receiver: Receiver) -> None:
    webhook_settings.WEBHOOK_RETRY_BASE_SECONDS = 30
    tenant = make_tenant()
    endpoint, _secret = make_endpoint(tenant, receiver.url())
    make_event(tenant)
    receiver.respond(500)
    before = timezone.now()

    webhooks_run(budget_seconds=1)
    webhooks_run(budget_seconds=1)

    assert len(receiver.requests) == 1
    delivery = Delivery.objects.get(endpoint=endpoint)
    assert delivery.state == DeliveryState.PENDING
    assert delivery.last_error == "HTTP 500"
    # First retry: between half and all of the base, jittered.
    assert before + timedelta(seconds=15) <= delivery.next_attempt_at <= timezone.now() + timedelta(seconds=30)


def test_a_receiver_slower_than_the_timeout_is_a_failed_try(webhook_settings: Any, receiver: Receiver) -> None:
    webhook_settings.WEBHOOK_TIMEOUT_SECONDS = 0.3
    webhook_settings.WEBHOOK_RETRY_BASE_SECONDS = 30
    receiver.delay = 1.0
    tenant = make_tenant()
    endpoint, _secret = make_endpoint(tenant, receiver.url())
    make_event(tenant)

    webhooks_run(budget_seconds=0.1)

    [attempt] = DeliveryAttempt.objects.filter(delivery__endpoint=endpoint)
    assert attempt.status_code is None
    assert attempt.error == "No answer within 0.3 s."
    assert Delivery.objects.get(endpoint=endpoint).state == DeliveryState.PENDING


def test_a_delivery_gives_up_once_the_event_is_a_day_old(webhook_settings: Any, receiver: Receiver) -> None:
    tenant = make_tenant()
    endpoint, _secret = make_endpoint(tenant, receiver.url())
    event = make_event(tenant)
    event.created_at = timezone.now() - timedelta(hours=24)
    event.save(update_fields=["created_at"])
    receiver.respond(502)

    run_until_settled()

    delivery = Delivery.objects.get(endpoint=endpoint)
    assert (delivery.state, delivery.attempts, delivery.next_attempt_at) == (DeliveryState.FAILED, 1, None)
    assert len(receiver.requests) == 1


def test_an_endpoint_failing_every_delivery_for_a_day_is_disabled_and_resumes_when_re_enabled(
    webhook_settings: Any, receiver: Receiver
) -> None:
    webhook_settings.WEBHOOK_RETRY_BASE_SECONDS = 0.01
    tenant = make_tenant()
    endpoint, secret = make_endpoint(tenant, receiver.url())
    Endpoint.objects.filter(pk=endpoint.pk).update(failing_since=timezone.now() - timedelta(hours=24, minutes=1))
    receiver.default_status = 500
    event = make_event(tenant)

    webhooks_run(budget_seconds=0.1)

    endpoint.refresh_from_db()
    assert not endpoint.enabled
    assert endpoint.disabled_at is not None
    assert endpoint.disabled_reason == "Every delivery failed for 24 hours; last error: HTTP 500"
    # Disabled: nothing more is sent, however often the worker runs.
    webhooks_run(budget_seconds=0.1)
    webhooks_run(budget_seconds=0.1)
    assert len(receiver.requests) == 1

    receiver.default_status = 200
    endpoint_update(endpoint=endpoint, enabled=True)
    run_until_settled()

    endpoint.refresh_from_db()
    assert (endpoint.enabled, endpoint.disabled_reason, endpoint.failing_since) == (True, "", None)
    last = receiver.requests[-1]
    assert verified(secret, last)["id"] == str(event.pk)
    assert Delivery.objects.get(endpoint=endpoint).state == DeliveryState.SUCCEEDED


def test_events_raised_while_an_endpoint_is_disabled_are_dropped_and_not_replayed_on_re_enabling(
    webhook_settings: Any, receiver: Receiver
) -> None:
    # Issue 28, finding 10c (decision): dropped, as the README and the API docs say.
    tenant = make_tenant()
    endpoint, secret = make_endpoint(tenant, receiver.url())
    before = make_event(tenant)
    events_dispatch()  # a delivery pending when the endpoint is disabled: it resumes
    endpoint_update(endpoint=endpoint, enabled=False)
    during = make_event(tenant, total_count=4)
    webhooks_run(budget_seconds=0.1)
    webhooks_run(budget_seconds=0.1)

    endpoint_update(endpoint=endpoint, enabled=True)
    after = make_event(tenant, total_count=5)
    run_until_settled()

    assert sorted(verified(secret, r)["id"] for r in receiver.requests) == sorted([str(before.pk), str(after.pk)])
    assert not Delivery.objects.filter(event=during).exists()
    during.refresh_from_db()
    assert during.dispatched_at is not None


def test_a_success_resets_the_failing_clock(webhook_settings: Any, receiver: Receiver) -> None:
    tenant = make_tenant()
    endpoint, _secret = make_endpoint(tenant, receiver.url())
    receiver.respond(500)
    make_event(tenant)

    run_until_settled()

    endpoint.refresh_from_db()
    assert endpoint.enabled
    assert endpoint.failing_since is None


def test_each_tenant_hears_only_its_own_events(webhook_settings: Any, receiver: Receiver) -> None:
    tenant, other = make_tenant(), make_tenant()
    _e1, secret = make_endpoint(tenant, receiver.url("/mine"))
    _e2, other_secret = make_endpoint(other, receiver.url("/theirs"))
    mine = make_event(tenant)
    theirs = make_event(other)

    run_until_settled()

    got = {r.path: r for r in receiver.wait_for(2)}
    assert set(got) == {"/mine", "/theirs"}
    assert verified(secret, got["/mine"])["id"] == str(mine.pk)
    assert verified(other_secret, got["/theirs"])["id"] == str(theirs.pk)
    assert len(receiver.requests) == 2


def test_only_subscribed_event_types_are_sent(webhook_settings: Any, receiver: Receiver) -> None:
    tenant = make_tenant()
    endpoint, _secret = make_endpoint(tenant, receiver.url(), events=[EventType.DRAFT_COUNT_CHANGED])
    make_event(tenant, type=EventType.TENANT_STATUS_CHANGED, status=TenantStatus.REVOKED)
    wanted = make_event(tenant)

    run_until_settled()

    [request] = receiver.wait_for(1)
    assert request.headers["webhook-id"] == str(wanted.pk)
    assert list(Delivery.objects.filter(endpoint=endpoint).values_list("event_id", flat=True)) == [wanted.pk]


def test_a_slow_receiver_does_not_hold_up_another_tenants_delivery(webhook_settings: Any, receiver: Receiver) -> None:
    webhook_settings.WEBHOOK_TIMEOUT_SECONDS = 1.5
    webhook_settings.WEBHOOK_CONCURRENCY = 4
    webhook_settings.WEBHOOK_CONCURRENCY_PER_ENDPOINT = 2
    receiver.delays["/slow"] = 1.0
    slow, fast = make_tenant(), make_tenant()
    make_endpoint(slow, receiver.url("/slow"))
    make_endpoint(fast, receiver.url("/fast"))
    for _ in range(6):
        make_event(slow)
    make_event(fast)

    webhooks_run(budget_seconds=0.1)

    # One batch: the slow endpoint got its two slots, the other tenant's event went out beside them (not
    # after them), and the slow endpoint's other events wait for the next batch.
    requests = receiver.wait_for(3)
    paths = sorted(r.path for r in requests)
    assert paths == ["/fast", "/slow", "/slow"]
    fast_at = next(r.at for r in requests if r.path == "/fast")
    first_slow_at = min(r.at for r in requests if r.path == "/slow")
    assert fast_at < first_slow_at + receiver.delays["/slow"]


def test_the_body_is_the_json_the_signature_covers(webhook_settings: Any, receiver: Receiver) -> None:
    tenant = make_tenant()
    _endpoint, secret = make_endpoint(tenant, receiver.url())
    make_event(tenant, total_count=7)

    run_until_settled()

    [request] = receiver.wait_for(1)
    assert json.loads(request.body)["data"]["total_count"] == 7
    tampered = request.body.replace(b'"total_count":7', b'"total_count":8')
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, request.headers)
