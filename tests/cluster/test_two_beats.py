"""Beat started on two hosts (a rollout that starts the new beat before stopping the old, or a second host
given the same command): one holds the schedule lease and sends, the other says it is standby and sends
nothing; when the active host dies, the standby takes over once the lease lapses (wxplatform/core/beat.py)."""

from __future__ import annotations

import re
import time

import pytest

from tests.cluster.cluster import Cluster, Process, wait_for
from tests.cluster.report import record

pytestmark = pytest.mark.cluster

LEASE = 6
EVERY = 2
TASK = "drafts.sweep_jobs"
SENT = re.compile(r"Sending due task cluster: drafts\.sweep_jobs")


def sends(beat: Process) -> int:
    return len(SENT.findall(beat.output()))


def test_two_beats_send_each_entry_once_and_the_standby_takes_over(cluster: Cluster) -> None:
    with cluster.scenario("beats", BEAT_LEASE_SECONDS=str(LEASE)) as scenario:
        scenario.ops("web", "beat-only", "--task", TASK, "--every", str(EVERY))
        scenario.start_worker("w3")
        first = scenario.start_beat("w1")
        wait_for(lambda: "beat is active" in first.output(), timeout=60, what="the first beat to take the lease")
        second = scenario.start_beat("w2")
        wait_for(lambda: "beat is standby" in second.output(), timeout=60, what="the second beat to stand by")

        window_start = sends(first)
        time.sleep(8 * EVERY)
        sent_in_window = sends(first) - window_start
        assert sent_in_window >= 4  # the active beat keeps sending...
        assert sends(second) == 0  # ...and the standby sends nothing
        assert sent_in_window <= 8 + 1

        # The active host dies: its lease is no longer renewed and lapses; the standby takes over.
        cluster.net.kill_host("w1")
        sent_by_first = sends(first)
        took_over = wait_for(
            lambda: "beat is active" in second.output() and sends(second) > 0,
            timeout=LEASE * 4, what="the standby to take over and send",
        )  # fmt: skip
        assert sends(first) == sent_by_first
        time.sleep(4 * EVERY)
        assert sends(second) >= 3
        assert second.alive()

    record(
        "two beats",
        f"the standby sent nothing while the first beat sent {sent_in_window} times in {8 * EVERY} s; "
        f"the first beat's host killed, the standby sent {took_over:.1f} s later (lease {LEASE} s)",
    )
