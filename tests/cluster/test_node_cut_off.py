"""A worker host is cut off (its link down for 60 s, nobody told) mid-run and comes back: the run finishes
correctly (the chunks it held are handed to the other hosts after the visibility timeout; what it writes late
is refused, since those chunks are done), and the host consumes again without a restart: it runs chunks of
the next run.

A beat sends the stalled-run sweep, as in production. kombu's Redis transport takes a message off the queue
with BRPOP, so a message is lost when the reply to that BRPOP never reaches the worker: the host's BRPOP, held
in its kernel through the cut, reached Redis when the link came back, and the worker had meanwhile dropped
that connection as stale (kombu's BRPOP check). Without the sweep (`drafts.sweep_jobs`) that run never
finished (docs/cluster.md)."""

from __future__ import annotations

import time

import pytest

from tests.cluster.checks import (
    VISIBILITY_TIMEOUT,
    assert_synced_once,
    broker_unacked,
    chunk_in_flight,
    chunks_done,
    chunks_run_by,
    failover_settings,
    start_run,
    wait_finished,
)
from tests.cluster.cluster import WORKERS, Cluster, wait_for
from tests.cluster.report import record

pytestmark = pytest.mark.cluster

CUT_SECONDS = 60
# The sweep every 6 s (the beat's minute in production) queues again the chunks of a run without progress for
# 30 s (DRAFT_SYNC_STALL_TIMEOUT, 600 s in production): above a chunk's hard time limit (25 s), so no chunk still
# running is queued again, and well inside the waits below.
SWEEP_EVERY = 6
STALL_TIMEOUT = 30


def test_a_worker_host_cut_off_for_a_minute_rejoins_and_nothing_is_counted_twice(cluster: Cluster) -> None:
    settings = failover_settings(cluster) | {"DRAFT_SYNC_STALL_TIMEOUT": str(STALL_TIMEOUT)}
    with cluster.scenario("cut", **settings) as scenario:
        scenario.ops("web", "beat-only", "--task", "drafts.sweep_jobs", "--every", str(SWEEP_EVERY))
        beat = scenario.start_beat("web")
        workers = {host: scenario.start_worker(host) for host in WORKERS}
        victim = workers["w3"]

        run = start_run(scenario)
        wait_for(
            lambda: chunks_done(scenario, run) >= run.chunks_total // 4 and chunk_in_flight(victim),
            timeout=300, what="a quarter of the run done and a chunk in flight on w3", every=0.05,
        )  # fmt: skip
        cluster.net.cut("w3")
        cut_at = time.monotonic()
        try:
            time.sleep(CUT_SECONDS)
        finally:
            cluster.net.restore("w3")
        run = wait_finished(scenario, run, timeout=VISIBILITY_TIMEOUT + 300)
        after_cut = time.monotonic() - cut_at
        assert_synced_once(scenario, cluster, run)
        assert victim.alive(), victim.output()[-4000:]
        chunks_before = chunks_run_by(victim)

        # Back on the network, the same process answers through the broker again...
        try:
            rejoined = wait_for(
                lambda: scenario.ops("web", "ping", "w3")["answered"],
                timeout=120,
                what="w3 to answer through the broker",
            )
        except AssertionError as timed_out:
            raise AssertionError(f"{timed_out}; w3's log ends:\n{victim.output()[-6000:]}") from None
        # ...and takes work: the next run reaches it.
        second = start_run(scenario, after=run.id)
        second = wait_finished(scenario, second, timeout=300)
        assert (second.changed, second.unchanged, second.skipped, second.failed) == (0, len(cluster.expected), 0, 0)
        assert chunks_run_by(victim) > chunks_before, victim.output()[-4000:]
        # Two runs, two fetches per account, one snapshot (the count did not change).
        assert dict(scenario.sql("SELECT quota_used, count(*) FROM tenants_tenant GROUP BY quota_used")) == {
            2: len(cluster.expected)
        }
        assert scenario.sql("SELECT count(*) FROM drafts_draftsnapshot") == [(len(cluster.expected),)]
        wait_for(lambda: broker_unacked(cluster, scenario) == 0, timeout=60, what="every message acknowledged")

        sweeps = beat.output().count("Sending due task cluster: drafts.sweep_jobs")
        stalled = sum(worker.output().count("draft sync run stalled") for worker in workers.values())

    record(
        "a worker host cut off",
        f"w3's link down {CUT_SECONDS} s mid-run; the run finished {after_cut:.1f} s after the cut "
        f"({run.seconds:.1f} s in all); w3 answered again {rejoined:.0f} s after the run and ran "
        f"{chunks_run_by(victim) - chunks_before} of the next run's {second.chunks_total} chunks "
        f"({second.seconds:.1f} s) without a restart; {stalled} of {sweeps} sweeps found a stalled run",
    )
