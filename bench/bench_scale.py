"""A provider's scale: N accounts (a million in the issue) synced by several Celery workers on this machine,
beside a bare aiohttp loop over the same accounts, in one run.

    python -m bench scale --accounts 20000        # a quick run (the default)
    python -m bench scale --accounts 1000000      # the issue's size (about an hour here, most of it waiting)

What it does, in order:
1. Seeds N authorized accounts in the sandbox (its bulk control call, 100,000 a time) and their tenant rows with
   one COPY (the tokens encrypted as the model stores them), in a database of its own (`bench_scale`, created
   and dropped here).
2. The bare limit: `fetch_draft_counts` (the project's aiohttp fan-out, no database, no Celery) over every
   account at --loop-concurrency calls in flight.
3. Times `draft_count_run_start` alone (planning: the chunk rows of one run, no task queued), then deletes that run.
4. Run 1: `drafts.sync_all` through --workers Celery worker processes (prefork, -c --worker-concurrency each):
   every account is new, so each gets a snapshot. Then --changed of the accounts get a new draft count in the
   sandbox, and run 2 (the steady state of a 15-minute schedule) writes a snapshot only for those.
5. Reports accounts/s of each run and its ratio to the loop, the planning time, the broker's messages per run
   (LPUSH calls on a private Redis started for the bench, so no other user of the machine's Redis is counted),
   peak RSS per worker process tree (sampled every 100 ms), and the database's size with its growth per run,
   extrapolated to a day of 96 runs under the change model printed beside it.

The sandbox (one aiohttp process, 50 ms added to every answer), PostgreSQL, Redis and the workers all share the
machine's CPUs: on a 2-core machine the sandbox alone takes most of a core at these rates, so the figures are a
floor for what the same workers do against WeChat, and the loop meets the same ceiling.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import group_rss  # noqa: E402 - after the path fix for script use
from bench.bench_sync import _bench_environment, _drop_database, _free_port, _recreate_database  # noqa: E402
from wxsandbox.control import SandboxControl  # noqa: E402

BENCH_DATABASE = "bench_scale"
# The sandbox's bulk control call creates at most this many accounts at a time.
SEED_BATCH = 100_000
RUNS_PER_DAY = 96  # every 15 minutes


# --- A private Redis, so that its command counters are the bench's alone ----------------------------------


class _Redis:
    def __init__(self) -> None:
        if shutil.which("redis-server") is None:
            raise SystemExit("bench scale needs redis-server (apt-get install redis-server)")
        self.port = _free_port()
        self.dir = tempfile.mkdtemp(prefix="bench-scale-redis-")
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.url = f"redis://127.0.0.1:{self.port}/0"
        import redis

        self.client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def pushes(self) -> int:
        """Messages published to the broker so far: kombu's Redis transport sends each with one LPUSH."""
        stats = self.client.info("commandstats")
        return int(stats.get("cmdstat_lpush", {}).get("calls", 0))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


# --- Workers -----------------------------------------------------------------------------------------


class _Worker:
    """One `celery worker` (its own process group: the main process and its prefork pool)."""

    def __init__(self, env: dict[str, str], concurrency: int) -> None:
        self.log = Path(tempfile.mkstemp(prefix="bench-scale-worker-", suffix=".log")[1])
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "wxplatform", "worker", "-c", str(concurrency),
                 "-P", "prefork", "-Q", env["CELERY_QUEUE"], "-l", "WARNING", "-n", f"scale-{uuid.uuid4().hex[:6]}@%h",
                 "--without-gossip", "--without-mingle", "--without-heartbeat"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.peak_rss = 0

    def rss(self) -> int:
        return sum(group_rss(self.process.pid).values())

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.log.unlink(missing_ok=True)


class _Sampler:
    """Samples every worker's RSS every 100 ms; `reset()` starts a new peak (one per run)."""

    def __init__(self, workers: list[_Worker]) -> None:
        self.workers = workers
        self.running = True
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while self.running:
            for worker in self.workers:
                worker.peak_rss = max(worker.peak_rss, worker.rss())
            time.sleep(0.1)

    def reset(self) -> None:
        for worker in self.workers:
            worker.peak_rss = 0

    def peaks(self) -> list[int]:
        return [worker.peak_rss for worker in self.workers]

    def stop(self) -> None:
        self.running = False
        self.thread.join(5)


