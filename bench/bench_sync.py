"""Draft-count sync throughput: a real Celery worker against the sandbox with 50 ms of WeChat latency.

Measured in one run, against the same sandbox and the same 5,000 accounts:
- sequential: a plain `requests.get` loop, one account after another (what one writes by hand), on a subset;
- threaded:   a bare thread pool of `requests` calls over a shared session, no database (the client limit);
- worker:     `drafts.sync_all` through a Celery worker subprocess on PostgreSQL and Redis, from enqueueing
              the beat task until the run is finished: planning, token checks, the aiohttp fan-out, the
              bulk writes of counts, quota and snapshots. Run 1 writes a snapshot per account (all new);
              run 2 is the steady state (values unchanged, tenant rows only).
Peak worker memory is the summed RSS of the worker and its pool children, sampled every 50 ms.

The bench creates (and drops) its own database, `bench_wxplatform`, on the PostgreSQL server of
DATABASE_URL, and uses its own Redis key prefix, so it never touches a development or test database.

    make bench                              # or: python -m bench sync
    python bench/bench_sync.py --tenants 2000 --worker-concurrency 2 --chunk-size 500
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import group_rss, onboarded_tenants  # noqa: E402 - after the path fix for script use
from wxsandbox.config import SandboxConfig  # noqa: E402
from wxsandbox.control import SandboxControl  # noqa: E402

BENCH_DATABASE = "bench_wxplatform"
DRAFT_COUNT = "/cgi-bin/draft/count"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _bench_environment(args: argparse.Namespace, sandbox_url: str) -> dict[str, str]:
    """The environment shared by this process and the worker: its own database and Redis prefix, the
    sandbox as WeChat, and the sync tuning under test."""
    from cryptography.fernet import Fernet

    database_url = os.environ.get("DATABASE_URL", "")
    redis_url = os.environ.get("REDIS_URL", "")
    if not database_url.startswith("postgres") or not redis_url:
        raise SystemExit("bench sync needs DATABASE_URL (PostgreSQL) and REDIS_URL, as `make bench` sets them")
    parts = urlsplit(database_url)
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    component = SandboxConfig()
    return {
        "DATABASE_URL": urlunsplit(parts._replace(path=f"/{BENCH_DATABASE}")),
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": prefix,
        "CELERY_QUEUE": f"{prefix}-default",
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        # Throwaway secrets; the component credentials are the sandbox's.
        "SECRET_KEY": uuid.uuid4().hex * 2,
        "TOKEN_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "WECHAT_API_BASE": sandbox_url,
        "WECHAT_COMPONENT_APPID": component.component_appid,
        "WECHAT_COMPONENT_APPSECRET": component.component_appsecret,
        "WECHAT_COMPONENT_TOKEN": component.component_token,
        "WECHAT_COMPONENT_AES_KEY": component.component_aes_key,
        "DRAFT_SYNC_CHUNK_SIZE": str(args.chunk_size),
        "DRAFT_SYNC_CONCURRENCY": str(args.in_flight),
        "DRAFT_SYNC_CHUNKS_IN_FLIGHT": str(args.chunks_in_flight),
        # Two runs back to back: the second must not be answered as "synced moments ago".
        "DRAFT_SYNC_MIN_INTERVAL": "0",
    }


def _recreate_database(database_url: str, name: str = BENCH_DATABASE) -> None:
    import psycopg

    parts = urlsplit(database_url)
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def _drop_database(database_url: str, name: str = BENCH_DATABASE) -> None:
    import psycopg

    admin_url = urlunsplit(urlsplit(database_url)._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- Baselines ---------------------------------------------------------------------------------------


def _sequential(base_url: str, tokens: list[str]) -> float:
    started = time.monotonic()
    for token in tokens:
        answer = requests.get(f"{base_url}{DRAFT_COUNT}", params={"access_token": token}, timeout=10)
        answer.json()["total_count"]
    return len(tokens) / (time.monotonic() - started)


def _threaded(base_url: str, tokens: list[str], threads: int) -> float:
    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=threads))

    def fetch(token: str) -> int:
        answer = session.get(f"{base_url}{DRAFT_COUNT}", params={"access_token": token}, timeout=10)
        return int(answer.json()["total_count"])

    with ThreadPoolExecutor(max_workers=threads) as pool:
        started = time.monotonic()
        list(pool.map(fetch, tokens))
        elapsed = time.monotonic() - started
    session.close()
    return len(tokens) / elapsed


# --- The worker --------------------------------------------------------------------------------------


class _Worker:
    def __init__(self, env: dict[str, str], concurrency: int) -> None:
        self.log = Path(tempfile.mkstemp(prefix="bench-sync-worker-", suffix=".log")[1])
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "wxplatform", "worker", "-c", str(concurrency),
                 "-P", "prefork", "-Q", env["CELERY_QUEUE"], "-l", "INFO", "-n", f"bench-{uuid.uuid4().hex[:6]}@%h",
                 "--without-gossip", "--without-mingle", "--without-heartbeat"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while b" ready." not in self.log.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"celery worker did not start:\n{self.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        self.peak_rss = 0
        self._sampling = True
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def rss(self) -> int:
        """Summed RSS in bytes of every process in the worker's process group (main process + pool)."""
        return sum(group_rss(self.process.pid).values())

    def _sample(self) -> None:
        while self._sampling:
            self.peak_rss = max(self.peak_rss, self.rss())
            time.sleep(0.05)

    def stop(self) -> None:
        self._sampling = False
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        self.log.unlink(missing_ok=True)


