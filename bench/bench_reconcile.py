"""Reconciliation throughput and memory: `reconcile_authorizers` against the sandbox, beside a bare loop.

Measured in one run, against the same sandbox and the same accounts (5 ms of WeChat latency by default):
- bare loop: every page of api_get_authorizer_list, then api_get_authorizer_info for each listed account, one
  call after another with plain `requests` (what one writes by hand), no database;
- reconcile: `python manage.py reconcile_authorizers` in its own process on PostgreSQL: the pages, a profile
  read per account and a quota read per account with a fresh token (a thread pool, RECONCILE_CONCURRENCY),
  the locked bulk writes per page. Pass 1 is the first reading of tenants onboarded before (every profile is
  new to the tenant rows); pass 2 is the steady state (nothing changed, quotas read again).
Pass 3 is pass 2 without the quota reads (--no-quota): the same calls as the bare loop.
Both sizes, 1,000 and 10,000 authorizers, are reconciled, to show that memory stays flat: peak RSS is the
command process's VmHWM (Linux's own high-water mark), sampled until it exits.

The bench creates (and drops) its own database, `bench_wxplatform_reconcile`, on the PostgreSQL server of
DATABASE_URL, so it never touches a development or test database.

    make bench                              # or: python -m bench reconcile
    python bench/bench_reconcile.py --sizes 1000 10000 --concurrency 16 --latency 0.005
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import onboarded_tenants  # noqa: E402 - after the path fix for script use
from bench.bench_sync import _free_port  # noqa: E402
from wxsandbox.config import SandboxConfig  # noqa: E402
from wxsandbox.control import SandboxControl  # noqa: E402

BENCH_DATABASE = "bench_wxplatform_reconcile"
COMPONENT = "/cgi-bin/component"


def _environment(sandbox_url: str, concurrency: int) -> dict[str, str]:
    from cryptography.fernet import Fernet

    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith("postgres"):
        raise SystemExit("bench reconcile needs DATABASE_URL (PostgreSQL), as `make bench` sets it")
    component = SandboxConfig()
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    return {
        "DATABASE_URL": urlunsplit(urlsplit(database_url)._replace(path=f"/{BENCH_DATABASE}")),
        "REDIS_KEY_PREFIX": prefix,
        "CELERY_QUEUE": f"{prefix}-default",
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "SECRET_KEY": uuid.uuid4().hex * 2,
        "TOKEN_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "WECHAT_API_BASE": sandbox_url,
        "WECHAT_COMPONENT_APPID": component.component_appid,
        "WECHAT_COMPONENT_APPSECRET": component.component_appsecret,
        "WECHAT_COMPONENT_TOKEN": component.component_token,
        "WECHAT_COMPONENT_AES_KEY": component.component_aes_key,
        "RECONCILE_CONCURRENCY": str(concurrency),
    }


def _admin(database_url: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(urlunsplit(urlsplit(database_url)._replace(path="/postgres")), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


# --- The bare loop -------------------------------------------------------------------------------------


def _bare_loop(base_url: str, component_appid: str, token: str) -> tuple[float, int]:
    """Accounts per second of a plain sequential walk: pages, then each account's profile."""
    session = requests.Session()
    query = {"component_access_token": token}
    started = time.monotonic()
    offset, seen = 0, 0
    while True:
        page = session.post(
            f"{base_url}{COMPONENT}/api_get_authorizer_list",
            params=query,
            json={"component_appid": component_appid, "offset": offset, "count": 500},
            timeout=10,
        ).json()
        items = page["list"]
        for item in items:
            info = session.post(
                f"{base_url}{COMPONENT}/api_get_authorizer_info",
                params=query,
                json={"component_appid": component_appid, "authorizer_appid": item["authorizer_appid"]},
                timeout=10,
            ).json()
            assert "authorizer_info" in info, info
            seen += 1
        offset += len(items)
        if not items or offset >= page["total_count"]:
            break
    elapsed = time.monotonic() - started
    session.close()
    return seen / elapsed, seen


# --- The command in its own process ------------------------------------------------------------------


@dataclass
class _Pass:
    rate: float
    seconds: float
    peak_rss: int
    summary: str


