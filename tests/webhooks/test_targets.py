"""SSRF: where a webhook may point, when it is saved and again at every delivery (the resolved address)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import make_tenant
from tests.fixtures.receiver import Receiver
from tests.webhooks.helpers import make_endpoint, make_event
from webhooks.models import Delivery, DeliveryAttempt, DeliveryState, Endpoint
from webhooks.services import webhooks_run
from webhooks.targets import resolved_problem, url_problem


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://hooks.example.net/x", "The URL must use https."),
        ("ftp://hooks.example.net/x", "The URL is not valid."),
        ("https://", "The URL is not valid."),
        ("https://user:pw@hooks.example.net/x", "The URL must not contain a user name or password."),
        ("https://127.0.0.1/x", "127.0.0.1 is a loopback address."),
        ("https://[::1]/x", "::1 is a loopback address."),
        ("https://10.1.2.3/x", "10.1.2.3 is a private or reserved address."),
        ("https://192.168.0.1:8443/x", "192.168.0.1 is a private or reserved address."),
        ("https://169.254.10.10/x", "169.254.10.10 is a link-local address."),
        (
            "https://169.254.169.254/latest",
            "169.254.169.254 is the cloud metadata address and is never a webhook target.",
        ),
        (
            "https://[::ffff:169.254.169.254]/",
            "169.254.169.254 is the cloud metadata address and is never a webhook target.",
        ),
        ("https://0.0.0.0/x", "0.0.0.0 is a private or reserved address."),
        ("https://8.8.8.8/hook", None),
        ("https://hooks.example.net/hook", None),
    ],
)
def test_url_problems_are_named(url: str, problem: str | None) -> None:
    assert url_problem(url, allow_private=False) == problem


def test_allowing_private_targets_allows_http_and_loopback_but_never_the_metadata_address() -> None:
    assert url_problem("http://127.0.0.1:8000/x", allow_private=True) is None
    assert url_problem("https://10.0.0.5/x", allow_private=True) is None
    assert url_problem("http://169.254.169.254/", allow_private=True) == (
        "169.254.169.254 is the cloud metadata address and is never a webhook target."
    )


def test_a_name_is_judged_by_the_addresses_it_resolves_to() -> None:
    assert resolved_problem("https://localhost/x", allow_private=False) in {
        "localhost resolves to a refused address: 127.0.0.1 is a loopback address.",
        "localhost resolves to a refused address: ::1 is a loopback address.",
    }
    assert resolved_problem("https://localhost/x", allow_private=True) is None


@pytest.mark.django_db
def test_a_loopback_target_is_refused_at_delivery_once_private_targets_are_off(
    webhook_settings: Any, receiver: Receiver
) -> None:
    # Saved while allowed (as a name that then resolved elsewhere would be): the delivery checks again.
    tenant = make_tenant()
    endpoint, _secret = make_endpoint(tenant, receiver.url())
    make_event(tenant)
    webhook_settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    webhook_settings.WEBHOOK_RETRY_BASE_SECONDS = 30

    webhooks_run(budget_seconds=0.1)

    assert receiver.requests == []
    [attempt] = DeliveryAttempt.objects.filter(delivery__endpoint=endpoint)
    assert attempt.error == "The URL must use https."
    assert Delivery.objects.get(endpoint=endpoint).state == DeliveryState.PENDING


@pytest.mark.django_db
def test_a_name_resolving_to_loopback_at_delivery_is_refused_before_connecting(
    webhook_settings: Any, receiver: Receiver
) -> None:
    # DNS rebinding: whatever the name resolved to when the endpoint was saved, the connection is made only
    # to addresses checked at delivery. `localhost` resolves to loopback here.
    tenant = make_tenant()
    endpoint, _secret = make_endpoint(tenant, f"https://localhost:{receiver.port}/hook")
    make_event(tenant)
    webhook_settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    webhook_settings.WEBHOOK_RETRY_BASE_SECONDS = 30

    webhooks_run(budget_seconds=0.1)

    assert receiver.requests == []
    [attempt] = DeliveryAttempt.objects.filter(delivery__endpoint=endpoint)
    assert attempt.status_code is None
    assert attempt.error.startswith("localhost resolves to a refused address: ")
    assert "loopback" in attempt.error
    assert Endpoint.objects.get(pk=endpoint.pk).enabled
