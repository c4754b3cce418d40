"""Polling as often as each account needs: one simulated day of 10,000 accounts, fixed 15-minute polling beside
the per-account cadence (docs/polling.md) and beside an oracle that knows each account's class (the fewest calls
any policy could make with the p95 of silent change -> seen no worse than fixed polling's), in one run.

The cadence is the real one: every scheduled poll and every event read sets the account's next poll with
drafts.rules.next_poll_at, the function the sync's bulk write calls, under the settings of this environment
(DRAFT_POLL_*, DRAFT_QUOTA_*). Polls happen at the beat's ticks (the drafts.sync_all entry of
wxplatform/core/schedule.py), to accounts whose next poll is due then, as the scheduled run plans them.

The change model (stated here, not fitted to the result):
- 80% of accounts change about once a week, 15% three times a day, 5% every hour: each a Poisson process,
  uniform over the day (no office hours), every change a change of the count (none cancel out);
- half the changes are publications or mass sends, which WeChat announces (PUBLISHJOBFINISH,
  MASSSENDJOBFINISH): under the cadence the account is read within seconds (modelled as at once, and counted as
  a draft/count call) and made due with draft_count_poll_soon; the other half are silent edits in WeChat's web
  editor, which only a poll (or the read after a later event) sees;
- every account has the default daily limit of draft/count (DRAFT_QUOTA_DAILY_LIMIT).
Fixed polling is today's engine: every account at every tick, and events ignored.

Before the measured day, WARMUP days are simulated so that every account's cadence has settled. Reported:
- draft/count calls per account in the measured day (event reads included), and the most one account made,
  against the share of its quota the schedule may spend;
- silent change -> seen: for every silent change of the measured day, the time until a read saw it;
- stale reads: merchants' reads sampled uniformly over the day (READS per account); a read is stale while a
  silent change is unseen, its age counted from that change; the share of stale reads and their ages.
The issue's target: at least 60% fewer calls, and the p95 of silent change -> seen no worse than fixed polling.

    python -m bench polling                       # or: make bench
    python bench/bench_polling.py --accounts 2000 --fraction 0.05
    python bench/bench_polling.py --accounts 5000 --tick 300 --floor 600   # the cadence on a 5-minute beat
"""

from __future__ import annotations

import argparse
import bisect
import heapq
import math
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DAY = 86400.0
# (share of accounts, changes per day, name)
CLASSES = ((0.80, 1 / 7, "weekly"), (0.15, 3.0, "3 a day"), (0.05, 24.0, "hourly"))
EVENT_SHARE = 0.5
# The baseline: today's engine, every account at every 15-minute beat.
FIXED_INTERVAL = 900.0
EPOCH = datetime(2026, 1, 5, tzinfo=UTC)


@dataclass
class Figures:
    calls: list[int] = field(default_factory=list)  # per account, in the measured day
    event_reads: int = 0
    delays: list[float] = field(default_factory=list)  # silent change -> seen
    stale_ages: list[float] = field(default_factory=list)  # ages of stale reads
    reads: int = 0


@dataclass(frozen=True)
class Account:
    kind: str
    changes: tuple[tuple[float, bool], ...]  # (time, announced by an event), sorted


def _accounts(count: int, days: float, rng: random.Random) -> list[Account]:
    accounts = []
    for _ in range(count):
        pick, kind, rate = rng.random(), CLASSES[-1][2], CLASSES[-1][1]
        for share, per_day, name in CLASSES:
            if pick < share:
                kind, rate = name, per_day
                break
            pick -= share
        changes, t = [], 0.0
        while True:
            t += rng.expovariate(rate / DAY)
            if t > days * DAY:
                break
            changes.append((t, rng.random() < EVENT_SHARE))
        accounts.append(Account(kind, tuple(changes)))
    return accounts


def _seen(account: Account, reads: list[float]) -> list[tuple[float, float]]:
    """(silent change, the first read at or after it) for each silent change a read saw."""
    pairs = []
    for at, announced in account.changes:
        if not announced:
            index = bisect.bisect_left(reads, at)
            if index < len(reads):
                pairs.append((at, reads[index]))
    return pairs


def _measure(
    figures: Figures, account: Account, reads: list[float], day: tuple[float, float], samples: list[float]
) -> None:
    start, end = day
    figures.calls.append(sum(1 for t in reads if start <= t < end))
    pairs = _seen(account, reads)
    figures.delays.extend(seen - at for at, seen in pairs if start <= at < end)
    # A sampled read at t is stale if some silent change at or before t is seen only after t; seen times grow
    # with the change times, so the earliest such change is the first whose seen time is after t.
    seen_times = [seen for _, seen in pairs]
    for t in samples:
        figures.reads += 1
        index = bisect.bisect_right(seen_times, t)
        if index < len(pairs) and pairs[index][0] <= t:
            figures.stale_ages.append(t - pairs[index][0])