def _peak_rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _reconcile_pass(env: dict[str, str], accounts: int, *extra: str) -> _Pass:
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "reconcile_authorizers", "--no-progress", *extra],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _peak_rss(process.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate(timeout=1800)
    seconds = time.monotonic() - started
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"reconcile_authorizers failed:\n{err[-3000:]}")
    return _Pass(rate=accounts / seconds, seconds=seconds, peak_rss=peak, summary=out.strip())


def _seed(control: SandboxControl, count: int, prefix: str) -> None:
    """Sandbox accounts and their tenant rows as onboarding left them (tokens only, no profile read yet)."""

    from tenants.models import Tenant

    accounts = control.bulk_create_authorizers(count, prefix=prefix)
    Tenant.objects.bulk_create(onboarded_tenants(accounts), batch_size=1000)


def run(args: argparse.Namespace) -> None:
    port = _free_port()
    sandbox_url = f"http://127.0.0.1:{port}"
    env = _environment(sandbox_url, args.concurrency)
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "wxplatform.settings"
    command_env = dict(os.environ)
    _admin(
        env["DATABASE_URL"],
        f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)',
        f'CREATE DATABASE "{BENCH_DATABASE}"',
    )
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "wxsandbox", "--port", str(port), "--ticket-interval", "0",
         "--latency", str(args.latency), "--seed", "1"],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    rows: list[tuple[int, float, _Pass, _Pass, _Pass]] = []
    try:
        import django
        from django.core.management import call_command
        from django.utils import timezone

        django.setup()
        call_command("migrate", verbosity=0)
        from tenants.models import Tenant
        from wxplatform.component.services import component_access_token, component_ticket_store, default_component

        control = SandboxControl(sandbox_url)
        control.wait_until_ready(timeout=30)
        component_ticket_store(default_component(), ticket=control.push_ticket()["ticket"], created_at=timezone.now())
        token = component_access_token(default_component())
        seeded = 0
        for size in sorted(args.sizes):
            started = time.monotonic()
            _seed(control, size - seeded, prefix=f"r{size}-")
            seeded = size
            print(f"seeded {size} accounts (sandbox + tenant rows) in {time.monotonic() - started:.1f} s", flush=True)
            bare, seen = _bare_loop(sandbox_url, SandboxConfig().component_appid, token)
            assert seen == size, (seen, size)
            first = _reconcile_pass(command_env, size)
            second = _reconcile_pass(command_env, size)
            # Like for like with the bare loop: pages and profiles only, no quota reads.
            third = _reconcile_pass(command_env, size, "--no-quota")
            rows.append((size, bare, first, second, third))
            assert Tenant.objects.filter(profile_read_at__isnull=False).count() == size
            print(second.summary, flush=True)
    finally:
        sandbox.send_signal(signal.SIGINT)
        sandbox.wait(timeout=30)
        from django.db import connections

        connections.close_all()
        _admin(env["DATABASE_URL"], f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)')

    print(
        f"setup: {args.latency * 1000:.0f} ms sandbox latency; RECONCILE_CONCURRENCY={args.concurrency} "
        "(profile and quota reads in flight); pages of 500"
    )
    for size, bare, first, second, third in rows:
        print(f"{size:>6} authorizers: bare sequential loop (pages + profiles, no database): {bare:,.0f} accounts/s")
        for label, result in (
            ("pass 1 (first reading)", first),
            ("pass 2 (steady state)", second),
            ("pass 3 (steady state, --no-quota)", third),
        ):
            print(
                f"{size:>6} authorizers: reconcile {label}: {result.rate:,.0f} accounts/s ({result.seconds:.1f} s, "
                f"process start included), {result.rate / bare:.1f}x the bare loop, "
                f"peak RSS {result.peak_rss / 2**20:,.0f} MiB"
            )
    if len(rows) >= 2:
        small, large = rows[0], rows[-1]
        growth = large[3].peak_rss / max(1, small[3].peak_rss)
        print(
            f"peak RSS, steady state: {small[3].peak_rss / 2**20:,.0f} MiB for {small[0]:,} authorizers, "
            f"{large[3].peak_rss / 2**20:,.0f} MiB for {large[0]:,} ({growth:.2f}x for {large[0] / small[0]:.0f}x "
            "the accounts)"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--latency", type=float, default=0.005)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv if argv is not None else [])
    run(args)


if __name__ == "__main__":
    main(sys.argv[1:])
