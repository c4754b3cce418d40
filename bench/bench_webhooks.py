"""Webhooks: deliveries per second to a local receiver, and the sync's throughput with and without webhooks.

Measured in one run, against the same local receiver (an aiohttp server in its own process, answering 204):
- sequential: a plain `requests.post` loop of signed events, one after another (a subset);
- bare fan-out: the same signed POSTs through webhooks.sending alone (aiohttp, WEBHOOK_CONCURRENCY in flight),
  no database: the ceiling of the HTTP side;
- delivery: `webhooks_run` in this process, the whole path on PostgreSQL: fan-out of outbox events to
  deliveries, claiming (SKIP LOCKED, leased), signing with standardwebhooks, sending, recording attempts.
Then the draft-count sync through a Celery worker (as bench/bench_sync.py), every count changed: with no
webhook; with an endpoint subscribed to draft_count.changed on every account, delivery held back (the cost of
one event per changed count written in the sync's bulk transaction); and the same with the same worker
delivering to the receiver while the sync runs (deliveries take one of its processes).

Its own database (bench_wxplatform_webhooks) and Redis prefix.

    make bench                  # or: python -m bench webhooks
    python bench/bench_webhooks.py --events 3000 --tenants 3000
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bench_sync import (  # noqa: E402 - after the path fix for script use
    _bench_environment,
    _clear_redis,
    _drop_database,
    _free_port,
    _recreate_database,
    _seed,
    _Worker,
    _worker_run,
)
from wxsandbox.control import SandboxControl  # noqa: E402

# Not bench_sync's database: the two may run at the same time (several developers share one PostgreSQL).
BENCH_DATABASE = "bench_wxplatform_webhooks"


def _receiver(port: int) -> None:
    """A fast local receiver: 204 to every POST, counting nothing (the sender's side is measured)."""
    from aiohttp import web

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{tail:.*}", hook)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def _wait_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.post(f"http://127.0.0.1:{port}/ping", timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.05)
    raise SystemExit("the receiver did not start")


def _tenants_with_endpoints(count: int, url: str) -> list[int]:
    from django.utils import timezone

    from tenants.models import AccountKind, Eligibility, EventType, Tenant, TenantStatus
    from webhooks.models import Endpoint
    from webhooks.services import new_secret
    from wxplatform.component.services import default_component

    prefix = f"wxhook{time.monotonic_ns() % 10**8}"
    component = default_component()
    tenants = Tenant.objects.bulk_create(
        Tenant(
            component=component,
            authorizer_appid=f"{prefix}{i}",
            account_kind=AccountKind.SERVICE,
            status=TenantStatus.ACTIVE,
            eligibility=Eligibility.ELIGIBLE,
            authorized_at=timezone.now(),
        )
        for i in range(count)
    )
    Endpoint.objects.bulk_create(
        Endpoint(tenant=t, url=f"{url}/t{t.pk}", events=list(EventType.values), secret=new_secret()) for t in tenants
    )
    return [t.pk for t in tenants]


def _events(tenant_ids: list[int], count: int) -> None:
    from tenants.models import EventType, OutboxEvent

    OutboxEvent.objects.bulk_create(
        (
            OutboxEvent(
                tenant_id=tenant_ids[i % len(tenant_ids)],
                type=EventType.DRAFT_COUNT_CHANGED,
                payload={"appid": "bench", "total_count": i, "previous_total_count": i - 1, "fetched_at": "now"},
            )
            for i in range(count)
        ),
        batch_size=2000,
    )


def _signed_requests(count: int) -> list:  # type: ignore[type-arg]
    """Signed requests for already-dispatched deliveries (for the baselines, no database in the timing)."""
    from django.utils import timezone

    from webhooks.models import Delivery
    from webhooks.services import events_dispatch, signed_request

    while events_dispatch():
        pass
    now = timezone.now()
    deliveries = Delivery.objects.select_related("event", "endpoint").order_by("pk")[:count]
    return [signed_request(d, at=now) for d in deliveries]


def _delivery_rates(args: argparse.Namespace, receiver_url: str) -> dict[str, float]:
    from django.conf import settings

    from tenants.models import OutboxEvent
    from webhooks.models import Delivery, DeliveryAttempt, DeliveryState
    from webhooks.sending import send_all
    from webhooks.services import webhooks_run

    tenant_ids = _tenants_with_endpoints(args.endpoints, receiver_url)
    _events(tenant_ids, args.events)
    prepared = _signed_requests(args.events)

    started = time.monotonic()
    for r in prepared[: args.sequential]:
        requests.post(r.url, data=r.body, headers=r.headers, timeout=10).raise_for_status()
    sequential = args.sequential / (time.monotonic() - started)

    started = time.monotonic()
    outcomes = send_all(prepared, concurrency=settings.WEBHOOK_CONCURRENCY, timeout=10, allow_private=True)
    bare = len(outcomes) / (time.monotonic() - started)
    assert all(o.succeeded for o in outcomes)

    # The whole path, from fresh outbox rows: the deliveries the baselines used are removed first.
    DeliveryAttempt.objects.all().delete()
    Delivery.objects.all().delete()
    OutboxEvent.objects.update(dispatched_at=None)
    started = time.monotonic()
    while True:
        _tries, more = webhooks_run(budget_seconds=60)
        if not more and not Delivery.objects.filter(state=DeliveryState.PENDING).exists():
            break
    elapsed = time.monotonic() - started
    delivered = Delivery.objects.filter(state=DeliveryState.SUCCEEDED).count()
    return {"sequential": sequential, "bare": bare, "delivery": delivered / elapsed, "delivered": delivered}


def _sync_with_and_without(
    args: argparse.Namespace, control: SandboxControl, worker_env: dict[str, str], receiver_url: str
) -> dict[str, object]:
    from django.core.cache import cache

    from tenants.models import EventType, OutboxEvent, Tenant
    from webhooks.models import Delivery, DeliveryState, Endpoint
    from webhooks.services import new_secret
    from webhooks.tasks import _SLOT_KEY, deliver

    _seed(control, args.tenants)
    synced = Tenant.objects.exclude(access_token="")
    worker = _Worker(worker_env, args.worker_concurrency)

    def delivered() -> int:
        return Delivery.objects.filter(state=DeliveryState.SUCCEEDED, endpoint__url__contains="/s").count()

    try:
        synced.update(draft_count=-1)  # every fetch below is a change
        without = _worker_run()
        Endpoint.objects.bulk_create(
            Endpoint(
                tenant=t, url=f"{receiver_url}/s{t.pk}", events=[EventType.DRAFT_COUNT_CHANGED], secret=new_secret()
            )
            for t in synced.only("pk")
        )
        # Events written, deliveries held back (the bench holds the one delivery slot): the cost of the outbox.
        cache.set(_SLOT_KEY, "bench", timeout=600)
        synced.update(draft_count=-1)
        before = OutboxEvent.objects.count()
        written = _worker_run()
        written_events = OutboxEvent.objects.count() - before
        cache.delete(_SLOT_KEY)
        started = time.monotonic()
        while delivered() < written_events and time.monotonic() - started < 600:
            deliver.delay()  # what the beat entry does every few seconds
            time.sleep(0.5)
        backlog_seconds = time.monotonic() - started
        # Events written and delivered by the same worker while the sync runs.
        synced.update(draft_count=-1)
        before, done_before = OutboxEvent.objects.count(), delivered()
        started = time.monotonic()
        concurrent = _worker_run()
        events = OutboxEvent.objects.count() - before
        while delivered() - done_before < events and time.monotonic() - started < 600:
            deliver.delay()
            time.sleep(0.5)
        all_delivered = time.monotonic() - started
    finally:
        worker.stop()
    return {
        "without": without,
        "written": written,
        "written_events": written_events,
        "backlog_seconds": backlog_seconds,
        "concurrent": concurrent,
        "events": events,
        "all_delivered": all_delivered,
    }


def run(args: argparse.Namespace) -> None:
    sandbox_port, receiver_port = _free_port(), _free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    receiver_url = f"http://127.0.0.1:{receiver_port}"
    args.chunk_size, args.in_flight, args.chunks_in_flight = 500, 128, 8
    env = _bench_environment(args, sandbox_url)
    parts = urlsplit(env["DATABASE_URL"])
    env["DATABASE_URL"] = urlunsplit(parts._replace(path=f"/{BENCH_DATABASE}"))
    env.update({"WEBHOOK_ALLOW_PRIVATE_TARGETS": "true", "WEBHOOK_CONCURRENCY": str(args.concurrency)})
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "wxplatform.settings"
    worker_env = dict(os.environ)
    _recreate_database(env["DATABASE_URL"], BENCH_DATABASE)
    receiver = multiprocessing.get_context("spawn").Process(target=_receiver, args=(receiver_port,), daemon=True)
    receiver.start()
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "wxsandbox", "--port", str(sandbox_port), "--ticket-interval", "0",
         "--latency", str(args.latency), "--seed", "1"],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        _wait_port(receiver_port)
        control = SandboxControl(sandbox_url)
        control.wait_until_ready(timeout=30)
        control.update_config(daily_quota=10**9)
        rates = _delivery_rates(args, receiver_url)
        sync = _sync_with_and_without(args, control, worker_env, receiver_url)
    finally:
        sandbox.send_signal(signal.SIGINT)
        sandbox.wait(timeout=30)
        receiver.terminate()
        receiver.join(10)
        _clear_redis(env["REDIS_URL"], env["REDIS_KEY_PREFIX"])
        from django.db import connections

        connections.close_all()
        _drop_database(env["DATABASE_URL"], BENCH_DATABASE)

    print(f"setup: local aiohttp receiver (204), {args.endpoints} endpoints, {args.events} events, "
          f"WEBHOOK_CONCURRENCY={args.concurrency}")  # fmt: skip
    print(f"sequential requests.post loop ({args.sequential} events): {rates['sequential']:,.0f} deliveries/s")
    print(f"bare aiohttp fan-out (webhooks.sending, no database): {rates['bare']:,.0f} deliveries/s")
    print(
        f"delivery (outbox -> deliveries -> sign -> send -> record, PostgreSQL): {rates['delivery']:,.0f} deliveries/s "
        f"({rates['delivered']:,.0f} delivered)"
    )
    print(
        f"ratios: delivery {rates['delivery'] / rates['bare']:.2f}x the bare fan-out, "
        f"{rates['delivery'] / rates['sequential']:.1f}x the sequential loop"
    )
    without, written, concurrent = sync["without"], sync["written"], sync["concurrent"]
    print(
        f"sync of {args.tenants} accounts, every count changed, {args.latency * 1000:.0f} ms WeChat latency, "
        f"worker -c {args.worker_concurrency}:"
    )
    print(f"  no webhook: {without.rate:,.0f} accounts/s ({without.seconds:.2f} s)")  # type: ignore[attr-defined]
    print(
        f"  a subscribed webhook on every account, events written, delivery held back: "
        f"{written.rate:,.0f} accounts/s ({written.seconds:.2f} s, {sync['written_events']} events; "  # type: ignore[attr-defined]
        f"the backlog was then delivered in {sync['backlog_seconds']:.1f} s)"
    )
    print(
        f"  the same, delivered by the same worker during the run: {concurrent.rate:,.0f} accounts/s "  # type: ignore[attr-defined]
        f"({concurrent.seconds:.2f} s; {sync['events']} events, all delivered "  # type: ignore[attr-defined]
        f"{sync['all_delivered']:.1f} s after the run started)"
    )
    print(
        f"  ratios to no webhook: events written {written.rate / without.rate:.2f}x, "  # type: ignore[attr-defined]
        f"written and delivered meanwhile {concurrent.rate / without.rate:.2f}x"  # type: ignore[attr-defined]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--endpoints", type=int, default=200)
    parser.add_argument("--sequential", type=int, default=300, help="events for the sequential loop")
    parser.add_argument("--concurrency", type=int, default=32, help="WEBHOOK_CONCURRENCY")
    parser.add_argument("--tenants", type=int, default=3000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--worker-concurrency", type=int, default=2)
    args = parser.parse_args(argv if argv is not None else [])
    run(args)


if __name__ == "__main__":
    main(sys.argv[1:])