def _events(account: Account) -> list[float]:
    return [at for at, announced in account.changes if announced]


def _every(interval: float, horizon: float, also: list[float] | None = None) -> list[float]:
    """Reads every `interval` seconds from 0 to the horizon, and at the times in `also` (sorted)."""
    polls = [i * interval for i in range(int(horizon // interval) + 1)]
    return list(heapq.merge(polls, also)) if also else polls


# --- The oracle --------------------------------------------------------------------------------------------
# The fewest calls any policy could make with the p95 of silent change -> seen no worse than fixed polling's
# (T), if it knew each account's class in advance (docs/polling.md#what-the-target-asks-and-the-bound). An
# account polled every I >= T leaves a share 1 - T/I of its silent changes unseen for longer than T; its calls
# (DAY/I) and that share are both linear in 1/I, so the cheapest way to keep 95% of all silent changes within T
# is greedy by change rate: the busier classes at the longest interval that leaves none of theirs beyond T,
# the rarest class (here: the weekly accounts) at the longest interval the remaining 5% allows. Every account
# is also read at its events, as under the cadence. The intervals are found with the closed form below and the
# figures then measured by the same code as fixed polling and the cadence.


def _delays(account: Account, interval: float, day: tuple[float, float]) -> list[float]:
    """Silent change -> seen in the day for an account polled every `interval` from 0 and read at its events."""
    events, delays = _events(account), []
    for at, announced in account.changes:
        if not announced and day[0] <= at < day[1]:
            seen = math.ceil(at / interval) * interval
            index = bisect.bisect_left(events, at)
            delays.append(min(seen, events[index]) - at if index < len(events) else seen - at)
    return delays


def _oracle(accounts: list[Account], day: tuple[float, float], target: float, grid: float) -> dict[str, float]:
    """Per class, the polling interval (a multiple of `grid`: 1 s for reads at any moment, the beat's tick for
    polls confined to it) that spends the fewest calls with the p95 of silent change -> seen at most `target`."""
    rarest = min(CLASSES, key=lambda c: c[1])[2]
    busy = max(grid, math.floor(target / grid) * grid)
    fixed_part: list[float] = []
    for account in accounts:
        if account.kind != rarest:
            fixed_part.extend(_delays(account, busy, day))
    rare = [account for account in accounts if account.kind == rarest]

    def holds(interval: float) -> bool:
        delays = fixed_part + [d for account in rare for d in _delays(account, interval, day)]
        return _pct(delays, 0.95) <= target

    # The p95 grows with the rare class's interval; search the longest that holds, up to a week.
    low, high = 1, int(7 * DAY // grid)
    if not holds(low * grid):
        raise SystemExit("the oracle cannot hold the p95 even at the shortest interval: check the model")
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if holds(middle * grid) else (low, middle - 1)
    return {name: (low * grid if name == rarest else busy) for _, _, name in CLASSES}


def _adaptive(account: Account, tick: float, horizon: float, daily_limit: int | None) -> tuple[list[float], int]:
    """The account's reads under the cadence: polls at the ticks it is due, reads at its events."""
    from drafts.rules import next_poll_at

    def due_after(base: float, activity: float) -> float:
        at = EPOCH + timedelta(seconds=base)
        due = next_poll_at(
            base=at, fetched_at=at, activity_at=EPOCH + timedelta(seconds=activity), daily_limit=daily_limit
        )
        return (due - EPOCH).total_seconds()

    reads: list[float] = []
    event_reads = 0
    events = [at for at, announced in account.changes if announced]
    changes = [at for at, _ in account.changes]
    next_event, unseen = 0, 0  # indexes into events and changes
    activity, due = 0.0, 0.0  # as after the upgrade's migration: due at once, active at the start
    while True:
        poll = math.ceil(due / tick) * tick  # the first beat at which the account is due
        if next_event < len(events) and events[next_event] < poll:
            # An event: draft_count_poll_soon (due now, active now), then the read within seconds, which as
            # any read outside the schedule may bring the next poll forward but never push it back.
            at = events[next_event]
            next_event += 1
            event_reads += 1
            activity, due = at, min(due, at)
            unseen = bisect.bisect_right(changes, at)
            reads.append(at)
            due = min(due, due_after(at, activity))
            continue
        if poll > horizon:
            return reads, event_reads
        seen = bisect.bisect_right(changes, poll)
        if seen > unseen:
            activity = poll  # the count changed since the last read
        unseen = seen
        reads.append(poll)
        due = due_after(poll, activity)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def simulate(args: argparse.Namespace) -> None:
    import django

    django.setup()
    from django.conf import settings

    from drafts.models import SyncTrigger
    from drafts.rules import quota_budget
    from wxplatform.core.schedule import SCHEDULE

    entry = next(e for e in SCHEDULE if e.task == "drafts.sync_all")
    tick = args.tick if args.tick is not None else float(entry.expire_seconds)
    rng = random.Random(args.seed)
    start, end = args.warmup * DAY, (args.warmup + 1) * DAY
    # One more day after the measured one, so that its late silent changes are seen by some read.
    horizon = end + DAY
    accounts = _accounts(args.accounts, horizon / DAY, rng)
    samples = [[rng.uniform(start, end) for _ in range(args.reads)] for _ in accounts]

    policies = ("fixed", "cadence", "oracle")
    totals = {policy: Figures() for policy in policies}
    by_kind = {name: {policy: Figures() for policy in policies} for _, _, name in CLASSES}
    reads_of: dict[str, Callable[[Account], list[float]]] = {
        "fixed": lambda account: _every(FIXED_INTERVAL, horizon),
        "cadence": lambda account: _adaptive(account, tick, horizon, daily_limit=None)[0],
    }

    def measure(policy: str) -> None:
        for account, reads_at in zip(accounts, samples, strict=True):
            reads = reads_of[policy](account)
            for figures in (totals[policy], by_kind[account.kind][policy]):
                _measure(figures, account, reads, (start, end), reads_at)
                if policy != "fixed":
                    figures.event_reads += sum(1 for at in _events(account) if start <= at < end)

    measure("fixed")
    measure("cadence")
    target = _pct(totals["fixed"].delays, 0.95)
    oracle = _oracle(accounts, (start, end), target, grid=1.0)
    reads_of["oracle"] = lambda account: _every(oracle[account.kind], horizon, _events(account))
    measure("oracle")
    on_beat = _oracle(accounts, (start, end), target, grid=tick)

    budget = quota_budget(SyncTrigger.SCHEDULE, None)
    calls = {policy: sum(totals[policy].calls) / len(accounts) for policy in policies}
    print(
        f"{len(accounts)} accounts, one day after {args.warmup:g} days of warm-up; cadence: beat every "
        f"{tick / 60:g} min, {settings.DRAFT_POLL_QUIET_FRACTION:g} x the quiet time, between "
        f"{_minutes(settings.DRAFT_POLL_MIN_INTERVAL)} and {_minutes(settings.DRAFT_POLL_MAX_INTERVAL)}"
    )
    print(
        "oracle: knows each account's class; polls every "
        + ", ".join(f"{name} {_minutes(interval)}" for name, interval in oracle.items())
        + ", and reads at events"
    )

    def each(figure: Callable[[Figures], str]) -> tuple[str, ...]:
        return tuple(figure(totals[policy]) for policy in policies)

    def any_read(f: Figures, q: float) -> str:
        """Staleness over every sampled read, fresh ones counting 0."""
        return _minutes(_pct(f.stale_ages + [0.0] * (f.reads - len(f.stale_ages)), q))

    fixed = totals["fixed"]
    rows = [
        ("draft/count calls per account per day", *(f"{calls[policy]:.1f}" for policy in policies)),
        ("  fewer than fixed", *(f"{1 - calls[policy] / calls['fixed']:.0%}" for policy in policies)),
        (
            "  of which reads after an event",
            "-",
            *(f"{totals[p].event_reads / len(accounts):.2f}" for p in ("cadence", "oracle")),
        ),
        (f"  most by one account (schedule budget {budget})", *each(lambda f: str(max(f.calls)))),
        (f"silent change -> seen, p50 ({len(fixed.delays)} changes)", *each(lambda f: _minutes(_pct(f.delays, 0.5)))),
        ("silent change -> seen, p95", *each(lambda f: _minutes(_pct(f.delays, 0.95)))),
        ("silent change -> seen, max", *each(lambda f: _minutes(max(f.delays, default=0)))),
        (f"stale reads ({fixed.reads} uniform reads)", *each(lambda f: f"{100 * len(f.stale_ages) / f.reads:.2f}%")),
        ("  age of a stale read, p50", *each(lambda f: _minutes(_pct(f.stale_ages, 0.5)))),
        ("  age of a stale read, p95", *each(lambda f: _minutes(_pct(f.stale_ages, 0.95)))),
        ("  age of a stale read, max", *each(lambda f: _minutes(max(f.stale_ages, default=0)))),
        ("staleness of any read, p95", *each(lambda f: any_read(f, 0.95))),
        ("staleness of any read, p99", *each(lambda f: any_read(f, 0.99))),
    ]
    print(f"\n{'':52} {'fixed 15 min':>14} {'per account':>14} {'oracle':>14}")
    for label, *values in rows:
        print(f"{label:52}" + "".join(f" {value:>14}" for value in values))

    print(f"\n{'by kind of account':20} {'calls/day':>29} {'silent -> seen p95':>37} {'silent changes':>15}")
    for _, _, name in CLASSES:
        kind = by_kind[name]
        n = len(kind["fixed"].calls)
        print(
            f"{name + f' ({n})':20}"
            + "".join(f" {sum(kind[p].calls) / n:>9.1f}" for p in policies)
            + "".join(f" {_minutes(_pct(kind[p].delays, 0.95)):>12}" for p in policies)
            + f" {len(kind['fixed'].delays):>15}"
        )

    saved = 1 - calls["cadence"] / calls["fixed"]
    p95_cadence, p95_oracle = _pct(totals["cadence"].delays, 0.95), _pct(totals["oracle"].delays, 0.95)
    calls_met, p95_met = saved >= 0.60, p95_cadence <= target
    print(
        f"\ntarget: >= 60% fewer calls: {saved:.0%} fewer ({'met' if calls_met else 'NOT met'}); "
        f"p95 silent change -> seen no worse than fixed: {_minutes(p95_cadence)} vs {_minutes(target)} "
        f"({'met' if p95_met else 'NOT met'})"
    )
    # On the beat, the same search; its calls are the polls it plans plus the same event reads as the oracle's.
    rarest = min(CLASSES, key=lambda c: c[1])[2]
    busy = next(interval for name, interval in on_beat.items() if name != rarest)

    def polls(plan: dict[str, float]) -> float:
        return sum(DAY / plan[account.kind] for account in accounts) / len(accounts)

    on_beat_calls = calls["oracle"] - polls(oracle) + polls(on_beat)
    on_beat_fewer = 1 - on_beat_calls / calls["fixed"]
    oracle_fewer = 1 - calls["oracle"] / calls["fixed"]
    print(
        f"bound: no policy makes fewer than {calls['oracle']:.1f} calls a day ({oracle_fewer:.0%} fewer)"
        f" with that p95 (the oracle's, measured: {_minutes(p95_oracle)}), even knowing each account's class "
        f"in advance.\n  With its polls confined to the {tick / 60:g}-minute beat, the oracle's best is every "
        f"{_minutes(busy)} for the busier accounts and {_minutes(on_beat[rarest])} for the {rarest} ones: "
        f"{on_beat_calls:.1f} calls, "
        + (f"{on_beat_fewer:.0%} fewer" if on_beat_fewer >= 0.005 else "no fewer than fixed polling")
    )


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--warmup", type=float, default=14.0, help="simulated days before the measured one")
    parser.add_argument("--reads", type=int, default=10, help="merchant reads sampled per account")
    parser.add_argument("--seed", type=int, default=25)
    parser.add_argument("--fraction", type=float, help="DRAFT_POLL_QUIET_FRACTION for this run")
    parser.add_argument("--floor", type=float, help="DRAFT_POLL_MIN_INTERVAL for this run (s)")
    parser.add_argument("--ceiling", type=float, help="DRAFT_POLL_MAX_INTERVAL for this run (s)")
    parser.add_argument("--tick", type=float, help="the cadence's beat for this run (s); fixed polling stays at 15 min")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _child_environment(args: argparse.Namespace) -> dict[str, str]:
    """Settings for the simulation's own process: no database or broker is touched, the secrets are throwaway."""
    from cryptography.fernet import Fernet

    env = dict(os.environ, DJANGO_SETTINGS_MODULE="wxplatform.settings", DEV_ENV_FILE="", PYTHONPATH=str(ROOT))
    env.update(
        {
            "SECRET_KEY": uuid.uuid4().hex * 2,
            "TOKEN_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "WECHAT_COMPONENT_APPID": "wxbenchpolling00000",
            "WECHAT_COMPONENT_APPSECRET": uuid.uuid4().hex,
            "WECHAT_COMPONENT_TOKEN": "benchpolling",
            "WECHAT_COMPONENT_AES_KEY": "a" * 43,
        }
    )
    for option, name in (("fraction", "QUIET_FRACTION"), ("floor", "MIN_INTERVAL"), ("ceiling", "MAX_INTERVAL")):
        if getattr(args, option) is not None:
            env[f"DRAFT_POLL_{name}"] = str(getattr(args, option))
    return env


def main(argv: list[str] | None = None) -> None:
    # In a process of its own: `python -m bench` runs the benches in one process, and the others configure
    # Django for their own databases after this one.
    argv = sys.argv[1:] if argv is None and __name__ == "__main__" else (argv or [])
    args = _arguments(argv)
    if args.child:
        simulate(args)
        return
    command = [sys.executable, str(Path(__file__).resolve()), "--child", *argv]
    subprocess.run(command, cwd=ROOT, env=_child_environment(args), check=True)


if __name__ == "__main__":
    main()
