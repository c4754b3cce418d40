"""POST /api/v1/draft-count/sync: 202 with a job URL, coalesced and quota-aware (drafts.services), for the
calling tenant only; and a job that a real worker runs to completion against the WeChat sandbox."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.utils import timezone

from drafts.models import AttemptOutcome, JobState, SyncJob
from tenants.models import Eligibility, Tenant, TenantStatus
from tests.factories import api_headers, make_api_key
from tests.fixtures.sandbox import Sandbox
from tests.fixtures.sync import sandbox_tenant, worker_env
from tests.fixtures.worker import Worker

SYNC_URL = "/api/v1/draft-count/sync"


def key_for(tenant: Tenant) -> dict[str, str]:
    _key, raw = make_api_key(tenant)
    return api_headers(raw)


@pytest.mark.django_db
def test_sync_request_answers_202_with_the_job_url_and_enqueues_after_commit(
    client: Client, sync_settings: Sandbox, django_capture_on_commit_callbacks: Any
) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=4)

    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(SYNC_URL, **key_for(tenant))

    assert response.status_code == 202
    job = SyncJob.objects.get(tenant=tenant)
    url = f"http://testserver/api/v1/draft-count/sync/{job.pk}"
    assert response["Location"] == url
    body = response.json()
    assert (body["coalesced"], body["served_from_storage"]) == (False, False)
    assert body["job"] | {"requested_at": None} == {
        "id": str(job.pk),
        "url": url,
        "state": "pending",
        "trigger": "api",
        "requested_at": None,
        "queued_at": None,
        "started_at": None,
        "finished_at": None,
        "outcome": None,
        "total_count": None,
        "error": None,
    }
    assert len(callbacks) == 1
    assert sync_settings.control.counters()["draft_count_calls"] == {}


@pytest.mark.django_db
def test_sync_requests_while_a_job_is_open_join_it(client: Client, sync_settings: Sandbox) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=4)
    headers = key_for(tenant)

    first = client.post(SYNC_URL, **headers).json()
    second = client.post(SYNC_URL, **headers).json()

    assert second["job"]["id"] == first["job"]["id"]
    assert (first["coalesced"], second["coalesced"]) == (False, True)
    assert SyncJob.objects.filter(tenant=tenant).count() == 1


@pytest.mark.django_db
def test_sync_request_right_after_a_fetch_is_served_from_storage(
    client: Client, sync_settings: Sandbox, settings: Any
) -> None:
    settings.DRAFT_SYNC_MIN_INTERVAL = 60
    tenant = sandbox_tenant(sync_settings, draft_count=4)
    Tenant.objects.filter(pk=tenant.pk).update(
        draft_count=3, draft_count_fetched_at=timezone.now() - timedelta(seconds=10)
    )

    response = client.post(SYNC_URL, **key_for(tenant))

    assert response.status_code == 202
    body = response.json()
    assert body["served_from_storage"] is True
    assert (body["job"]["state"], body["job"]["outcome"], body["job"]["total_count"]) == ("succeeded", "cached", 3)
    assert sync_settings.control.counters()["draft_count_calls"] == {}


@pytest.mark.django_db
def test_sync_request_over_the_quota_budget_is_served_from_storage(client: Client, sync_settings: Sandbox) -> None:
    today = timezone.now().astimezone(ZoneInfo("Asia/Shanghai")).date()
    tenant = sandbox_tenant(sync_settings, draft_count=4, quota_day=today, quota_used=1000)
    Tenant.objects.filter(pk=tenant.pk).update(draft_count=3, draft_count_fetched_at=timezone.now())

    body = client.post(SYNC_URL, **key_for(tenant)).json()

    assert body["served_from_storage"] is True
    assert (body["job"]["outcome"], body["job"]["total_count"]) == (AttemptOutcome.CACHED, 3)
    assert sync_settings.control.counters()["draft_count_calls"] == {}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"status": TenantStatus.REVOKED}, "tenant_revoked"),
        ({"status": TenantStatus.NEEDS_REAUTH}, "tenant_needs_reauthorization"),
        ({"eligibility": Eligibility.MISSING_PERMISSION, "func_ids": [1]}, "tenant_ineligible"),
    ],
)
def test_sync_request_for_a_tenant_that_cannot_be_fetched_is_403_and_opens_no_job(
    client: Client, sync_settings: Sandbox, overrides: dict[str, Any], code: str
) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=4, **overrides)

    response = client.post(SYNC_URL, **key_for(tenant))

    assert response.status_code == 403
    assert response.json()["error"]["code"] == code
    assert not SyncJob.objects.exists()
    assert sync_settings.control.counters()["draft_count_calls"] == {}


@pytest.mark.django_db
def test_sync_request_opens_a_job_for_the_calling_tenant_only(client: Client, sync_settings: Sandbox) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=4)
    other = sandbox_tenant(sync_settings, draft_count=9)

    job_id = client.post(SYNC_URL, **key_for(tenant)).json()["job"]["id"]

    assert [(str(pk), owner) for pk, owner in SyncJob.objects.values_list("pk", "tenant_id")] == [(job_id, tenant.pk)]
    # And the other tenant's key cannot see that job.
    assert client.get(f"{SYNC_URL}/{job_id}", **key_for(other)).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_sync_job_runs_to_completion_in_a_worker_and_the_count_becomes_readable(
    client: Client, sync_settings: Sandbox, worker_factory: Callable[..., Worker]
) -> None:
    worker_factory(concurrency=1, env=worker_env())
    tenant = sandbox_tenant(sync_settings, draft_count=7)
    headers = key_for(tenant)

    accepted = client.post(SYNC_URL, **headers)
    job_url = accepted["Location"]
    deadline = time.monotonic() + 30
    job = client.get(job_url, **headers).json()
    while job["state"] in (JobState.PENDING, JobState.RUNNING) and time.monotonic() < deadline:
        time.sleep(0.1)
        job = client.get(job_url, **headers).json()

    assert accepted.status_code == 202
    assert (job["state"], job["outcome"], job["total_count"], job["error"]) == ("succeeded", "changed", 7, None)
    count = client.get("/api/v1/draft-count", **headers).json()
    assert (count["total_count"], count["stale"]) == (7, False)
    history = client.get("/api/v1/draft-count/history", **headers).json()["results"]
    assert [snapshot["total_count"] for snapshot in history] == [7]
    assert sync_settings.control.counters()["draft_count_calls"] == {tenant.authorizer_appid: 1}
