"""The outbox under a killed worker. A worker SIGKILLed in the middle of a scheduled sync loses no event and
writes none twice (events are written in the sync's own transaction); a worker SIGKILLed in the middle of
deliveries loses none either: after a restart every event reaches its receiver, under its one webhook-id,
with a valid signature (at least once: a try cut by the kill may be sent again)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.db.models import Count

from drafts.models import SyncChunk, SyncRun, SyncTrigger
from drafts.services import draft_count_run_start
from tenants.models import EventType, OutboxEvent, Tenant
from tests.chaos.harness import Row, record, scaled, wait_for, wechat_requests
from tests.factories import make_tenant
from tests.fixtures.receiver import Receiver
from tests.fixtures.sandbox import Sandbox
from tests.fixtures.sync import sandbox_tenants, worker_env
from tests.fixtures.worker import Worker
from tests.webhooks.helpers import make_endpoint, make_event, verified
from webhooks.models import Delivery, DeliveryState, Endpoint
from webhooks.services import new_secret
from webhooks.tasks import deliver

pytestmark = [pytest.mark.chaos, pytest.mark.django_db(transaction=True)]

VISIBILITY_TIMEOUT = 3
HOOK = "https://hooks.example.net/wx"


def test_a_worker_killed_mid_sync_loses_and_duplicates_no_event(
    sync_settings: Sandbox, settings: Any, worker_factory: Callable[..., Worker]
) -> None:
    sandbox = sync_settings
    count = scaled(40, 400)
    chunk_size = scaled(5, 25)
    settings.DRAFT_SYNC_CHUNK_SIZE = chunk_size
    tenants = sandbox_tenants(sandbox, count, draft_count=(1, 40))
    Tenant.objects.update(draft_count=0)  # every fetch is a change
    Endpoint.objects.bulk_create(
        Endpoint(tenant=t, url=HOOK, events=[EventType.DRAFT_COUNT_CHANGED], secret=new_secret()) for t in tenants
    )
    sandbox.control.set_latency(0.3, endpoint="/cgi-bin/draft/count")
    env = worker_env(
        DRAFT_SYNC_CHUNK_SIZE=str(chunk_size),
        DRAFT_SYNC_CONCURRENCY=str(chunk_size),
        CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT),
    )
    worker = worker_factory(concurrency=2, env=env)
    run = draft_count_run_start(trigger=SyncTrigger.SCHEDULE).run

    wait_for(
        lambda: SyncChunk.objects.filter(run=run, done_at__isnull=False).exists(), timeout=60, what="a first chunk"
    )
    worker.kill()
    assert SyncChunk.objects.filter(run=run, done_at__isnull=True).exists(), "the run finished before the kill"
    time.sleep(VISIBILITY_TIMEOUT + 0.5)
    worker_factory(concurrency=2, env=env)
    wait_for(
        lambda: SyncRun.objects.filter(pk=run.pk, finished_at__isnull=False).exists(),
        timeout=120,
        what="the run to finish after the restart",
        every=0.5,
    )

    per_tenant = dict(
        OutboxEvent.objects.filter(type=EventType.DRAFT_COUNT_CHANGED)
        .values("tenant")
        .annotate(n=Count("id"))
        .values_list("tenant", "n")
    )
    lost = [t.pk for t in tenants if t.pk not in per_tenant]
    duplicated = sum(n - 1 for n in per_tenant.values() if n > 1)
    record(
        Row(
            scenario="worker SIGKILLed mid-sync: webhook events",
            requests=wechat_requests(sandbox.control),
            faults="1 kill",
            correct=count - len(lost) - duplicated,
            total=count,
            lost=len(lost),
            duplicated=duplicated,
        )
    )
    assert lost == []
    assert duplicated == 0
    truth = {a["appid"]: a["draft_count"] for a in sandbox.control.list_authorizers()}
    for event in OutboxEvent.objects.all():
        assert event.payload["total_count"] == truth[event.payload["appid"]]


def test_a_worker_killed_mid_delivery_loses_no_event(
    receiver: Receiver, settings: Any, worker_factory: Callable[..., Worker]
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    count = scaled(30, 200)
    timeout = 2.0
    env = {
        "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
        "WEBHOOK_TIMEOUT_SECONDS": str(timeout),
        "WEBHOOK_RETRY_BASE_SECONDS": "0.2",
        "WEBHOOK_CONCURRENCY": "8",
        "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
    }
    secrets: dict[str, str] = {}
    events = []
    for index in range(count):
        tenant = make_tenant()
        _endpoint, secret = make_endpoint(tenant, receiver.url(f"/t{index}"))
        event = make_event(tenant)
        secrets[str(event.pk)] = secret
        events.append(event)
    # Slow answers, so that tries are in flight when the worker dies.
    receiver.delay = 0.5
    worker = worker_factory(concurrency=2, env=env)
    deliver.delay()

    receiver.wait_for(3, timeout=60)
    worker.kill()
    assert Delivery.objects.filter(state=DeliveryState.PENDING).exists(), "everything was delivered before the kill"
    worker_factory(concurrency=2, env=env)

    def all_delivered() -> bool:
        deliver.delay()  # what the beat entry does every few seconds
        return not Delivery.objects.exclude(state=DeliveryState.SUCCEEDED).exists()

    wait_for(all_delivered, timeout=120, what="every delivery to succeed after the restart", every=1.0)

    ids = Counter(r.headers["webhook-id"] for r in receiver.requests)
    lost = [str(e.pk) for e in events if str(e.pk) not in ids]
    resent = sum(n - 1 for n in ids.values())
    record(
        Row(
            scenario="worker SIGKILLed mid-delivery: webhooks",
            requests=len(receiver.requests),
            faults="1 kill",
            correct=count - len(lost),
            total=count,
            lost=len(lost),
            duplicated=0,
        )
    )
    assert lost == []
    # At least once: only tries of the batches the kill cut short (two pool processes, four rounds of eight)
    # are sent again, each under the same id.
    assert resent <= 2 * 4 * 8
    for request in receiver.requests:
        assert verified(secrets[request.headers["webhook-id"]], request)["id"] == request.headers["webhook-id"]
    assert Delivery.objects.count() == count
    assert not Delivery.objects.values("event").annotate(n=Count("id")).filter(n__gt=1).exists()
