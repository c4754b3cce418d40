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


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        # NAT64, well-known prefix (RFC 6052): the metadata address and loopback through a translator.
        (
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::a9fe:a9fe reaches the IPv4 address 169.254.169.254: 169.254.169.254 is "
            "the cloud metadata address and is never a webhook target.",
        ),
        ("64:ff9b::7f00:1", "64:ff9b::7f00:1 reaches the IPv4 address 127.0.0.1: 127.0.0.1 is a loopback address."),
        (
            "64:ff9b::a00:1",
            "64:ff9b::a00:1 reaches the IPv4 address 10.0.0.1: 10.0.0.1 is a private or reserved address.",
        ),
        # 6to4 (RFC 3056) and Teredo (RFC 4380; the client's address is stored inverted).
        ("2002:7f00:1::", "2002:7f00:1:: reaches the IPv4 address 127.0.0.1: 127.0.0.1 is a loopback address."),
        (
            "2002:a9fe:a9fe::1",
            "2002:a9fe:a9fe::1 reaches the IPv4 address 169.254.169.254: 169.254.169.254 is the "
            "cloud metadata address and is never a webhook target.",
        ),
        (
            "2001:0:808:808::80ff:fffe",
            "2001:0:808:808::80ff:fffe reaches the IPv4 address 127.0.0.1: 127.0.0.1 is a loopback address.",
        ),
        (
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2 reaches the IPv4 address "
            "192.0.2.45: 192.0.2.45 is a private or reserved address.",
        ),
        # IPv4-mapped, IPv4-translated (SIIT) and the deprecated IPv4-compatible form.
        ("::ffff:127.0.0.1", "127.0.0.1 is a loopback address."),
        ("::ffff:0:7f00:1", "::ffff:0:7f00:1 reaches the IPv4 address 127.0.0.1: 127.0.0.1 is a loopback address."),
        ("::127.0.0.1", "::7f00:1 reaches IPv4 through a prefix that is never a webhook target."),
        ("::8.8.8.8", "::808:808 reaches IPv4 through a prefix that is never a webhook target."),
        # Local-use NAT64 (RFC 8215): where the IPv4 address sits depends on the operator's prefix length.
        ("64:ff9b:1::a9fe:a9fe", "64:ff9b:1::a9fe:a9fe reaches IPv4 through a prefix that is never a webhook target."),
        (
            "64:ff9b:1:a9fe:a9:fe00::",
            "64:ff9b:1:a9fe:a9:fe00:: reaches IPv4 through a prefix that is never a webhook target.",
        ),
        # A public IPv4 address through NAT64 or 6to4 is a public target: DNS64 answers such addresses for every
        # IPv4-only name on an IPv6-only network.
        ("64:ff9b::808:808", None),
        ("2002:808:808::1", None),
        ("2606:4700::1111", None),
    ],
)
def test_ipv6_addresses_that_reach_ipv4_are_judged_by_the_ipv4_address(host: str, problem: str | None) -> None:
    assert url_problem(f"https://[{host}]/hook", allow_private=False) == problem


@pytest.mark.parametrize("host", ["64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::", "64:ff9b:1::a9fe:a9fe", "::a9fe:a9fe"])
def test_the_metadata_address_through_a_translation_prefix_is_refused_even_with_private_targets_allowed(
    host: str,
) -> None:
    assert url_problem(f"https://[{host}]/", allow_private=True) is not None
    assert url_problem("http://[::1]:8000/", allow_private=True) is None


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
