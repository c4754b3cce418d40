"""Merchant API read throughput: GET /api/v1/draft-count beside GET /healthz, on one gunicorn, in one run.

/healthz is the floor of this stack: the same gunicorn workers and Django middleware, and nothing else.
GET /api/v1/draft-count adds what a merchant read costs: DRF, the Api-Key check, the tenant's draft-count
row, the per-key throttle, serialization and the ETag, in the default configuration. Target: >= 0.7x
/healthz.

- Server: gunicorn (sync workers, one per CPU) as a subprocess on a free port, against its own PostgreSQL
  database `bench_api` (created, migrated and dropped here) and its own Redis key prefix; the throttle
  is raised out of the way. A second gunicorn, idle while the first is measured, serves the same read
  with every per-process copy turned off. The tenant and its key are made with `manage.py shell` and `issue_api_key`.
- Load: an aiohttp client in a separate process (so that client and server do not share an interpreter),
  a fixed number of connections each sending requests back to back for a fixed time after a warm-up.
  aiohttp rather than wrk: it is already a dependency, so the bench runs wherever `make install` ran,
  with no system package to install; at these rates one client process is not the bottleneck (the
  client's own CPU share is reported).
- The endpoints alternate over several rounds and the best round of each is kept, so that a noisy
  moment on the machine does not decide the ratio.

    make bench                       # or: python -m bench api
    python bench/bench_api.py --connections 32 --seconds 10 --rounds 3

Where the time goes: on-CPU time per request in-process (Django's WSGI handler called in a loop, timed
with thread_time), on the 2-CPU development machine: /healthz 0.19 ms, GET /api/v1/draft-count 0.32 ms.
A read touches neither PostgreSQL nor Redis once its process holds the key (API_KEY_CACHE_SECONDS), a copy
of the tenant row (tenants.readcache: dropped by PostgreSQL's NOTIFY when the row changes) and the
rendered answer (drafts.api.views), and the throttle counts locally and adds to Redis in batches
(tenants.throttling). What is left is DRF (authentication, throttle, negotiation and dispatch) and the
view. The second server shows the read with all of that turned off (API_KEY_CACHE_SECONDS=0,
API_TENANT_CACHE_SECONDS=0, API_THROTTLE_SYNC_INTERVAL=0): what every read cost before, about 0.35x
/healthz, and what reads cost while a process is not listening for tenant changes.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
BENCH_DATABASE = "bench_api"


@dataclass(frozen=True)
class LoadResult:
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    client_cpu: float  # share of one CPU the load generator used

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


# --- Load generator (runs in its own process) --------------------------------------------------------


async def _load(url: str, headers: dict[str, str], connections: int, warmup: float, seconds: float) -> LoadResult:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:
        started = time.perf_counter()
        measure_from = started + warmup
        stop_at = measure_from + seconds

        async def one_connection() -> None:
            nonlocal errors
            while True:
                sent = time.perf_counter()
                if sent >= stop_at:
                    return
                async with session.get(url) as response:
                    await response.read()
                    ok = response.status == 200
                done = time.perf_counter()
                if sent >= measure_from and done <= stop_at:
                    latencies.append(done - sent)
                    errors += not ok

        cpu_before = time.process_time()
        await asyncio.gather(*(one_connection() for _ in range(connections)))
        cpu = time.process_time() - cpu_before
    latencies.sort()
    return LoadResult(
        requests=len(latencies),
        errors=errors,
        seconds=seconds,
        p50_ms=_percentile(latencies, 0.50) * 1000,
        p99_ms=_percentile(latencies, 0.99) * 1000,
        client_cpu=cpu / (warmup + seconds),
    )


def _load_process(url: str, headers: dict[str, str], connections: int, warmup: float, seconds: float) -> LoadResult:
    return asyncio.run(_load(url, headers, connections, warmup, seconds))


def measure(url: str, headers: dict[str, str], connections: int, warmup: float, seconds: float) -> LoadResult:
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(_load_process, (url, headers, connections, warmup, seconds))


# --- Server ------------------------------------------------------------------------------------------


def _environment() -> dict[str, str]:
    from cryptography.fernet import Fernet

    database_url = os.environ.get("DATABASE_URL", "")
    redis_url = os.environ.get("REDIS_URL", "")
    if not database_url.startswith("postgres") or not redis_url:
        raise SystemExit("bench api needs DATABASE_URL (PostgreSQL) and REDIS_URL, as `make bench` sets them")
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": urlunsplit(urlsplit(database_url)._replace(path=f"/{BENCH_DATABASE}")),
            "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": f"bench-api-{uuid.uuid4().hex[:8]}",
            "DEBUG": "false",
            "LOG_LEVEL": "WARNING",
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECRET_KEY": uuid.uuid4().hex * 2,
            "TOKEN_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "WECHAT_COMPONENT_APPID": "wx0000bench0comp",
            "WECHAT_COMPONENT_APPSECRET": "bench",
            "WECHAT_COMPONENT_TOKEN": "bench",
            "WECHAT_COMPONENT_AES_KEY": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
            # The per-key throttle still runs (its Redis round trips are part of the cost), but never trips.
            "API_THROTTLE_RATE": "100000000/min",
            "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="bench-api-metrics-"),
        }
    )
    return env


def _admin_sql(database_url: str, *statements: str) -> None:
    import psycopg

    admin_url = urlunsplit(urlsplit(database_url)._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


_SEED = """
from django.utils import timezone
from tenants.models import Tenant
Tenant.objects.create(
    authorizer_appid="wxbench0000000001", nickname="Bench", account_kind="subscription", func_ids=[1, 11],
    status="active", eligibility="eligible", draft_count=42, draft_count_fetched_at=timezone.now(),
)
"""


def _wait_for(url: str, timeout: float = 30) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or still importing
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def _clear_redis(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.delete(key)


UNCACHED = "/api/v1/draft-count (no copies)"
# Every per-process shortcut off: the key, the tenant row and the throttle go to PostgreSQL and Redis.
_UNCACHED_ENV = {"API_KEY_CACHE_SECONDS": "0", "API_TENANT_CACHE_SECONDS": "0", "API_THROTTLE_SYNC_INTERVAL": "0"}


def _start_server(env: dict[str, str], args: argparse.Namespace, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    with log.open("ab") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "wxplatform.wsgi:application", "--bind", f"127.0.0.1:{port}",
             "--workers", str(args.workers), "--worker-class", "sync", "--backlog", "2048",
             "--access-logfile", "-" if args.access_log else "/dev/null"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    return server, f"http://127.0.0.1:{port}"


def run(args: argparse.Namespace) -> None:
    import requests

    env = _environment()
    drop = f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)'
    _admin_sql(env["DATABASE_URL"], drop, f'CREATE DATABASE "{BENCH_DATABASE}"')
    servers: list[subprocess.Popen[bytes]] = []
    log = Path(tempfile.mkstemp(prefix="bench-api-gunicorn-", suffix=".log")[1])
    try:
        _manage(env, "migrate", "--verbosity", "0")
        _manage(env, "shell", "-c", _SEED)
        raw_key = _manage(env, "issue_api_key", "wxbench0000000001", "--name", "bench").strip()
        server, base = _start_server(env, args, log)
        servers.append(server)
        uncached_server, uncached_base = _start_server(env | _UNCACHED_ENV, args, log)
        servers.append(uncached_server)
        for url in (base, uncached_base):
            _wait_for(f"{url}/healthz")
        headers = {"Authorization": f"Api-Key {raw_key}"}
        targets = {
            "/healthz": ({}, f"{base}/healthz"),
            "/api/v1/draft-count": (headers, f"{base}/api/v1/draft-count"),
            UNCACHED: (headers, f"{uncached_base}/api/v1/draft-count"),
        }
        for name, (hdrs, url) in targets.items():  # each must answer 200 before it is measured
            answer = requests.get(url, headers=hdrs, timeout=5)
            if answer.status_code != 200:
                raise RuntimeError(f"{name} answered {answer.status_code}: {answer.text[:300]}")
        results: dict[str, list[LoadResult]] = {name: [] for name in targets}
        for round_number in range(1, args.rounds + 1):
            for name, (hdrs, url) in targets.items():
                result = measure(url, hdrs, args.connections, args.warmup, args.seconds)
                results[name].append(result)
                print(
                    f"round {round_number} {name:34} {result.rps:8,.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
                    f"p99 {result.p99_ms:6.2f} ms  non-200: {result.errors}  client CPU {result.client_cpu:.0%}",
                    flush=True,
                )
    finally:
        for server in servers:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        _clear_redis(env["REDIS_URL"], env["REDIS_KEY_PREFIX"])
        _admin_sql(env["DATABASE_URL"], drop)

    best = {name: max(rounds, key=lambda r: r.rps) for name, rounds in results.items()}
    trivial, api, uncached = best["/healthz"], best["/api/v1/draft-count"], best[UNCACHED]
    print(
        f"setup: gunicorn {args.workers} sync workers on {os.cpu_count()} CPUs, {args.connections} connections, "
        f"{args.warmup:.0f} s warm-up + {args.seconds:.0f} s per measurement, best of {args.rounds} rounds"
    )
    for name, result in best.items():
        print(
            f"{name:34} {result.rps:8,.0f} req/s  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  "
            f"({result.requests:,} requests, {result.errors} non-200)"
        )
    ratio = api.rps / trivial.rps
    print(f"draft-count / healthz throughput: {ratio:.2f}x (target >= 0.70x): {'met' if ratio >= 0.7 else 'MISSED'}")
    print(f"draft-count with no copies / healthz: {uncached.rps / trivial.rps:.2f}x (for comparison)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--access-log", action="store_true", help="let gunicorn log every request")
    args = parser.parse_args(argv if argv is not None else [])
    run(args)


if __name__ == "__main__":
    main(sys.argv[1:])