@dataclass
class _RunResult:
    rate: float
    seconds: float
    changed: int
    unchanged: int
    failed: int
    skipped: int


def _worker_run() -> _RunResult:
    from drafts.models import SyncRun, SyncTrigger
    from drafts.tasks import sync_all

    before = set(SyncRun.objects.values_list("pk", flat=True))
    started = time.monotonic()
    sync_all.delay()
    while True:
        run = SyncRun.objects.filter(trigger=SyncTrigger.SCHEDULE).exclude(pk__in=before).first()
        if run is not None and run.finished_at is not None:
            break
        if time.monotonic() - started > 600:
            raise SystemExit("the sync run did not finish within 10 minutes")
        time.sleep(0.01)
    seconds = time.monotonic() - started
    total = run.changed + run.unchanged
    return _RunResult(total / seconds, seconds, run.changed, run.unchanged, run.failed, run.skipped)


def _seed(control: SandboxControl, count: int) -> dict[str, int]:
    """Sandbox accounts and their tenant rows, as onboarding would leave them (a shortcut for the bench)."""
    from tenants.models import Tenant

    accounts = control.bulk_create_authorizers(count, prefix="bench", draft_count=(0, 100))
    Tenant.objects.bulk_create(onboarded_tenants(accounts), batch_size=1000)
    return {a["appid"]: a["draft_count"] for a in accounts}


def _clear_redis(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.delete(key)


def run(args: argparse.Namespace) -> None:
    port = _free_port()
    sandbox_url = f"http://127.0.0.1:{port}"
    env = _bench_environment(args, sandbox_url)
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "wxplatform.settings"
    worker_env = dict(os.environ)
    _recreate_database(env["DATABASE_URL"])
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "wxsandbox", "--port", str(port), "--ticket-interval", "0",
         "--latency", str(args.latency), "--seed", "1"],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    worker: _Worker | None = None
    try:
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        from tenants.models import Tenant

        control = SandboxControl(sandbox_url)
        control.wait_until_ready(timeout=30)
        control.update_config(daily_quota=10**9)
        started = time.monotonic()
        expected = _seed(control, args.tenants)
        print(f"seeded {args.tenants} accounts (sandbox + tenant rows) in {time.monotonic() - started:.1f} s")
        tokens = [a["authorizer_access_token"] for a in control.list_authorizers()]

        sequential = _sequential(sandbox_url, tokens[: args.sequential])
        threaded = {n: _threaded(sandbox_url, tokens, n) for n in sorted({64, args.in_flight})}
        best_threads, best_threaded = max(threaded.items(), key=lambda item: item[1])

        worker = _Worker(worker_env, args.worker_concurrency)
        first = _worker_run()
        second = _worker_run()
        peak = worker.peak_rss
        synced = dict(Tenant.objects.values_list("authorizer_appid", "draft_count"))
        from drafts.models import DraftSnapshot

        snapshots = DraftSnapshot.objects.count()
    finally:
        if worker is not None:
            worker.stop()
        sandbox.send_signal(signal.SIGINT)
        sandbox.wait(timeout=30)
        _clear_redis(env["REDIS_URL"], env["REDIS_KEY_PREFIX"])
        from django.db import connections

        connections.close_all()
        _drop_database(env["DATABASE_URL"])

    correct = synced == expected
    print(
        f"setup: {args.latency * 1000:.0f} ms sandbox latency; worker -c {args.worker_concurrency} (prefork), "
        f"chunks of {args.chunk_size}, {args.in_flight} calls in flight per chunk, "
        f"{args.chunks_in_flight} chunks queued at a time"
    )
    print(f"sequential requests loop ({args.sequential} accounts): {sequential:,.1f} accounts/s")
    for threads, rate in threaded.items():
        print(f"bare threaded requests loop ({threads} threads, {args.tenants} accounts, no database): {rate:,.0f}/s")
    print(
        f"worker sync, run 1 (all new: {first.changed} changed, {first.failed} failed): "
        f"{first.rate:,.0f} accounts/s ({first.seconds:.2f} s)"
    )
    print(
        f"worker sync, run 2 (steady state: {second.unchanged} unchanged, {second.failed} failed): "
        f"{second.rate:,.0f} accounts/s ({second.seconds:.2f} s)"
    )
    print(f"peak worker memory (RSS, worker + pool children): {peak / 2**20:,.0f} MiB")
    print(f"every account synced with the sandbox's value: {correct}; snapshots written: {snapshots}")
    print(
        f"ratios, run 1: {first.rate / best_threaded:.2f}x the best bare threaded loop ({best_threads} threads; "
        f"target >= 0.8x), {first.rate / sequential:.1f}x the sequential loop (target >= 25x)"
    )
    print(
        f"ratios, run 2: {second.rate / best_threaded:.2f}x the best bare threaded loop, "
        f"{second.rate / sequential:.1f}x the sequential loop"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", type=int, default=5000)
    parser.add_argument("--sequential", type=int, default=200, help="accounts for the sequential loop")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument("--chunk-size", type=int, default=500)
    parser.add_argument("--in-flight", type=int, default=128, help="draft/count calls in flight per chunk")
    parser.add_argument("--chunks-in-flight", type=int, default=8)
    args = parser.parse_args(argv if argv is not None else [])
    run(args)


if __name__ == "__main__":
    main(sys.argv[1:])