def _wait_ready(workers: list[_Worker]) -> None:
    from wxplatform.celery import app

    deadline = time.monotonic() + 120
    while True:
        replies = app.control.ping(timeout=1.0) or []
        if len(replies) >= len(workers):
            return
        for worker in workers:
            if worker.process.poll() is not None:
                raise SystemExit(f"celery worker exited:\n{worker.log.read_text(errors='replace')[-3000:]}")
        if time.monotonic() > deadline:
            raise SystemExit("the celery workers did not answer a ping within 2 minutes")


# --- Seeding -----------------------------------------------------------------------------------------


def _seed(control: SandboxControl, count: int) -> list[tuple[str, str]]:
    """Sandbox accounts and their tenant rows (one COPY), as onboarding would leave them. Returns (appid, token)."""
    from django.db import connection
    from django.utils import timezone

    from tenants.models import AccountKind, Eligibility, Tenant, TenantStatus
    from wxplatform.component.services import default_component
    from wxplatform.core.encryption import encrypt_str

    accounts: list[dict[str, object]] = []
    for batch, start in enumerate(range(0, count, SEED_BATCH)):
        size = min(SEED_BATCH, count - start)
        accounts += control.bulk_create_authorizers(size, prefix=f"s{batch}-", draft_count=(0, 100))
    now = timezone.now()
    template = Tenant(
        component=default_component(),
        account_kind=AccountKind.SERVICE,
        func_ids=[1, 11],
        status=TenantStatus.ACTIVE,
        eligibility=Eligibility.ELIGIBLE,
        token_version=1,
        authorized_at=now,
        created_at=now,
        updated_at=now,
    )
    per_row = ("authorizer_appid", "access_token", "access_token_expires_at", "refresh_token")
    fields = [f for f in Tenant._meta.concrete_fields if not f.primary_key]
    common = {f.column: f.get_db_prep_save(getattr(template, f.attname), connection) for f in fields}
    columns = [f.column for f in fields]
    sql = f"COPY {Tenant._meta.db_table} ({', '.join(columns)}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for a in accounts:
            row = dict(common)
            row.update(
                zip(
                    per_row,
                    (
                        a["appid"],
                        encrypt_str(str(a["authorizer_access_token"])),
                        now + timedelta(seconds=int(str(a["expires_in"]))),
                        encrypt_str(str(a["authorizer_refresh_token"])),
                    ),
                    strict=True,
                )
            )
            copy.write_row([row[c] for c in columns])
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Tenant._meta.db_table}")
    return [(str(a["appid"]), str(a["authorizer_access_token"])) for a in accounts]


# --- The bare limit ----------------------------------------------------------------------------------


def _loop(base_url: str, tokens: list[str], concurrency: int) -> float:
    from wxplatform.wechat.bulk import fetch_draft_counts

    started = time.monotonic()
    results = fetch_draft_counts(base_url, list(enumerate(tokens)), concurrency=concurrency)
    elapsed = time.monotonic() - started
    failed = sum(r.error is not None for r in results)
    if failed:
        raise SystemExit(f"the aiohttp loop had {failed} failed calls")
    return len(tokens) / elapsed


# --- Runs ----------------------------------------------------------------------------------------------


@dataclass
class _Run:
    seconds: float
    changed: int
    unchanged: int
    failed: int
    skipped: int
    chunks: int
    messages: int
    peaks: list[int]

    @property
    def rate(self) -> float:
        return (self.changed + self.unchanged) / self.seconds


def _run(redis: _Redis, sampler: _Sampler, timeout: float) -> _Run:
    from django.utils import timezone

    from drafts.models import SyncRun, SyncTrigger
    from drafts.tasks import sync_all
    from tenants.models import Tenant

    # Every account due, as at a fixed 15-minute schedule (the cadence of docs/polling.md would call only the
    # due ones): the run the bench times is the worst case, one call per account. Not timed.
    Tenant.objects.update(next_poll_at=timezone.now())
    before = set(SyncRun.objects.values_list("pk", flat=True))
    sampler.reset()
    pushed = redis.pushes()
    started = time.monotonic()
    sync_all.delay()
    while True:
        run = SyncRun.objects.filter(trigger=SyncTrigger.SCHEDULE).exclude(pk__in=before).first()
        if run is not None and run.finished_at is not None:
            break
        if time.monotonic() - started > timeout:
            raise SystemExit(f"the sync run did not finish within {timeout:.0f} s")
        time.sleep(0.05)
    seconds = time.monotonic() - started
    # sync_all's own message is the bench's; what the run published is counted from the workers' pushes.
    messages = redis.pushes() - pushed
    return _Run(
        seconds, run.changed, run.unchanged, run.failed, run.skipped, run.chunks_total, messages, sampler.peaks()
    )


