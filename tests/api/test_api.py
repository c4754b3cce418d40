"""Merchant API read endpoints: /api/v1/tenant, /draft-count, /draft-count/history, /draft-count/sync/<id>.

Each answers from storage, for the calling tenant only, with ETag / Last-Modified, and every error in the
one shape {"error": {"code", "message", "request_id", ...}}.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.http import HttpResponse
from django.test import Client
from django.utils import timezone
from django.utils.http import http_date
from pytest_django import DjangoAssertNumQueries

from drafts.models import AttemptOutcome, JobState, SnapshotReason, SyncJob, SyncTrigger
from tenants.models import AccountKind, Eligibility, Tenant, TenantStatus
from tests.factories import (
    api_headers,
    make_api_key,
    make_snapshot,
    make_tenant,
)
from tests.fixtures.sandbox import Sandbox
from wxplatform.core.times import machine_time

pytestmark = pytest.mark.django_db

FETCHED_AT = datetime(2025, 3, 1, 8, 30, tzinfo=UTC)


def error_of(response: HttpResponse) -> dict[str, Any]:
    """The error object, after checking that the body is exactly the one error shape."""
    body = response.json()  # type: ignore[attr-defined]
    assert list(body) == ["error"], body
    assert body["error"]["request_id"] == response["X-Request-ID"]
    return {k: v for k, v in body["error"].items() if k != "request_id"}


def fetched_tenant(**overrides: Any) -> Tenant:
    return make_tenant(**{"draft_count": 15, "draft_count_fetched_at": timezone.now(), **overrides})


def key_for(tenant: Tenant) -> dict[str, str]:
    _key, raw = make_api_key(tenant)
    return api_headers(raw)


# --- GET /api/v1/tenant --------------------------------------------------------------------------------


@pytest.mark.smoke
def test_tenant_endpoint_describes_the_calling_account(client: Client) -> None:
    authorized_at = datetime(2025, 2, 1, 9, 0, tzinfo=UTC)
    tenant = make_tenant(
        authorizer_appid="wx1234567890abcdef",
        nickname="Tea House",
        account_kind=AccountKind.SERVICE,
        func_ids=[1, 11, 100],
        authorized_at=authorized_at,
    )

    response = client.get("/api/v1/tenant", **key_for(tenant))

    assert response.status_code == 200
    assert response.json() == {
        "appid": "wx1234567890abcdef",
        "nickname": "Tea House",
        "account_kind": "service",
        "status": "active",
        "permission_sets": [1, 11, 100],
        "eligibility": {"status": "eligible", "reason": None},
        "authorized_at": "2025-02-01T09:00:00.000000Z",
        "revoked_at": None,
    }


def test_tenant_endpoint_gives_the_reason_an_account_is_ineligible(client: Client) -> None:
    tenant = make_tenant(
        func_ids=[1],
        eligibility=Eligibility.MISSING_PERMISSION,
        eligibility_detail="Missing permission set: 11 (material management) or 100.",
    )

    response = client.get("/api/v1/tenant", **key_for(tenant))

    # Not what was recorded, but what the merchant can do: authorize again (docs/wechat/permissions.md).
    reason = response.json()["eligibility"]["reason"]
    assert response.json()["eligibility"]["status"] == "missing_permission"
    assert reason.startswith("This platform was not granted permission set 11 (material management)")
    assert "http://127.0.0.1:8000/wechat/authorize" in reason


def test_tenant_endpoint_falls_back_to_the_eligibility_label_as_reason(client: Client) -> None:
    tenant = make_tenant(account_kind=AccountKind.MINI_PROGRAM, eligibility=Eligibility.WRONG_KIND)

    response = client.get("/api/v1/tenant", **key_for(tenant))

    assert response.json()["eligibility"]["status"] == "wrong_kind"
    assert response.json()["eligibility"]["reason"].startswith(
        "WeChat does not let this account itself use the draft APIs (WeChat errcode 48001)"
    )


def test_tenant_endpoint_shows_only_the_calling_tenant(client: Client, tenant: Tenant, other_tenant: Tenant) -> None:
    response = client.get("/api/v1/tenant", **key_for(tenant))

    assert response.json()["appid"] == tenant.authorizer_appid
    assert other_tenant.authorizer_appid not in response.content.decode()


# --- GET /api/v1/draft-count -------------------------------------------------------------------------


@pytest.mark.smoke
def test_draft_count_is_read_from_storage(client: Client, settings: Any) -> None:
    settings.API_DRAFT_COUNT_STALE_AFTER = 3600
    fetched_at = timezone.now().replace(microsecond=0) - timedelta(minutes=5)
    tenant = make_tenant(draft_count=15, draft_count_fetched_at=fetched_at, last_sync_attempt_at=fetched_at)

    response = client.get("/api/v1/draft-count", **key_for(tenant))

    assert response.status_code == 200
    assert response.json() == {
        "total_count": 15,
        "fetched_at": machine_time(fetched_at),
        "stale": False,
        "stale_at": machine_time(fetched_at + timedelta(hours=1)),
        "last_attempt_at": machine_time(fetched_at),
        "last_error_code": None,
        "last_error_at": None,
        "sync_paused_until": None,
    }
    assert response["Last-Modified"] == http_date(fetched_at.timestamp())
    assert response["ETag"].startswith('"')


def test_draft_count_older_than_the_freshness_target_is_stale(client: Client, settings: Any) -> None:
    settings.API_DRAFT_COUNT_STALE_AFTER = 3600
    tenant = make_tenant(draft_count=3, draft_count_fetched_at=FETCHED_AT)

    response = client.get("/api/v1/draft-count", **key_for(tenant))

    body = response.json()
    assert body["stale"] is True
    assert body["stale_at"] == "2025-03-01T09:30:00.000000Z"
    # The answer last changed when it became stale, not when it was fetched.
    assert response["Last-Modified"] == http_date((FETCHED_AT + timedelta(hours=1)).timestamp())


def test_draft_count_reports_the_last_error_and_a_quota_pause(client: Client) -> None:
    failed_at = timezone.now().replace(microsecond=0)
    paused_until = failed_at + timedelta(hours=3)
    tenant = fetched_tenant(last_error_code=45009, last_error_at=failed_at, paused_until=paused_until)

    body = client.get("/api/v1/draft-count", **key_for(tenant)).json()

    assert body["last_error_code"] == 45009
    assert body["last_error_at"] == machine_time(failed_at)
    assert body["sync_paused_until"] == machine_time(paused_until)


def test_draft_count_hides_a_pause_that_is_over(client: Client) -> None:
    tenant = fetched_tenant(paused_until=timezone.now() - timedelta(minutes=1))

    assert client.get("/api/v1/draft-count", **key_for(tenant)).json()["sync_paused_until"] is None


def test_draft_count_is_the_calling_tenants_own(client: Client) -> None:
    mine = fetched_tenant(draft_count=15)
    fetched_tenant(draft_count=99)

    assert client.get("/api/v1/draft-count", **key_for(mine)).json()["total_count"] == 15


@pytest.mark.parametrize(
    ("overrides", "code", "message"),
    [
        (
            {"status": TenantStatus.REVOKED},
            "tenant_revoked",
            "The account revoked its authorization of this platform; authorize it again to resume.",
        ),
        (
            {"status": TenantStatus.NEEDS_REAUTH},
            "tenant_needs_reauthorization",
            "The account's authorization is no longer valid; the account must authorize this platform again.",
        ),
        (
            # (61007 and 48001 give what the merchant can do instead: tests/api/test_api_refusals.py.)
            {"eligibility": Eligibility.ACCOUNT_STATUS, "eligibility_detail": "WeChat reports the account as banned."},
            "tenant_ineligible",
            "This account has no draft count: WeChat reports the account as banned.",
        ),
    ],
)
def test_draft_count_of_a_tenant_that_cannot_have_one_is_403_with_a_precise_code(
    client: Client, overrides: dict[str, Any], code: str, message: str
) -> None:
    # A count fetched before the tenant was revoked is not served either.
    tenant = fetched_tenant(**overrides)

    response = client.get("/api/v1/draft-count", **key_for(tenant))

    assert response.status_code == 403
    assert error_of(response) == {"code": code, "message": message}


def test_draft_count_never_fetched_is_404_draft_count_not_fetched(client: Client, tenant: Tenant) -> None:
    response = client.get("/api/v1/draft-count", **key_for(tenant))

    assert response.status_code == 404
    assert error_of(response) == {
        "code": "draft_count_not_fetched",
        "message": "No draft count has been fetched yet; request one with POST /api/v1/draft-count/sync.",
    }


def test_draft_count_read_never_calls_wechat(client: Client, wechat_settings: Sandbox) -> None:
    # Even with an expired token and a stale count, a read only reads.
    account = wechat_settings.control.create_authorizer(authorized=True, draft_count=42)
    tenant = fetched_tenant(
        authorizer_appid=account["appid"],
        draft_count_fetched_at=FETCHED_AT,
        access_token_expires_at=timezone.now() - timedelta(hours=1),
    )
    wechat_settings.control.reset_counters()

    response = client.get("/api/v1/draft-count", **key_for(tenant))

    assert response.json()["total_count"] == 15
    counters = wechat_settings.control.counters()
    assert counters["endpoints"] == {}
    assert counters["draft_count_calls"] == {}


# --- What a read costs --------------------------------------------------------------------------------
# One SQL query: the key by its prefix joined to its tenant, with only the tenant fields the view reads. A
# field left out of a view's `tenant_fields` would still be read correctly, by a query of its own, and
# these counts would catch it. Not counted here (nor by Django's query log): on a reused connection Django's
# CONN_HEALTH_CHECKS sends a `SELECT 1` on the driver's cursor first, once per request; bench/bench_api.py
# measures it, and docs/reference.md "Merchant API" says why it stays on.


@pytest.mark.parametrize("url", ["/api/v1/draft-count", "/api/v1/tenant"])
@pytest.mark.parametrize("conditional", [False, True], ids=["200", "304"])
def test_a_read_is_one_query_for_the_key_and_its_tenant(
    client: Client, django_assert_num_queries: DjangoAssertNumQueries, url: str, conditional: bool
) -> None:
    headers = key_for(fetched_tenant())
    first = client.get(url, **headers)  # the key's first use records last_used_at
    extra = {"HTTP_IF_NONE_MATCH": first["ETag"]} if conditional else {}

    with django_assert_num_queries(1) as queries:
        response = client.get(url, **headers, **extra)

    assert response.status_code == (304 if conditional else 200)
    sql = queries.captured_queries[0]["sql"]
    assert sql.startswith("SELECT")
    assert '"tenants_tenantapikey"' in sql and 'JOIN "tenants_tenant"' in sql
    assert '"access_token"' not in sql and '"refresh_token"' not in sql


def test_a_draft_count_read_loads_only_the_draft_count_fields(
    client: Client, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    headers = key_for(fetched_tenant())
    client.get("/api/v1/draft-count", **headers)

    with django_assert_num_queries(1) as queries:
        client.get("/api/v1/draft-count", **headers)

    assert '"nickname"' not in queries.captured_queries[0]["sql"]


def test_a_keys_first_use_in_a_touch_interval_adds_one_conditional_update(
    client: Client, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    headers = key_for(fetched_tenant())

    with django_assert_num_queries(2) as queries:
        response = client.get("/api/v1/draft-count", **headers)

    assert response.status_code == 200
    update = queries.captured_queries[1]["sql"]
    assert update.startswith('UPDATE "tenants_tenantapikey" SET "last_used_at"')
    assert '"last_used_at" IS NULL OR' in update  # the condition is in the UPDATE: concurrent requests write once


# --- Conditional GET ---------------------------------------------------------------------------------


def test_read_with_a_matching_etag_is_304_without_body(client: Client) -> None:
    headers = key_for(fetched_tenant())
    first = client.get("/api/v1/draft-count", **headers)

    again = client.get("/api/v1/draft-count", HTTP_IF_NONE_MATCH=first["ETag"], **headers)

    assert again.status_code == 304
    assert again.content == b""
    assert "Content-Type" not in again
    assert again["ETag"] == first["ETag"]
    assert again["Last-Modified"] == first["Last-Modified"]


def test_read_with_a_weak_or_listed_etag_is_304(client: Client) -> None:
    headers = key_for(fetched_tenant())
    etag = client.get("/api/v1/draft-count", **headers)["ETag"]

    listed = client.get("/api/v1/draft-count", HTTP_IF_NONE_MATCH=f'"other", W/{etag}', **headers)

    assert listed.status_code == 304


def test_read_with_if_modified_since_not_before_last_modified_is_304(client: Client) -> None:
    headers = key_for(fetched_tenant())
    last_modified = client.get("/api/v1/draft-count", **headers)["Last-Modified"]

    response = client.get("/api/v1/draft-count", HTTP_IF_MODIFIED_SINCE=last_modified, **headers)

    assert response.status_code == 304


def test_read_with_if_modified_since_before_last_modified_is_200(client: Client) -> None:
    headers = key_for(fetched_tenant())
    earlier = http_date((timezone.now() - timedelta(hours=1)).timestamp())

    response = client.get("/api/v1/draft-count", HTTP_IF_MODIFIED_SINCE=earlier, **headers)

    assert response.status_code == 200


def test_changed_count_gets_a_new_etag(client: Client) -> None:
    tenant = fetched_tenant(draft_count=15)
    headers = key_for(tenant)
    old_etag = client.get("/api/v1/draft-count", **headers)["ETag"]
    Tenant.objects.filter(pk=tenant.pk).update(draft_count=16, draft_count_fetched_at=timezone.now())

    response = client.get("/api/v1/draft-count", HTTP_IF_NONE_MATCH=old_etag, **headers)

    assert response.status_code == 200
    assert response.json()["total_count"] == 16
    assert response["ETag"] != old_etag


def test_a_count_that_turns_stale_gets_a_new_etag_and_last_modified(client: Client, settings: Any) -> None:
    settings.API_DRAFT_COUNT_STALE_AFTER = 3600
    fetched_at = timezone.now().replace(microsecond=0) - timedelta(minutes=5)
    headers = key_for(fetched_tenant(draft_count_fetched_at=fetched_at))
    fresh = client.get("/api/v1/draft-count", **headers)

    settings.API_DRAFT_COUNT_STALE_AFTER = 60  # as if an hour had passed, without any write
    stale = client.get("/api/v1/draft-count", HTTP_IF_NONE_MATCH=fresh["ETag"], **headers)

    assert (fresh.json()["stale"], stale.status_code, stale.json()["stale"]) == (False, 200, True)
    assert stale["ETag"] != fresh["ETag"]
    assert stale["Last-Modified"] == http_date((fetched_at + timedelta(seconds=60)).timestamp())


def test_each_language_and_media_type_has_its_own_answer(client: Client) -> None:
    headers = key_for(fetched_tenant())

    english = client.get("/api/v1/draft-count", HTTP_ACCEPT_LANGUAGE="en", **headers)
    chinese = client.get("/api/v1/draft-count", HTTP_ACCEPT_LANGUAGE="zh-hans", **headers)
    indented = client.get("/api/v1/draft-count", HTTP_ACCEPT="application/json; indent=2", **headers)
    compact = client.get("/api/v1/draft-count", HTTP_ACCEPT="application/xml, */*;q=0.5", **headers)
    by_format = client.get("/api/v1/draft-count?format=json", **headers)

    assert english["ETag"] != chinese["ETag"], "the ETag names the language"
    assert english.json() == chinese.json() == indented.json() == compact.json() == by_format.json()
    assert indented.content == json.dumps(indented.json(), indent=2, ensure_ascii=False).encode()
    assert b"\n" not in compact.content
    assert {r["Content-Type"] for r in (english, indented, compact, by_format)} == {"application/json"}


def test_every_read_answers_304_to_its_own_etag(client: Client) -> None:
    tenant = fetched_tenant()
    make_snapshot(tenant, total_count=15, fetched_at=FETCHED_AT)
    job = SyncJob.objects.create(tenant=tenant, trigger=SyncTrigger.API)
    headers = key_for(tenant)

    for url in ["/api/v1/tenant", "/api/v1/draft-count/history", f"/api/v1/draft-count/sync/{job.pk}"]:
        etag = client.get(url, **headers)["ETag"]
        response = client.get(url, HTTP_IF_NONE_MATCH=etag, **headers)
        assert (url, response.status_code) == (url, 304)


# --- GET /api/v1/draft-count/history -----------------------------------------------------------------


@pytest.mark.smoke
def test_history_lists_the_tenants_snapshots_newest_first(client: Client, tenant: Tenant) -> None:
    make_snapshot(tenant, total_count=3, fetched_at=FETCHED_AT)
    make_snapshot(tenant, total_count=5, fetched_at=FETCHED_AT + timedelta(hours=1))
    make_snapshot(tenant, total_count=5, fetched_at=FETCHED_AT + timedelta(hours=7), reason=SnapshotReason.HEARTBEAT)

    response = client.get("/api/v1/draft-count/history", **key_for(tenant))

    assert response.status_code == 200
    assert response.json() == {
        "next": None,
        "previous": None,
        "results": [
            {"total_count": 5, "fetched_at": "2025-03-01T15:30:00.000000Z", "reason": "heartbeat"},
            {"total_count": 5, "fetched_at": "2025-03-01T09:30:00.000000Z", "reason": "changed"},
            {"total_count": 3, "fetched_at": "2025-03-01T08:30:00.000000Z", "reason": "changed"},
        ],
    }


def test_history_shows_no_other_tenants_snapshots(client: Client, tenant: Tenant, other_tenant: Tenant) -> None:
    make_snapshot(tenant, total_count=1, fetched_at=FETCHED_AT)
    make_snapshot(other_tenant, total_count=99, fetched_at=FETCHED_AT)
    make_snapshot(other_tenant, total_count=98, fetched_at=FETCHED_AT + timedelta(hours=1))

    results = client.get("/api/v1/draft-count/history", **key_for(tenant)).json()["results"]

    assert [r["total_count"] for r in results] == [1]


def test_history_of_a_revoked_tenant_is_still_readable(client: Client) -> None:
    revoked = make_tenant(status=TenantStatus.REVOKED)
    make_snapshot(revoked, total_count=4, fetched_at=FETCHED_AT)

    response = client.get("/api/v1/draft-count/history", **key_for(revoked))

    assert response.status_code == 200
    assert [r["total_count"] for r in response.json()["results"]] == [4]


def test_history_keeps_since_inclusive_and_until_exclusive(client: Client, tenant: Tenant) -> None:
    for hour in range(5):
        make_snapshot(tenant, total_count=hour, fetched_at=FETCHED_AT + timedelta(hours=hour))

    response = client.get(
        "/api/v1/draft-count/history",
        {"since": "2025-03-01T09:30:00Z", "until": "2025-03-01T19:30:00+08:00"},
        **key_for(tenant),
    )

    assert [r["total_count"] for r in response.json()["results"]] == [2, 1]


def test_history_pages_with_a_cursor_until_the_last_page(client: Client, tenant: Tenant) -> None:
    for hour in range(5):
        make_snapshot(tenant, total_count=hour, fetched_at=FETCHED_AT + timedelta(hours=hour))
    headers = key_for(tenant)

    pages: list[list[int]] = []
    url: str | None = "/api/v1/draft-count/history?page_size=2&since=2025-03-01T00:00:00Z"
    while url is not None:
        body = client.get(url, **headers).json()
        pages.append([r["total_count"] for r in body["results"]])
        url = body["next"]
        assert url is None or "since=2025-03-01T00" in url

    assert pages == [[4, 3], [2, 1], [0]]


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2025-13-01T00:00:00Z"}, "until"),
        ({"since": "2025-03-02T00:00:00Z", "until": "2025-03-01T00:00:00Z"}, "until"),
        ({"since": "2025-03-01T00:00:00Z", "until": "2025-03-01T00:00:00Z"}, "until"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "501"}, "page_size"),
        ({"page_size": "ten"}, "page_size"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"sinse": "2025-03-01T00:00:00Z"}, "sinse"),
        ({"since": ""}, "since"),
        ({"cursor": " "}, "cursor"),
        ({"cursor": base64.b64encode(b"p=not-a-time").decode()}, "cursor"),
        ({"cursor": base64.b64encode(b"p=2025-02-30 00:00:00+00:00").decode()}, "cursor"),
        ({"cursor": base64.b64encode(b"o=-1").decode()}, "cursor"),
    ],
)
def test_history_rejects_a_bad_parameter_with_400_naming_it(
    client: Client, tenant: Tenant, query: dict[str, str], parameter: str
) -> None:
    response = client.get("/api/v1/draft-count/history", query, **key_for(tenant))

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid_parameter"
    assert error["parameter"] == parameter
    assert error["message"].startswith(f"{parameter}: ")


# --- GET /api/v1/draft-count/sync/<id> ---------------------------------------------------------------


def test_sync_job_shows_its_state_and_result(client: Client, tenant: Tenant) -> None:
    job = SyncJob.objects.create(
        tenant=tenant,
        trigger=SyncTrigger.API,
        state=JobState.SUCCEEDED,
        started_at=FETCHED_AT,
        finished_at=FETCHED_AT + timedelta(seconds=2),
        outcome=AttemptOutcome.CHANGED,
        total_count=17,
    )

    response = client.get(f"/api/v1/draft-count/sync/{job.pk}", **key_for(tenant))

    assert response.status_code == 200
    assert response.json() == {
        "id": str(job.pk),
        "url": f"http://testserver/api/v1/draft-count/sync/{job.pk}",
        "state": "succeeded",
        "trigger": "api",
        "requested_at": machine_time(job.requested_at),
        "queued_at": None,
        "started_at": "2025-03-01T08:30:00.000000Z",
        "finished_at": "2025-03-01T08:30:02.000000Z",
        "outcome": "changed",
        "total_count": 17,
        "error": None,
    }
    assert response["Last-Modified"] == http_date((FETCHED_AT + timedelta(seconds=2)).timestamp())


def test_failed_sync_job_shows_its_error_without_credentials(client: Client, tenant: Tenant) -> None:
    job = SyncJob.objects.create(
        tenant=tenant,
        trigger=SyncTrigger.API,
        state=JobState.FAILED,
        outcome=AttemptOutcome.FAILED,
        errcode=40001,
        message="invalid credential, access_token=SECRETVALUE rid: 1",
    )

    body = client.get(f"/api/v1/draft-count/sync/{job.pk}", **key_for(tenant)).json()

    assert body["state"] == "failed"
    assert body["error"] == {"errcode": 40001, "message": "invalid credential, access_token=*** rid: 1"}


def test_another_tenants_sync_job_is_404(client: Client, tenant: Tenant, other_tenant: Tenant) -> None:
    theirs = SyncJob.objects.create(tenant=other_tenant, trigger=SyncTrigger.API, total_count=5)

    response = client.get(f"/api/v1/draft-count/sync/{theirs.pk}", **key_for(tenant))

    assert response.status_code == 404
    assert error_of(response) == {"code": "not_found", "message": "No such sync job."}
    assert "5" not in response.content.decode().replace(response["X-Request-ID"], "")


def test_unknown_or_malformed_sync_job_id_is_404_in_the_error_shape(client: Client, tenant: Tenant) -> None:
    headers = key_for(tenant)

    unknown = client.get(f"/api/v1/draft-count/sync/{uuid.uuid4()}", **headers)
    malformed = client.get("/api/v1/draft-count/sync/not-a-uuid", **headers)

    assert unknown.status_code == 404
    assert error_of(unknown)["code"] == "not_found"
    assert malformed.status_code == 404
    assert error_of(malformed) == {"code": "not_found", "message": "Not found."}
