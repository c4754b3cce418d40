"""The merchant API does what its schema and headers say (issue 18, reviewer hardening): an empty cursor
and a parameter given twice are 400s naming the parameter, and OPTIONS, which the schema does not offer,
is a 405 that the Allow header does not list either."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import api_headers, make_api_key, make_tenant

pytestmark = pytest.mark.django_db

ENDPOINTS = [
    "/api/v1/tenant",
    "/api/v1/draft-count",
    "/api/v1/draft-count/sync",
    "/api/v1/draft-count/history",
    "/api/v1/quota",
]


@pytest.fixture
def headers() -> dict[str, str]:
    _key, raw = make_api_key(make_tenant())
    return api_headers(raw)


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("cursor=", "cursor"),
        ("since=2026-01-01T00:00:00Z&since=2026-02-01T00:00:00Z", "since"),
        ("page_size=5&page_size=6", "page_size"),
    ],
)
def test_a_bad_or_duplicated_parameter_is_a_400_naming_it(
    client: Client, headers: dict[str, str], query: str, parameter: str
) -> None:
    response = client.get(f"/api/v1/draft-count/history?{query}", **headers)

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["parameter"]) == ("invalid_parameter", parameter)
    assert parameter in error["message"]


@pytest.mark.parametrize("path", ENDPOINTS)
def test_options_is_refused_and_not_listed_in_allow(client: Client, headers: dict[str, str], path: str) -> None:
    response = client.options(path, **headers)

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    allowed = {m.strip() for m in response["Allow"].split(",")}
    assert "OPTIONS" not in allowed and allowed <= {"GET", "HEAD", "POST"}