def _plan_time() -> tuple[float, int]:
    """draft_count_run_start alone: the chunk rows of a run, nothing queued. The run is deleted afterwards."""
    from drafts.models import SyncTrigger
    from drafts.services import draft_count_run_start

    started = time.monotonic()
    start = draft_count_run_start(trigger=SyncTrigger.ADMIN, enqueue_chunks=False)
    seconds = time.monotonic() - started
    chunks = start.run.chunks_total
    start.run.delete()
    return seconds, chunks


def _change_counts(control: SandboxControl, appids: list[str], fraction: float) -> int:
    """A new draft count for `fraction` of the accounts, in the sandbox (what merchants did since the last run)."""
    chosen = random.Random(7).sample(appids, int(len(appids) * fraction))
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda appid: control.update_authorizer(appid, draft_count=1000 + random.randint(0, 99)), chosen))
    return len(chosen)


@dataclass
class _Sizes:
    database: int
    snapshots: int
    tenants: int


def _sizes() -> _Sizes:
    from django.db import connection

    from drafts.models import DraftSnapshot
    from tenants.models import Tenant

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_database_size(current_database()), pg_total_relation_size(%s), pg_total_relation_size(%s)",
            [DraftSnapshot._meta.db_table, Tenant._meta.db_table],
        )
        database, snapshots, tenants = cursor.fetchone()
    return _Sizes(database, snapshots, tenants)


def _mib(size: float) -> str:
    return f"{size / 2**20:,.1f} MiB"


