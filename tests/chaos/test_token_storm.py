"""Token storms: many on-demand syncs, through the merchant API and several worker processes, meet expired
tokens at once. WeChat sees exactly one refresh per token: one api_authorizer_token per tenant, one
api_component_token for the platform (a second refresh would invalidate the first token, docs/wechat/tokens.md)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
import requests
from django.utils import timezone

from drafts.models import JobState, SyncJob, SyncRun, SyncTrigger
from drafts.services import draft_count_run_start
from tenants.models import Tenant
from tests.chaos.harness import ApiServer, Row, record, scaled, wait_for, wechat_requests
from tests.factories import make_api_key
from tests.fixtures.sandbox import Sandbox
from tests.fixtures.sync import component_ready, sandbox_tenant, sandbox_tenants, worker_env
from tests.fixtures.worker import Worker
from wxplatform.component.models import Platform

pytestmark = [pytest.mark.chaos, pytest.mark.django_db(transaction=True)]

AUTHORIZER_TOKEN = "/cgi-bin/component/api_authorizer_token"
COMPONENT_TOKEN = "/cgi-bin/component/api_component_token"
DRAFT_COUNT = "/cgi-bin/draft/count"
STORM = 64


def endpoint_calls(sandbox: Sandbox, path: str) -> int:
    return int(sandbox.control.counters()["endpoints"].get(path, {}).get("calls", 0))


def burst(api: ApiServer, keys: list[str]) -> list[requests.Response]:
    """POST /api/v1/draft-count/sync once per key, all released at the same moment."""
    barrier = threading.Barrier(len(keys))

    def ask(key: str) -> requests.Response:
        barrier.wait()
        return requests.post(
            f"{api.url}/api/v1/draft-count/sync", headers={"Authorization": f"Api-Key {key}"}, timeout=60
        )

    with ThreadPoolExecutor(max_workers=len(keys)) as pool:
        return list(pool.map(ask, keys))


def finished_jobs(responses: list[requests.Response]) -> list[SyncJob]:
    ids = {r.json()["job"]["id"] for r in responses}
    wait_for(
        lambda: not SyncJob.objects.filter(pk__in=ids, state__in=[JobState.PENDING, JobState.RUNNING]).exists(),
        timeout=120,
        what="every job to finish",
        every=0.2,
    )
    return list(SyncJob.objects.filter(pk__in=ids))


def expire_tenant_tokens(sandbox: Sandbox, tenants: list[Tenant]) -> None:
    Tenant.objects.filter(pk__in=[t.pk for t in tenants]).update(
        access_token_expires_at=timezone.now() - timedelta(minutes=1)
    )
    for tenant in tenants:
        sandbox.control.expire_authorizer_tokens(tenant.authorizer_appid)


def test_64_on_demand_syncs_of_a_tenant_with_an_expired_token_refresh_it_once(
    sync_settings: Sandbox,
    settings: Any,
    worker_factory: Callable[..., Worker],
    api_server_factory: Callable[..., ApiServer],
) -> None:
    sandbox = sync_settings
    component_ready(sandbox)
    tenant = sandbox_tenant(sandbox, draft_count=21)
    _key, raw_key = make_api_key(tenant)
    expire_tenant_tokens(sandbox, [tenant])
    # Production's minimum interval: once fetched, further requests are answered from storage.
    env = worker_env(DRAFT_SYNC_MIN_INTERVAL="60")
    settings.DRAFT_SYNC_MIN_INTERVAL = 60
    for _ in range(2):
        worker_factory(concurrency=4, env=env)
    api = api_server_factory(env=env, workers=scaled(2, 4), threads=16)
    sandbox.control.reset_counters()

    # The scheduled run that contains the tenant starts at the same moment: its chunk needs the token too.
    run = draft_count_run_start(trigger=SyncTrigger.SCHEDULE).run
    responses = burst(api, [raw_key] * STORM)
    jobs = finished_jobs(responses)
    wait_for(lambda: SyncRun.objects.filter(pk=run.pk, finished_at__isnull=False).exists(), timeout=60, what="run")

    refreshes = endpoint_calls(sandbox, AUTHORIZER_TOKEN)
    tenant.refresh_from_db()
    record(
        Row(
            scenario=f"token storm: {STORM} syncs of 1 tenant",
            requests=wechat_requests(sandbox.control),
            faults="access token expired",
            correct=int(tenant.draft_count == 21),
            total=1,
            lost=int(tenant.draft_count != 21),
            duplicated=max(0, refreshes - 1),
            server_errors=sum(1 for r in responses if r.status_code >= 500),
        )
    )

    assert [r.status_code for r in responses] == [202] * STORM
    assert {(j.state, j.total_count) for j in jobs} == {(JobState.SUCCEEDED, 21)}
    assert refreshes == 1
    assert sandbox.control.counters()["authorizer_token_calls"] == {tenant.authorizer_appid: 1}
    assert tenant.draft_count == 21


def test_64_on_demand_syncs_across_worker_processes_refresh_the_component_token_once(
    sync_settings: Sandbox,
    worker_factory: Callable[..., Worker],
    api_server_factory: Callable[..., ApiServer],
) -> None:
    sandbox = sync_settings
    component_ready(sandbox)
    tenants = sandbox_tenants(sandbox, STORM, draft_count=(1, 30))
    keys = [make_api_key(t)[1] for t in tenants]
    truth = {a["appid"]: a["draft_count"] for a in sandbox.control.list_authorizers()}
    # Every authorizer token and the component token have expired, here and at WeChat.
    expire_tenant_tokens(sandbox, tenants)
    Platform.objects.update(access_token_expires_at=timezone.now() - timedelta(minutes=1))
    sandbox.control.expire_component_token()
    env = worker_env()
    for _ in range(2):
        worker_factory(concurrency=4, env=env)
    api = api_server_factory(env=env, workers=scaled(2, 4), threads=16)
    sandbox.control.reset_counters()

    responses = burst(api, keys)
    jobs = finished_jobs(responses)

    counters = sandbox.control.counters()
    component_refreshes = endpoint_calls(sandbox, COMPONENT_TOKEN)
    stored = dict(Tenant.objects.values_list("authorizer_appid", "draft_count"))
    wrong = [appid for appid, count in truth.items() if stored[appid] != count]
    record(
        Row(
            scenario=f"token storm: {STORM} tenants, 8 processes",
            requests=wechat_requests(sandbox.control),
            faults="all tokens expired",
            correct=STORM - len(wrong),
            total=STORM,
            lost=len(wrong),
            duplicated=max(0, component_refreshes - 1)
            + sum(n - 1 for n in counters["authorizer_token_calls"].values() if n > 1),
            server_errors=sum(1 for r in responses if r.status_code >= 500),
        )
    )

    assert [r.status_code for r in responses] == [202] * STORM
    assert len(jobs) == STORM and {j.state for j in jobs} == {JobState.SUCCEEDED}
    assert component_refreshes == 1
    assert counters["authorizer_token_calls"] == {t.authorizer_appid: 1 for t in tenants}
    assert wrong == []
