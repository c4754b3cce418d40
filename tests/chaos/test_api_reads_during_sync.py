"""Merchants read their draft counts through gunicorn (several processes, several threads each) while a real
worker's scheduled run rewrites every tenant row. Every read goes to PostgreSQL, so every read is current:
once one read has seen a tenant's fetched count, no later read sees it unfetched; the first reads after the
run are the worker's values; a revocation is seen by the next read of every process.

It began as the regression test of the per-process tenant copies, which once served stale rows after
PostgreSQL ended their LISTEN connection; the copies are gone, and it now holds the plain read path to that."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Read:
    tenant_id: int
    sent: float
    done: float
    status: int


def stale_reads(reads: list[Read]) -> list[Read]:
    """Reads that answered "not fetched yet" (404) although they were sent after another read of the same
    tenant had answered with its count (200): the first read was already current, the second was not."""
    first_fetched: dict[int, float] = {}
    for read in reads:
        if read.status == 200:
            first_fetched[read.tenant_id] = min(read.done, first_fetched.get(read.tenant_id, read.done))
    return [r for r in reads if r.status == 404 and r.sent > first_fetched.get(r.tenant_id, float("inf"))]


def test_reads_through_gunicorn_during_a_worker_sync_are_always_current(
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

    # Before any fetch every read is a 404, from every process.
    assert {read(tenant).status_code for tenant in tenants for _ in range(3)} == {404}

    reads: list[Read] = []
    stop = threading.Event()

    def hammer() -> None:
        with requests.Session() as own:
            while not stop.is_set():
                for tenant in tenants:
                    sent = time.monotonic()
                    status = own.get(f"{api.url}{DRAFT_COUNT}", headers=headers[tenant.pk], timeout=30).status_code
                    reads.append(Read(tenant_id=tenant.pk, sent=sent, done=time.monotonic(), status=status))

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
    finally:
        stop.set()
        for reader in readers:
            reader.join(timeout=60)

    truth = {a["appid"]: a["draft_count"] for a in sandbox.control.list_authorizers()}
    stored = dict(Tenant.objects.values_list("authorizer_appid", "draft_count"))

    def answers() -> dict[str, int | None]:
        return {tenant.authorizer_appid: read(tenant).json().get("total_count") for tenant in tenants}

    # The run's end is committed with its last chunk's rows: the very first reads after it are current.
    after = [answers() for _ in range(3)]
    wrong = sorted(appid for appid, value in truth.items() if stored.get(appid) != value)
    stale = sorted({appid for answer in after for appid, value in answer.items() if value != truth[appid]})
    went_back = stale_reads(reads)

    # A revocation is seen by the next read, whichever process serves it.
    revoked = tenants[: max(1, count // 10)]
    Tenant.objects.filter(pk__in=[t.pk for t in revoked]).update(status=TenantStatus.REVOKED)
    after_revocation = [read(tenant) for tenant in revoked for _ in range(4)]

    record(
        Row(
            scenario="API reads during a sync",
            requests=len(reads),
            faults="every row rewritten",
            correct=count - len(wrong) - len(stale),
            total=count,
            lost=len(wrong) + len(stale),
            duplicated=0,
            server_errors=sum(1 for r in reads if r.status >= 500),
        )
    )
    note(
        f"API reads during a sync: {len(reads)} reads while it ran, "
        f"{sum(1 for r in reads if r.status == 200)} of them answered with a fetched count"
    )
    assert {r.status for r in reads} <= {200, 404}, sorted({r.status for r in reads})
    assert went_back == []
    assert wrong == [] and stale == []
    assert {(r.status_code, r.json()["error"]["code"]) for r in after_revocation} == {(403, "tenant_revoked")}
