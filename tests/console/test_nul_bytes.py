"""A NUL byte in a URL (issue 28, finding 5): PostgreSQL refuses NUL in text, so a path parameter or a query value
holding one must never reach a query. Every URL the service routes, with NUL in each of its parameters, is
answered 404, in the error shape under /api/, /internal/ and WeChat's push URLs, whoever asks: anonymous, a
merchant key, a service key, a superuser."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from tests.factories import api_headers, make_api_key, make_service_key, make_tenant, service_headers

pytestmark = pytest.mark.django_db

NUL = "%00"
# A named group of a regex route, with one level of nested parentheses (admin's `(?P<app_label>a|b)`).
_GROUP = re.compile(r"\((?:\?P<\w+>)?(?:[^()]|\([^()]*\))*\)")


def _route(pattern: Any) -> str | None:
    """The route with NUL for every parameter, or None when the pattern is a regex this cannot spell."""
    text = str(pattern.pattern)
    if pattern.pattern.__class__.__name__ == "RoutePattern":
        return re.sub(r"<[^>]+>", NUL, text)
    spelled = _GROUP.sub(NUL, text.removeprefix("^").removesuffix("$").removesuffix(r"\Z"))
    return None if re.search(r"[\\^$*+?()\[\]|]", spelled) else spelled


def _urls(patterns: list[Any], prefix: str = "/") -> Iterator[str]:
    for pattern in patterns:
        route = _route(pattern)
        if route is None:
            continue
        if isinstance(pattern, URLResolver):
            yield from _urls(pattern.url_patterns, prefix + route)
        elif isinstance(pattern, URLPattern) and NUL in route:
            yield prefix + route


URLS = sorted(set(_urls(get_resolver().url_patterns)))


def test_the_walk_finds_the_parameterised_urls_of_every_part() -> None:
    # The walk would otherwise pass by finding nothing.
    assert "/internal/v1/components/%00/token" in URLS
    assert "/internal/v1/components/%00/authorizers/%00/token" in URLS
    assert "/api/v1/webhooks/%00" in URLS
    assert "/wechat/authorizers/%00/events" in URLS
    assert "/wechat/components/%00/authorizers/%00/events" in URLS
    assert "/admin/tenants/tenant/%00/change/" in URLS
    assert "/admin/django_celery_beat/periodictask/%00/change/" in URLS
    assert len(URLS) > 60


def _headers(who: str, client: Client) -> dict[str, str]:
    if who == "merchant":
        return api_headers(make_api_key(make_tenant())[1])
    if who == "service":
        return service_headers(make_service_key()[1])
    if who == "superuser":
        client.force_login(User.objects.create_superuser("root", password="root-password-123"))
    return {}


def _in_the_error_shape(url: str, response: Any, code: str) -> None:
    if url.startswith(("/api/", "/internal/", "/wechat/component", "/wechat/authorizers/")):
        assert response["Content-Type"] == "application/json"
        assert response.json()["error"]["code"] == code


@pytest.mark.parametrize("who", ["anonymous", "merchant", "service", "superuser"])
@pytest.mark.parametrize("method", ["get", "post"])
def test_a_nul_byte_in_any_path_parameter_is_a_404_in_the_error_shape(who: str, method: str) -> None:
    client = Client(raise_request_exception=False)
    headers = _headers(who, client)
    for url in URLS:
        response = getattr(client, method)(url, **headers)

        assert response.status_code == 404, (url, response.status_code)
        _in_the_error_shape(url, response, "not_found")
