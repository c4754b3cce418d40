"""A worker host dies mid-run (every process SIGKILLed at once, as a machine losing power): the run still
finishes, within the documented bound (the chunks it held are handed out again after the broker's visibility
timeout plus one restore sweep), nothing lost, nothing counted twice, no chunk left undone, nothing left
unacknowledged in the broker."""

from __future__ import annotations

import time

import pytest

from tests.cluster.checks import (
    RESTORE_INTERVAL,
    VISIBILITY_TIMEOUT,
    assert_synced_once,
    broker_unacked,
    chunk_in_flight,
    chunks_done,
    failover_settings,
    start_run,
    wait_finished,
)
from tests.cluster.cluster import WORKERS, Cluster, wait_for
from tests.cluster.report import record

pytestmark = pytest.mark.cluster


def test_a_worker_host_killed_mid_run_loses_and_double_counts_nothing(cluster: Cluster) -> None:
    with cluster.scenario("dies", **failover_settings(cluster)) as scenario:
        workers = {host: scenario.start_worker(host) for host in WORKERS}
        victim = workers["w2"]

        run = start_run(scenario)
        # Mid-run, with a chunk in the victim's hands.
        wait_for(
            lambda: chunks_done(scenario, run) >= run.chunks_total // 4 and chunk_in_flight(victim),
            timeout=300, what="a quarter of the run done and a chunk in flight on w2", every=0.05,
        )  # fmt: skip
        done_at_kill = chunks_done(scenario, run)
        killed = cluster.net.kill_host("w2")
        killed_at = time.monotonic()
        assert killed >= 3  # the worker and its two pool processes
        assert not victim.alive()
        # The victim's chunks are held in the broker's unacknowledged index until they are handed out again.
        assert broker_unacked(cluster, scenario) > 0

        # The documented bound: the visibility timeout, one restore sweep, and the rest of the run.
        run = wait_finished(scenario, run, timeout=VISIBILITY_TIMEOUT + RESTORE_INTERVAL + 300)
        after_kill = time.monotonic() - killed_at

        assert_synced_once(scenario, cluster, run)
        wait_for(lambda: broker_unacked(cluster, scenario) == 0, timeout=60, what="every message acknowledged")
        for host in ("w1", "w3"):
            assert workers[host].alive()

    record(
        "a worker host dies",
        f"killed {killed} processes of w2 with {done_at_kill}/{run.chunks_total} chunks done; the run finished "
        f"{after_kill:.1f} s later ({run.seconds:.1f} s in all; visibility timeout {VISIBILITY_TIMEOUT} s)",
    )
