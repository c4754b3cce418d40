"""Reading a scenario's outcome from its database (through the data host's Unix socket) and the emulator."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tests.cluster.cluster import Cluster, Process, Scenario, wait_for


@dataclass(frozen=True)
class Run:
    id: int
    started_at: datetime
    finished_at: datetime | None
    chunks_total: int
    chunks_done: int
    changed: int
    unchanged: int
    skipped: int
    failed: int

    @property
    def seconds(self) -> float:
        assert self.finished_at is not None
        return (self.finished_at - self.started_at).total_seconds()


def latest_run(scenario: Scenario) -> Run | None:
    rows = scenario.sql(
        "SELECT id, started_at, finished_at, chunks_total, chunks_done, changed, unchanged, skipped, failed "
        "FROM drafts_syncrun WHERE trigger = 'schedule' ORDER BY id DESC LIMIT 1"
    )
    return Run(*rows[0]) if rows else None


def chunks_done(scenario: Scenario, run: Run) -> int:
    return int(
        scenario.sql("SELECT count(*) FROM drafts_syncchunk WHERE run_id = %s AND done_at IS NOT NULL", (run.id,))[0][0]
    )


def start_run(scenario: Scenario, *, after: int = 0) -> Run:
    """Publishes drafts.sync_all from the web host, as beat does; the run once a worker has planned it."""
    scenario.ops("web", "sync-all")
    found: list[Run] = []

    def planned() -> bool:
        run = latest_run(scenario)
        if run is not None and run.id > after:
            found.append(run)
            return True
        return False

    wait_for(planned, timeout=120, what="a worker to plan the run")
    return found[-1]


def wait_finished(scenario: Scenario, run: Run, *, timeout: float) -> Run:
    finished: list[Run] = []

    def done() -> bool:
        current = latest_run(scenario)
        assert current is not None
        if current.id == run.id and current.finished_at is not None:
            finished.append(current)
            return True
        return False

    wait_for(done, timeout=timeout, what=f"run {run.id} to finish", every=0.5)
    return finished[-1]


def expire_tokens(scenario: Scenario, *, every: int, remainder: int) -> list[str]:
    """These accounts' stored access tokens expired a minute ago: the run refreshes each of them first."""
    rows = scenario.sql(
        "UPDATE tenants_tenant SET access_token_expires_at = now() - interval '1 minute' "
        "WHERE id %% %s = %s RETURNING authorizer_appid",
        (every, remainder),
    )
    return sorted(r[0] for r in rows)


def assert_synced_once(scenario: Scenario, cluster: Cluster, run: Run) -> None:
    """Every account's count stored once by this run, with the emulator's value; one snapshot each; the run's
    counters add up; no chunk left undone."""
    n = len(cluster.expected)
    assert run.finished_at is not None
    assert (run.changed, run.unchanged, run.skipped, run.failed) == (n, 0, 0, 0)
    assert run.chunks_done == run.chunks_total
    assert scenario.sql("SELECT count(*) FROM drafts_syncchunk WHERE run_id = %s AND done_at IS NULL", (run.id,)) == [
        (0,)
    ]
    stored = dict(scenario.sql("SELECT authorizer_appid, draft_count FROM tenants_tenant"))
    assert stored == cluster.expected
    # Each account's draft/count calls as this database counted them: one fetch each, counted once.
    assert dict(scenario.sql("SELECT quota_used, count(*) FROM tenants_tenant GROUP BY quota_used")) == {1: n}
    assert scenario.sql("SELECT count(*), count(DISTINCT tenant_id) FROM drafts_draftsnapshot") == [(n, n)]


def counters(scenario: Scenario, cluster: Cluster) -> dict[str, Any]:
    return dict(scenario.ops("web", "counters", "--sandbox", cluster.sandbox_url))


def endpoint_calls(answer: dict[str, Any], path: str) -> int:
    return int(answer["endpoints"].get(path, {}).get("calls", 0))


_CHUNK_DONE = re.compile(r"Task drafts\.sync_chunk\[[0-9a-f-]+\] succeeded")


def chunks_run_by(worker: Process) -> int:
    """sync_chunk tasks the worker finished, from its log."""
    return len(_CHUNK_DONE.findall(worker.output()))


def chunks_per_host(workers: list[Process]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for worker in workers:
        total[worker.host] += chunks_run_by(worker)
    return dict(total)


# A dead or cut-off host's unacknowledged chunks are handed to another worker this long after it took them
# (plus up to CELERY_UNACKED_RESTORE_INTERVAL, 10 s, for a worker's sweep to notice). Production keeps 900 s;
# the scenarios shorten it, with the task time limits below it as production's are (settings.py).
VISIBILITY_TIMEOUT = 30
RESTORE_INTERVAL = 10


def failover_settings(cluster: Cluster) -> dict[str, str]:
    """FAILOVER_SETTINGS, with chunks sized so that every run has 40 (500 accounts each at 20,000 accounts, the
    default size): enough for a host to be caught mid-run at any CLUSTER_ACCOUNTS."""
    return FAILOVER_SETTINGS | {"DRAFT_SYNC_CHUNK_SIZE": str(max(25, len(cluster.expected) // 40))}


FAILOVER_SETTINGS = {
    "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
    "CELERY_UNACKED_RESTORE_INTERVAL": str(RESTORE_INTERVAL),
    "CELERY_TASK_SOFT_TIME_LIMIT": "20",
    "CELERY_TASK_TIME_LIMIT": "25",
    # Shorter than the 5 s between the two limits, as settings.py requires.
    "CELERY_BROKER_SOCKET_TIMEOUT": "4",
}

_RECEIVED = re.compile(r"Task drafts\.sync_chunk\[([0-9a-f-]+)\] received")
_SUCCEEDED = re.compile(r"Task drafts\.sync_chunk\[([0-9a-f-]+)\] succeeded")


def chunk_in_flight(worker: Process) -> bool:
    """The worker has taken a chunk it has not finished."""
    log = worker.output()
    return bool(set(_RECEIVED.findall(log)) - set(_SUCCEEDED.findall(log)))


def broker_unacked(cluster: Cluster, scenario: Scenario) -> int:
    """Messages delivered and not yet acknowledged, in the broker's index (kombu's Redis transport)."""
    prefix = scenario.env["REDIS_KEY_PREFIX"]
    return int(cluster.redis().hlen(f"{prefix}:unacked"))
