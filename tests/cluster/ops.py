"""What the cluster tests do from inside the cluster: `python -m tests.cluster.ops <command>` runs on one of
its hosts (the test process lives outside every namespace and reaches only the database, through its Unix
socket). Each command prints one JSON document.

    seed --accounts N --sandbox URL --out FILE   migrate, N sandbox accounts and their tenant rows, a ticket
    sync-all                                    make every account due and publish drafts.sync_all, as beat does
    issue-key APPID                             an API key for the merchant
    beat-only --task NAME --every SECONDS      the schedule holds one enabled entry: NAME every SECONDS
    ping HOST                                   whether the worker of HOST answers through the broker
    counters --sandbox URL [--reset]            the emulator's counters (then zeroed)
    get URL [--key KEY]                         one HTTP GET: {"status", "body"}
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import requests

from wxsandbox.control import SandboxControl

# The emulator's bulk endpoint builds each batch in one answer; batches keep those answers small.
SEED_BATCH = 5000


def _django() -> None:
    import django

    django.setup()


def seed(args: argparse.Namespace) -> dict[str, Any]:
    """Accounts as onboarding would leave them (the shortcut bench/bench_sync.py takes): the emulator's
    accounts with their tokens, our tenant rows holding those tokens, and a verify ticket so that the
    platform can get its component token and refresh authorizer tokens."""
    _django()
    from django.core.management import call_command
    from django.utils import timezone

    from bench import onboarded_tenants
    from tenants.models import Tenant
    from wxplatform.component.services import component_ticket_store, default_component

    call_command("migrate", verbosity=0)
    control = SandboxControl(args.sandbox)
    control.wait_until_ready(timeout=30)
    control.update_config(daily_quota=10**9)
    component = default_component()
    component_ticket_store(component, ticket=control.push_ticket()["ticket"], created_at=timezone.now())
    expected: dict[str, int] = {}
    for start in range(0, args.accounts, SEED_BATCH):
        count = min(SEED_BATCH, args.accounts - start)
        accounts = control.bulk_create_authorizers(count, prefix=f"c{start // SEED_BATCH:03d}", draft_count=(0, 500))
        Tenant.objects.bulk_create(onboarded_tenants(accounts), batch_size=1000)
        expected.update({a["appid"]: a["draft_count"] for a in accounts})
    Path(args.out).write_text(json.dumps(expected))
    return {"accounts": len(expected)}


def sync_all(args: argparse.Namespace) -> dict[str, Any]:
    _django()
    from django.utils import timezone

    from drafts.tasks import sync_all as task
    from tenants.models import Tenant

    # Every account due, as when its polling interval has passed (docs/polling.md): each scenario's runs
    # must cover all accounts, whatever the previous run set their next poll to.
    Tenant.objects.update(next_poll_at=timezone.now())
    task.delay()
    return {"published": True}


def issue_key(args: argparse.Namespace) -> dict[str, Any]:
    _django()
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("issue_api_key", args.appid, stdout=out)
    return {"key": out.getvalue().strip()}


def beat_only(args: argparse.Namespace) -> dict[str, Any]:
    _django()
    from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks

    PeriodicTask.objects.update(enabled=False)
    every, _ = IntervalSchedule.objects.get_or_create(every=args.every, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name=f"cluster: {args.task}", task=args.task, interval=every)
    PeriodicTasks.update_changed()
    return {"entry": f"cluster: {args.task}"}


def ping(args: argparse.Namespace) -> dict[str, Any]:
    """Whether the worker answers a broadcast through the broker (its consumer is connected and reading)."""
    _django()
    import socket

    from wxplatform.celery import app

    name = f"{args.host}@{socket.gethostname()}"
    return {"answered": bool(app.control.ping(destination=[name], timeout=2.0))}


def counters(args: argparse.Namespace) -> dict[str, Any]:
    control = SandboxControl(args.sandbox)
    answer = control.counters()
    if args.reset:
        control.reset_counters()
    return answer


def get(args: argparse.Namespace) -> dict[str, Any]:
    headers = {"Authorization": f"Api-Key {args.key}"} if args.key else {}
    answer = requests.get(args.url, headers=headers, timeout=10)
    try:
        body: Any = answer.json()
    except ValueError:
        body = answer.text[:2000]
    return {"status": answer.status_code, "body": body}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.cluster.ops")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("seed")
    p.add_argument("--accounts", type=int, required=True)
    p.add_argument("--sandbox", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(run=seed)
    commands.add_parser("sync-all").set_defaults(run=sync_all)
    p = commands.add_parser("issue-key")
    p.add_argument("appid")
    p.set_defaults(run=issue_key)
    p = commands.add_parser("beat-only")
    p.add_argument("--task", required=True)
    p.add_argument("--every", type=int, required=True)
    p.set_defaults(run=beat_only)
    p = commands.add_parser("ping")
    p.add_argument("host")
    p.set_defaults(run=ping)
    p = commands.add_parser("counters")
    p.add_argument("--sandbox", required=True)
    p.add_argument("--reset", action="store_true")
    p.set_defaults(run=counters)
    p = commands.add_parser("get")
    p.add_argument("url")
    p.add_argument("--key", default="")
    p.set_defaults(run=get)
    args = parser.parse_args(argv)
    print(json.dumps(args.run(args)))


if __name__ == "__main__":
    main(sys.argv[1:])
