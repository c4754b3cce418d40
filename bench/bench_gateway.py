"""The WeChat gateway beside direct calls, in one run: GET /cgi-bin/draft/count straight to the sandbox with an
authorizer token, and the same call through /internal/v1/…/authorizers/<appid>/wechat/cgi-bin/draft/count with
a service key, at the same concurrency, against the same sandbox with 50 ms of WeChat latency.

What the gateway adds per call: DRF, the service key's lookup and hash check (one query), its throttle (one
Redis round trip), the account's row with its platform's appid and switch (one query), the forwarded call over
the pooled session, the metric and the day's usage upsert (one query). Reported: throughput of each, the ratio
(target >= 0.8x at 64 callers), and the added p50 and p99 latency (target: p50 under 3 ms); docs/gateway.md
says why two cores cannot meet them. Under each round, the CPU per call of gunicorn, PostgreSQL, the sandbox,
Redis and the rest, and how busy the machine was (read from /proc): where the cores went.

- Sandbox: `python -m wxsandbox` as a subprocess, --latency 0.05.
- Gateway: gunicorn with gthread workers (threads wait on WeChat, so a thread per in-flight call), its own
  PostgreSQL database `bench_gateway` (created, migrated and dropped here) and Redis key prefix.
- Load: the aiohttp client of bench_api, in its own process; the two targets alternate over rounds and the
  best round of each is kept.

    python -m bench gateway
    python bench/bench_gateway.py --connections 64 --seconds 10 --rounds 2
    python -m bench gateway --profile      # CPU per call in process, and where it goes (cProfile)
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bench_api import (  # noqa: E402 - after the path fix for script use
    LoadResult,
    _admin_sql,
    _clear_redis,
    _environment,
    _free_port,
    _manage,
    _wait_for,
    measure,
    require_all_answered,
)
from wxsandbox.config import SandboxConfig  # noqa: E402
from wxsandbox.control import SandboxControl  # noqa: E402

BENCH_DATABASE = "bench_gateway"
FLOOR = 0.8
P50_OVERHEAD_MS = 3.0

_SEED = """
from datetime import timedelta
from django.utils import timezone
from tenants.models import Tenant
from wxplatform.component.services import default_component
Tenant.objects.create(
    component=default_component(), authorizer_appid=APPID, nickname="Bench", account_kind="subscription",
    func_ids=[1, 11], status="active", eligibility="eligible",
    access_token=TOKEN, access_token_expires_at=timezone.now() + timedelta(hours=2),
    refresh_token=REFRESH, token_version=1,
)
"""


# One gateway call and one token hand-out end to end, through Django's WSGI handler as gunicorn calls it, beside
# /healthz: the CPU time of each (thread_time, so waits on the sandbox, PostgreSQL and Redis are not counted; best
# of several rounds) and, under cProfile, where a gateway call's and a hand-out's goes.
_PROFILE = """
import cProfile, io, pstats, time

from django.core.handlers.wsgi import WSGIHandler
from django.test import RequestFactory

handler = WSGIHandler()
factory = RequestFactory()
auth = {"HTTP_AUTHORIZATION": "Service-Key " + RAW_KEY, "SERVER_NAME": "127.0.0.1"}
base = f"/internal/v1/components/{COMPONENT}/authorizers/{APPID}"
environs = {
    "/healthz": factory.get("/healthz", SERVER_NAME="127.0.0.1").environ,
    "gateway call": factory.get(base + "/wechat/cgi-bin/draft/count", **auth).environ,
    "token hand-out": factory.get(base + "/token", **auth).environ,
}
statuses = set()

def one(environ):
    response = handler(dict(environ), lambda status, headers, exc_info=None: statuses.add(status))
    b"".join(response)
    response.close()

for environ in environs.values():
    for _ in range(50):
        one(environ)  # connects, imports, warms up
if statuses != {"200 OK"}:
    raise SystemExit(f"answered {statuses}")

def cpu_per_request(environ):
    started = time.thread_time()
    for _ in range(200):
        one(environ)
    return (time.thread_time() - started) / 200

for name, environ in environs.items():
    best = min(cpu_per_request(environ) for _ in range(ROUNDS))
    print(f"CPU per request, {name}: {best * 1000:.3f} ms")
for name in ("gateway call", "token hand-out"):
    profiler = cProfile.Profile(time.thread_time)
    profiler.enable()
    for _ in range(PROFILE_CALLS):
        one(environs[name])
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    print(f"=== {name}: {PROFILE_CALLS} requests ===")
    stats.sort_stats("cumulative").print_stats(PROFILE_LINES)
    stats.sort_stats("tottime").print_stats(PROFILE_LINES)
    print(out.getvalue())