def run(args: argparse.Namespace) -> None:
    redis = _Redis()
    port = _free_port()
    sandbox_url = f"http://127.0.0.1:{port}"
    args.tenants = args.accounts
    env = _bench_environment(args, sandbox_url)
    env["DATABASE_URL"] = urlunsplit(urlsplit(env["DATABASE_URL"])._replace(path=f"/{BENCH_DATABASE}"))
    env["REDIS_URL"] = redis.url
    env["DRAFT_SYNC_RATE_LIMIT"] = "100000"
    env["DRAFT_SYNC_RATE_BURST"] = "100000"
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "wxplatform.settings"
    worker_env = dict(os.environ)
    _recreate_database(env["DATABASE_URL"], BENCH_DATABASE)
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "wxsandbox", "--port", str(port), "--ticket-interval", "0",
         "--latency", str(args.latency), "--seed", "1"],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    workers: list[_Worker] = []
    sampler: _Sampler | None = None
    try:
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        control = SandboxControl(sandbox_url, timeout=900)
        control.wait_until_ready(timeout=30)
        control.update_config(daily_quota=10**9)
        started = time.monotonic()
        accounts = _seed(control, args.accounts)
        seeded_in = time.monotonic() - started
        print(f"seeded {args.accounts:,} accounts (sandbox + tenant rows by COPY) in {seeded_in:.1f} s", flush=True)
        after_seed = _sizes()

        tokens = [token for _, token in accounts][: args.loop_accounts or None]
        loop_rate = _loop(sandbox_url, tokens, args.loop_concurrency)
        print(f"aiohttp loop ({len(tokens):,} accounts): {loop_rate:,.0f}/s", flush=True)

        plan_seconds, plan_chunks = _plan_time()
        print(f"planning alone: {plan_chunks:,} chunks in {plan_seconds:.2f} s", flush=True)

        workers = [_Worker(worker_env, args.worker_concurrency) for _ in range(args.workers)]
        _wait_ready(workers)
        sampler = _Sampler(workers)
        timeout = max(600.0, args.accounts / 100)
        first = _run(redis, sampler, timeout)
        print(f"run 1: {first.rate:,.0f} accounts/s ({first.seconds:.1f} s)", flush=True)
        after_first = _sizes()
        changed = _change_counts(control, [appid for appid, _ in accounts], args.changed)
        second = _run(redis, sampler, timeout)
        print(f"run 2: {second.rate:,.0f} accounts/s ({second.seconds:.1f} s)", flush=True)
        after_second = _sizes()
        sandbox_rss = _rss(sandbox.pid)
        from drafts.models import DraftSnapshot

        snapshots = DraftSnapshot.objects.count()
    finally:
        if sampler is not None:
            sampler.stop()
        for worker in workers:
            worker.stop()
        sandbox.send_signal(signal.SIGINT)
        sandbox.wait(timeout=60)
        from django.db import connections

        connections.close_all()
        _drop_database(env["DATABASE_URL"], BENCH_DATABASE)
        redis.stop()

    print(
        f"setup: {os.cpu_count()} CPUs shared by the sandbox ({args.latency * 1000:.0f} ms per call, one process), "
        f"PostgreSQL, Redis and {args.workers} workers x -c {args.worker_concurrency} (prefork); chunks of "
        f"{args.chunk_size}, {args.in_flight} calls in flight per chunk, {args.chunks_in_flight} chunks queued"
    )
    print(f"accounts: {args.accounts:,}; seeded in {seeded_in:.1f} s")
    print(f"aiohttp loop (fetch_draft_counts, {args.loop_concurrency} in flight): {loop_rate:,.0f} accounts/s")
    for name, result in (("run 1 (all new)", first), ("run 2 (steady)", second)):
        print(
            f"{name}: {result.rate:,.0f} accounts/s in {result.seconds:.1f} s "
            f"({result.changed:,} changed, {result.unchanged:,} unchanged, {result.failed} failed, "
            f"{result.skipped} skipped): {result.rate / loop_rate:.2f}x the loop; {result.chunks:,} chunks, "
            f"{result.messages:,} broker messages; peak RSS per worker " + ", ".join(_mib(p) for p in result.peaks)
        )
    at_million = 1_000_000 / second.rate
    print(f"a million accounts at run 2's rate: {at_million / 60:.1f} min (goal: within 15 min)")
    print(f"sync_all planning (draft_count_run_start, {plan_chunks:,} chunks): {plan_seconds:.2f} s")
    print(f"sandbox RSS at the end: {_mib(sandbox_rss)}")
    growth = after_second.database - after_first.database
    # Run 1 wrote one snapshot per account into an empty table: its size over N is a snapshot's cost, indexes
    # included (run 2's few hundred rows are too few to measure by pages).
    per_snapshot = (after_first.snapshots - after_seed.snapshots) / max(first.changed, 1)
    print(
        f"database: {_mib(after_seed.database)} after seeding, {_mib(after_first.database)} after run 1, "
        f"{_mib(after_second.database)} after run 2 (+{_mib(growth)} for {changed:,} changed counts; snapshot table "
        f"{_mib(after_first.snapshots)} -> {_mib(after_second.snapshots)}, {per_snapshot:,.0f} bytes per snapshot "
        f"with its indexes; tenant table {_mib(after_first.tenants)} -> {_mib(after_second.tenants)}: the dead row "
        f"versions of run 2's updates, reused once vacuumed); {snapshots:,} snapshots"
    )
    from django.conf import settings

    heartbeat_hours = settings.DRAFT_SNAPSHOT_HEARTBEAT_HOURS
    heartbeats = 24 / heartbeat_hours
    per_day = args.accounts * (RUNS_PER_DAY * args.changed + heartbeats)
    print(
        f"growth per day, modelled: {RUNS_PER_DAY} runs, {args.changed:.1%} of counts changed per run, a heartbeat "
        f"snapshot every {heartbeat_hours:g} h for every account ({heartbeats:g} a day): {per_day:,.0f} snapshots/day "
        f"x {per_snapshot:,.0f} B = {_mib(per_day * per_snapshot)}/day; tenant rows are updated in place (their table "
        "stays within about twice its size once autovacuum reclaims the dead versions)"
    )


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--workers", type=int, default=2, help="celery worker processes (each its own pool)")
    parser.add_argument("--worker-concurrency", type=int, default=1, help="prefork children per worker")
    parser.add_argument("--chunk-size", type=int, default=500)
    parser.add_argument("--in-flight", type=int, default=128, help="draft/count calls in flight per chunk")
    parser.add_argument("--chunks-in-flight", type=int, default=8)
    parser.add_argument("--loop-concurrency", type=int, default=256)
    parser.add_argument("--loop-accounts", type=int, default=0, help="accounts for the loop (0: all)")
    parser.add_argument("--changed", type=float, default=0.01, help="fraction of counts changed between runs")
    args = parser.parse_args(argv if argv is not None else [])
    run(args)


if __name__ == "__main__":
    main(sys.argv[1:])
