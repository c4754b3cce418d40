"""PostgreSQL goes away in the middle of a scheduled run (a restart: open connections reset, new ones refused)
and comes back. The worker's tasks retry and complete; during the outage the merchant API answers 503 in its
error shape, never 500, and /metrics still answers.

The database is cut with a TCP proxy between the app (worker, gunicorn) and the shared server: a real network
fault, without restarting the server other test runs use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests
from django.db.models import Count

from drafts.models import DraftSnapshot, SyncChunk, SyncRun, SyncTrigger
from drafts.services import draft_count_run_start
from tenants.models import Tenant
from tests.chaos.conftest import proxied_database_url
from tests.chaos.harness import ApiServer, Row, TcpProxy, assert_worker_alive, record, scaled, wait_for, wechat_requests
from tests.factories import make_api_key
from tests.fixtures.sandbox import Sandbox
from tests.fixtures.sync import sandbox_tenants, worker_env
from tests.fixtures.worker import Worker

pytestmark = [pytest.mark.chaos, pytest.mark.django_db(transaction=True)]

DRAFT_COUNT = "/cgi-bin/draft/count"
METRICS_TOKEN = "chaos-metrics-token"


def test_postgres_restarted_mid_sync_tasks_retry_and_the_api_answers_503(
    sync_settings: Sandbox,
    settings: Any,
    database_proxy: TcpProxy,
    worker_factory: Callable[..., Worker],
    api_server_factory: Callable[..., ApiServer],
) -> None:
    sandbox = sync_settings
    count = scaled(40, 400)
    chunk_size = scaled(5, 25)
    settings.DRAFT_SYNC_CHUNK_SIZE = chunk_size
    tenants = sandbox_tenants(sandbox, count, draft_count=(1, 40))
    _key, raw_key = make_api_key(tenants[0])
    sandbox.control.set_latency(0.3, endpoint=DRAFT_COUNT)
    env = worker_env(
        DATABASE_URL=proxied_database_url(database_proxy),
        DRAFT_SYNC_CHUNK_SIZE=str(chunk_size),
        DRAFT_SYNC_CONCURRENCY=str(chunk_size),
        METRICS_TOKEN=METRICS_TOKEN,
    )
    worker = worker_factory(concurrency=2, env=env)
    api = api_server_factory(env=env)
    headers = {"Authorization": f"Api-Key {raw_key}"}
    # Several reads, so that the web processes hold persistent connections for the cut to break: the read
    # after the outage must get a new one (CONN_HEALTH_CHECKS), not a 503 from a dead one.
    warm_up = [requests.get(f"{api.url}/api/v1/tenant", headers=headers, timeout=30) for _ in range(8)]
    assert [r.status_code for r in warm_up] == [200] * 8

    run = draft_count_run_start(trigger=SyncTrigger.SCHEDULE).run
    wait_for(lambda: SyncChunk.objects.filter(run=run, done_at__isnull=False).exists(), timeout=60, what="a chunk")
    database_proxy.cut()
    assert SyncChunk.objects.filter(run=run, done_at__isnull=True).exists(), "the run finished before the outage"

    # During the outage: every API answer is a 503 with the error shape and Retry-After, never a 500.
    api_paths = ["/api/v1/tenant", "/api/v1/draft-count", "/api/v1/draft-count/history"]
    during = [requests.get(f"{api.url}{path}", headers=headers, timeout=30) for path in api_paths * 2]
    during.append(requests.post(f"{api.url}/api/v1/draft-count/sync", headers=headers, timeout=30))
    ready = requests.get(f"{api.url}/readyz", timeout=30)
    alive = requests.get(f"{api.url}/healthz", timeout=30)
    scrape = requests.get(f"{api.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=30)
    # The worker meets the outage too (a chunk in flight cannot write, the next ones cannot start).
    wait_for(lambda: "OperationalError" in worker.output(), timeout=60, what="the worker to meet the outage")
    database_proxy.restore()

    wait_for(
        lambda: SyncRun.objects.filter(pk=run.pk, finished_at__isnull=False).exists(),
        timeout=120,
        what="the run to complete after the database came back",
        every=0.5,
    )
    after = requests.get(f"{api.url}/api/v1/draft-count", headers=headers, timeout=30)

    truth = {a["appid"]: a["draft_count"] for a in sandbox.control.list_authorizers()}
    stored = dict(Tenant.objects.values_list("authorizer_appid", "draft_count"))
    wrong = sorted(appid for appid, value in truth.items() if stored.get(appid) != value)
    duplicated = DraftSnapshot.objects.count() - count
    statuses = [r.status_code for r in during]
    record(
        Row(
            scenario="PostgreSQL restarted mid-sync",
            requests=wechat_requests(sandbox.control),
            faults=f"{database_proxy.cuts} outage, {database_proxy.connections_cut} conns cut",
            correct=count - len(wrong),
            total=count,
            lost=len(wrong),
            duplicated=max(0, duplicated),
            server_errors=sum(1 for s in statuses if s >= 500 and s != 503),
        )
    )

    assert_worker_alive(worker)
    assert statuses == [503] * len(during)
    for response in during:
        error = response.json()["error"]
        assert (error["code"], error["retry_after"]) == ("service_unavailable", 5)
        assert response.headers["Retry-After"] == "5"
    assert ready.status_code == 503 and ready.json()["failed"] == ["database"]
    assert alive.status_code == 200
    assert scrape.status_code == 200 and "wxp_metrics_database_up 0.0" in scrape.text
    assert after.status_code == 200 and after.json()["total_count"] == truth[tenants[0].authorizer_appid]
    assert wrong == []
    assert duplicated == 0
    assert not DraftSnapshot.objects.values("tenant").annotate(n=Count("id")).filter(n__gt=1).exists()
    run.refresh_from_db()
    assert (run.chunks_done, run.changed) == (run.chunks_total, count)