"""


def _seeded(env: dict[str, str], control: SandboxControl, allow: str) -> tuple[dict[str, str], str]:
    """Migrates the bench database, stores one authorized sandbox account with a fresh token, and issues a service
    key allowed `allow`: the account and the raw key."""
    control.update_config(daily_quota=10**9)
    account: dict[str, str] = control.create_authorizer(authorized=True, draft_count=3)
    _manage(env, "migrate", "--verbosity", "0")
    seed = (
        f"APPID = {account['appid']!r}\nTOKEN = {account['authorizer_access_token']!r}\n"
        f"REFRESH = {account['authorizer_refresh_token']!r}\n{_SEED}"
    )
    _manage(env, "shell", "-c", seed)
    return account, _manage(env, "issue_service_key", "bench", "--allow", allow).strip()


def _bench_environment(sandbox_url: str) -> dict[str, str]:
    component = SandboxConfig()
    env = _environment()
    env.update(
        {
            "DATABASE_URL": urlunsplit(urlsplit(env["DATABASE_URL"])._replace(path=f"/{BENCH_DATABASE}")),
            "WECHAT_API_BASE": sandbox_url,
            "WECHAT_COMPONENT_APPID": component.component_appid,
            "WECHAT_COMPONENT_APPSECRET": component.component_appsecret,
            "WECHAT_COMPONENT_TOKEN": component.component_token,
            "WECHAT_COMPONENT_AES_KEY": component.component_aes_key,
            "SERVICE_KEY_RATE": "100000000/min",
        }
    )
    return env


def _start_sandbox(port: int, latency: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "wxsandbox", "--port", str(port), "--ticket-interval", "0",
         "--latency", str(latency), "--seed", "1"],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


# --- Where the two cores go during a measurement ------------------------------------------------------------
# Read from /proc before and after each measurement (no dependency): the CPU seconds of gunicorn's process group,
# the sandbox, PostgreSQL's processes and Redis, and the whole machine's busy and idle time. The rest of the busy
# time is the load client, the kernel and whatever else ran. Per call = seconds / calls served in the window
# (the warm-up included, at the measured rate).

_TICKS = os.sysconf("SC_CLK_TCK")
_PROCESSES = ("gunicorn", "postgres", "sandbox", "redis")


def _cpu_parts(server_group: int, sandbox_pid: int) -> dict[str, float]:
    parts = dict.fromkeys(_PROCESSES, 0.0)
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue  # gone meanwhile
        comm, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
        seconds = (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime
        if int(fields[2]) == server_group:
            parts["gunicorn"] += seconds
        elif int(name) == sandbox_pid:
            parts["sandbox"] += seconds
        elif comm.startswith("postgres"):
            parts["postgres"] += seconds
        elif comm.startswith("redis-server"):
            parts["redis"] += seconds
    jiffies = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    parts["idle"] = (jiffies[3] + jiffies[4]) / _TICKS  # idle, iowait
    parts["busy"] = (sum(jiffies) - jiffies[3] - jiffies[4]) / _TICKS
    return parts


def _cpu_line(before: dict[str, float], after: dict[str, float], calls: float) -> str:
    spent = {part: after[part] - before[part] for part in before}
    rest = spent["busy"] - sum(spent[part] for part in _PROCESSES)
    per_call = " · ".join(f"{part} {spent[part] * 1000 / calls:.2f}" for part in _PROCESSES)
    busy = spent["busy"] / (spent["busy"] + spent["idle"])
    return f"cpu ms/call: {per_call} · client+rest {rest * 1000 / calls:.2f} | machine busy {busy:.0%}"


def profile(args: argparse.Namespace) -> None:
    sandbox_port = _free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    env = _bench_environment(sandbox_url)
    drop = f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)'
    _admin_sql(env["DATABASE_URL"], drop, f'CREATE DATABASE "{BENCH_DATABASE}"')
    # No added WeChat latency: thread_time counts CPU only, and the profile runs sooner.
    sandbox = _start_sandbox(sandbox_port, 0.0)
    try:
        control = SandboxControl(sandbox_url)
        control.wait_until_ready(timeout=30)
        account, raw_key = _seeded(env, control, "/cgi-bin/draft/*")
        code = (
            f"RAW_KEY = {raw_key!r}\nCOMPONENT = {env['WECHAT_COMPONENT_APPID']!r}\nAPPID = {account['appid']!r}\n"
            f"ROUNDS = 5\nPROFILE_CALLS = {args.profile_calls}\nPROFILE_LINES = {args.profile_lines}\n"
        )
        print(_manage(env, "shell", "-c", code + _PROFILE))
    finally:
        sandbox.send_signal(signal.SIGINT)
        sandbox.wait(timeout=30)
        _clear_redis(env["REDIS_URL"], env["REDIS_KEY_PREFIX"])
        _admin_sql(env["DATABASE_URL"], drop)


def run(args: argparse.Namespace) -> None:
    import requests

    sandbox_port = _free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    env = _bench_environment(sandbox_url)
    drop = f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)'
    _admin_sql(env["DATABASE_URL"], drop, f'CREATE DATABASE "{BENCH_DATABASE}"')
    sandbox = _start_sandbox(sandbox_port, args.latency)
    server: subprocess.Popen[bytes] | None = None
    log = Path(tempfile.mkstemp(prefix="bench-gateway-gunicorn-", suffix=".log")[1])
    try:
        control = SandboxControl(sandbox_url)
        control.wait_until_ready(timeout=30)
        account, service_key = _seeded(env, control, "/cgi-bin/draft/*")
        port = _free_port()
        with log.open("ab") as out:
            server = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "wxplatform.wsgi:application", "--bind", f"127.0.0.1:{port}",
                 "--workers", str(args.workers), "--worker-class", "gthread", "--threads", str(args.threads),
                 "--backlog", "2048", "--access-logfile", "/dev/null"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        _wait_for(f"{base}/healthz")
        gateway = (
            f"{base}/internal/v1/components/{env['WECHAT_COMPONENT_APPID']}/authorizers/{account['appid']}"
            "/wechat/cgi-bin/draft/count"
        )
        targets = {
            "direct": ({}, f"{sandbox_url}/cgi-bin/draft/count?access_token={account['authorizer_access_token']}"),
            "gateway": ({"Authorization": f"Service-Key {service_key}"}, gateway),
        }
        for name, (headers, url) in targets.items():
            answer = requests.get(url, headers=headers, timeout=5)
            if answer.status_code != 200 or answer.json() != {"total_count": 3}:
                raise RuntimeError(f"{name} answered {answer.status_code}: {answer.text[:300]}")
        results: dict[str, list[LoadResult]] = {name: [] for name in targets}
        for round_number in range(1, args.rounds + 1):
            for name, (headers, url) in targets.items():
                cpu_before = _cpu_parts(server.pid, sandbox.pid)
                result = measure(url, headers, args.connections, args.warmup, args.seconds)
                cpu = _cpu_line(
                    cpu_before, _cpu_parts(server.pid, sandbox.pid), result.rps * (args.warmup + args.seconds)
                )
                results[name].append(result)
                print(
                    f"round {round_number} {name:8} {result.rps:8,.0f} calls/s  p50 {result.p50_ms:7.2f} ms  "
                    f"p99 {result.p99_ms:7.2f} ms  non-200: {result.errors}\n    {cpu}",
                    flush=True,
                )
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        sandbox.send_signal(signal.SIGINT)
        sandbox.wait(timeout=30)
        _clear_redis(env["REDIS_URL"], env["REDIS_KEY_PREFIX"])
        _admin_sql(env["DATABASE_URL"], drop)

    best = {name: max(rounds, key=lambda r: r.rps) for name, rounds in results.items()}
    direct, through = best["direct"], best["gateway"]
    print(
        f"setup: {args.latency * 1000:.0f} ms sandbox latency, {args.connections} callers, gunicorn {args.workers} "
        f"gthread workers x {args.threads} threads on {os.cpu_count()} CPUs, {args.warmup:.0f} s warm-up + "
        f"{args.seconds:.0f} s per measurement, best of {args.rounds} rounds"
    )
    for name, result in best.items():
        print(
            f"{name:8} {result.rps:8,.0f} calls/s  p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms  "
            f"({result.requests:,} calls, {result.errors} non-200)"
        )
    ratio = through.rps / direct.rps
    added_p50 = through.p50_ms - direct.p50_ms
    print(
        f"gateway / direct throughput: {ratio:.2f}x (target >= {FLOOR:.1f}x): {'met' if ratio >= FLOOR else 'MISSED'}"
    )
    print(
        f"added latency: p50 {added_p50:+.2f} ms (target < {P50_OVERHEAD_MS:.0f} ms: "
        f"{'met' if added_p50 < P50_OVERHEAD_MS else 'MISSED'}), p99 {through.p99_ms - direct.p99_ms:+.2f} ms"
    )
    require_all_answered(results)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--profile", action="store_true", help="profile one call and one hand-out in process")
    parser.add_argument("--profile-calls", type=int, default=1000)
    parser.add_argument("--profile-lines", type=int, default=40)
    args = parser.parse_args(argv if argv is not None else [])
    if args.profile:
        profile(args)
    else:
        run(args)


if __name__ == "__main__":
    main(sys.argv[1:])
