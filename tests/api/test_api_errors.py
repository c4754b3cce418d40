"""Every error under /api/ has the one JSON shape, whoever produced it (DRF, Django's URL resolver, an
unhandled exception, a database outage), and no response ever carries a tenant's WeChat tokens."""

from __future__ import annotations

import re
import socket
from typing import Any

import pytest
from django.db import connection
from django.http import HttpResponse
from django.test import Client

from drafts.models import JobState, SyncJob, SyncTrigger
from tenants.models import Tenant
from tests.factories import (
    api_headers,
    make_api_key,
    make_snapshot,
    make_tenant,
)

pytestmark = pytest.mark.django_db


def error_of(response: HttpResponse) -> dict[str, Any]:
    body = response.json()  # type: ignore[attr-defined]
    assert list(body) == ["error"], body
    assert body["error"]["request_id"] == response["X-Request-ID"]
    return {k: v for k, v in body["error"].items() if k != "request_id"}


def key_for(tenant: Tenant) -> dict[str, str]:
    _key, raw = make_api_key(tenant)
    return api_headers(raw)


@pytest.mark.smoke
@pytest.mark.parametrize("path", ["/api/v1/nothing-here", "/api/v1/tenant/", "/api/v2/tenant"])
def test_unknown_api_path_is_404_in_the_error_shape(client: Client, tenant: Tenant, path: str) -> None:
    response = client.get(path, **key_for(tenant))

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert error_of(response) == {"code": "not_found", "message": "Not found."}


@pytest.mark.smoke
@pytest.mark.django_db
@pytest.mark.parametrize("debug", [True, False])
@pytest.mark.parametrize("method", ["get", "post", "delete"])
@pytest.mark.parametrize(
    "path", ["/api/", "/api/v1/", "/api/v1", "/api/v1/draft-count/sync/not-a-uuid", "/api/v1/draft-count/x/y"]
)
def test_every_unknown_path_under_the_api_is_a_json_404_without_a_key_even_in_debug(
    client: Client, settings: Any, debug: bool, method: str, path: str
) -> None:
    settings.DEBUG = debug

    response = getattr(client, method)(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert error_of(response) == {"code": "not_found", "message": "Not found."}


def test_api_schema_and_docs_without_their_slash_still_redirect(client: Client) -> None:
    assert [client.get(path).status_code for path in ("/api/schema", "/api/docs")] == [301, 301]


def test_unknown_path_outside_the_api_keeps_djangos_html_404(client: Client) -> None:
    response = client.get("/no-such-page")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/v1/tenant"),
        ("delete", "/api/v1/draft-count"),
        ("get", "/api/v1/draft-count/sync"),
        ("put", "/api/v1/draft-count/history"),
        ("options", "/api/v1/tenant"),
    ],
)
def test_wrong_method_is_405_in_the_error_shape(client: Client, tenant: Tenant, method: str, path: str) -> None:
    response = getattr(client, method)(path, **key_for(tenant))

    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"


def test_unacceptable_media_type_is_406_in_the_error_shape(client: Client, tenant: Tenant) -> None:
    response = client.get("/api/v1/tenant", HTTP_ACCEPT="text/html", **key_for(tenant))

    assert response.status_code == 406
    assert error_of(response)["code"] == "not_acceptable"


def test_unhandled_exception_is_500_in_the_error_shape(tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("wxplatform.api.views.draft_snapshot_list", broken)
    client = Client(raise_request_exception=False)

    response = client.get("/api/v1/draft-count/history", **key_for(tenant))

    assert response.status_code == 500
    assert error_of(response) == {"code": "server_error", "message": "Internal server error. It has been logged."}
    assert "a bug" not in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_database_outage_is_503_in_the_error_shape_never_500(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    headers = key_for(make_tenant(draft_count=1))
    with socket.socket() as probe:  # a port on which nothing listens
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    monkeypatch.setitem(connection.settings_dict, "HOST", "127.0.0.1")
    monkeypatch.setitem(connection.settings_dict, "PORT", str(closed_port))
    connection.close()
    try:
        response = client.get("/api/v1/draft-count", **headers)
    finally:
        monkeypatch.undo()
        connection.close()

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert error_of(response) == {
        "code": "service_unavailable",
        "message": "The service is temporarily unavailable. Please retry shortly.",
        "retry_after": 5,
    }


def test_no_response_carries_the_tenants_tokens(client: Client, tenant: Tenant, other_tenant: Tenant) -> None:
    tenant.draft_count, tenant.draft_count_fetched_at = 3, tenant.authorized_at
    tenant.save(update_fields=["draft_count", "draft_count_fetched_at"])
    make_snapshot(tenant, total_count=3, fetched_at=tenant.authorized_at)
    job = SyncJob.objects.create(
        tenant=tenant,
        trigger=SyncTrigger.API,
        state=JobState.FAILED,
        message=f"invalid credential, access_token={tenant.access_token}",
    )
    theirs = SyncJob.objects.create(tenant=other_tenant, trigger=SyncTrigger.API)
    headers = key_for(tenant)
    secrets = [tenant.access_token, tenant.refresh_token, other_tenant.access_token, other_tenant.refresh_token]
    assert all(len(secret) > 20 for secret in secrets)

    responses = [
        client.get("/api/v1/tenant", **headers),
        client.get("/api/v1/draft-count", **headers),
        client.get("/api/v1/draft-count/history", **headers),
        client.get(f"/api/v1/draft-count/sync/{job.pk}", **headers),
        client.get(f"/api/v1/draft-count/sync/{theirs.pk}", **headers),
        client.get("/api/v1/draft-count/history?since=bad", **headers),
        client.get("/api/v1/tenant"),
        client.get("/api/schema/"),
    ]

    assert [r.status_code for r in responses] == [200, 200, 200, 200, 404, 400, 401, 200]
    for response in responses:
        exposed = response.content.decode() + str(response.headers)
        for secret in secrets:
            assert secret not in exposed


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["since=yesterday", "page_size=0", "sinse=2024-01-01"])
def test_chinese_api_errors_use_full_width_punctuation_only(client: Client, tenant: Tenant, query: str) -> None:
    response = client.get(f"/api/v1/draft-count/history?{query}", HTTP_ACCEPT_LANGUAGE="zh-hans", **key_for(tenant))

    message = error_of(response)["message"]
    assert response.status_code == 400
    assert "\uff1a" in message  # the full-width colon
    # A half-width colon as punctuation (before a space or Chinese text); "HH:MM" in a format is not one.
    assert re.search(r":(?=\s|[\u4e00-\u9fff])", message) is None
