"""Merchants read their draft counts through gunicorn (several processes, several threads each) while a real
worker's scheduled run rewrites every tenant row. Each web process answers from its copies of tenant rows
(tenants.readcache), which PostgreSQL's notifications drop: once the run has finished, every merchant must
read the count the worker wrote, and keep reading it; a revocation must reach every process the same way."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from drafts.models import SyncRun, SyncTrigger
from drafts.services import draft_count_run_start
from tenants.models import Tenant, TenantStatus
from tests.chaos.harness import ApiServer, Row, note, record, scaled, wait_for
from tests.factories import make_api_key
from tests.fixtures.sandbox import Sandbox
from tests.fixtures.sync import sandbox_tenants, worker_env
from tests.fixtures.worker import Worker

pytestmark = [pytest.mark.chaos, pytest.mark.django_db(transaction=True)]

DRAFT_COUNT = "/api/v1/draft-count"


def test_reads_during_a_sync_converge_on_what_the_worker_wrote(
    sync_settings: Sandbox,
    settings: Any,
    worker_factory: Callable[..., Worker],
    api_server_factory: Callable[..., ApiServer],
) -> None:
    sandbox = sync_settings
    count = scaled(30, 150)
    settings.DRAFT_SYNC_CHUNK_SIZE = 10
    tenants = sandbox_tenants(sandbox, count, draft_count=(1, 40))
    sandbox.control.set_latency(0.2, endpoint="/cgi-bin/draft/count")  # so that reads overlap the writes
    headers = {tenant.pk: {"Authorization": f"Api-Key {make_api_key(tenant)[1]}"} for tenant in tenants}
    env = worker_env(DRAFT_SYNC_CHUNK_SIZE="10", DRAFT_SYNC_CONCURRENCY="10")
    worker_factory(concurrency=2, env=env)
    api = api_server_factory(env=env, workers=2, threads=4)
    session = requests.Session()

    def read(tenant: Tenant) -> requests.Response:
        return session.get(f"{api.url}{DRAFT_COUNT}", headers=headers[tenant.pk], timeout=30)

    # Before any fetch every read is a 404, and every process then holds a copy of every tenant it served.
    assert {read(tenant).status_code for tenant in tenants for _ in range(3)} == {404}

    statuses: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        with requests.Session() as own:
            while not stop.is_set():
                for tenant in tenants:
                    statuses.append(
                        own.get(f"{api.url}{DRAFT_COUNT}", headers=headers[tenant.pk], timeout=30).status_code
                    )

    readers = [threading.Thread(target=hammer) for _ in range(4)]
    for reader in readers:
        reader.start()
    try:
        run = draft_count_run_start(trigger=SyncTrigger.SCHEDULE).run
        wait_for(
            lambda: SyncRun.objects.filter(pk=run.pk, finished_at__isnull=False).exists(),
            timeout=120,
            what="the run to finish",
            every=0.2,
        )
        finished = time.monotonic()
    finally:
        stop.set()
        for reader in readers:
            reader.join(timeout=60)

    truth = {a["appid"]: a["draft_count"] for a in sandbox.control.list_authorizers()}
    stored = dict(Tenant.objects.values_list("authorizer_appid", "draft_count"))

    def answers() -> dict[str, int | None]:
        return {tenant.authorizer_appid: read(tenant).json().get("total_count") for tenant in tenants}

    # Notifications arrive within milliseconds of each commit; the bound only stops a hung run.
    passes: list[dict[str, int | None]] = []
    wait_for(lambda: passes.append(answers()) or passes[-1] == truth, timeout=10, what="the new counts")
    converged_after = time.monotonic() - finished
    repeated = [answers() for _ in range(3)]  # and no process falls back to an older copy
    wrong = sorted(appid for appid, value in truth.items() if stored.get(appid) != value)
    stale = sorted({appid for answer in repeated for appid, value in answer.items() if value != truth[appid]})

    # A revocation reaches every process: each of several reads per tenant is refused.
    revoked = tenants[: max(1, count // 10)]
    Tenant.objects.filter(pk__in=[t.pk for t in revoked]).update(status=TenantStatus.REVOKED)
    wait_for(
        lambda: all(read(tenant).status_code == 403 for tenant in revoked for _ in range(4)),
        timeout=10,
        what="the revocations to be read",
    )
    after_revocation = [read(tenant) for tenant in revoked for _ in range(4)]

    record(
        Row(
            scenario="API reads during a sync (copies)",
            requests=len(statuses),
            faults="every row rewritten",
            correct=count - len(wrong) - len(stale),
            total=count,
            lost=len(wrong) + len(stale),
            duplicated=0,
            server_errors=sum(1 for s in statuses if s >= 500),
        )
    )
    note(
        f"API reads during a sync: {len(statuses)} reads while it ran; after it, {len(passes)} pass(es) of reads "
        f"over every tenant until all were current ({converged_after:.2f} s)"
    )
    assert set(statuses) <= {200, 404}, sorted(set(statuses))
    assert wrong == [] and stale == []
    assert {(r.status_code, r.json()["error"]["code"]) for r in after_revocation} == {(403, "tenant_revoked")}
