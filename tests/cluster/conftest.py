"""The cluster is built once per session (network, data host, emulator, seeded template) and torn down at the
end, even when a scenario fails; each scenario then starts its own workers on its own database copy.

    CLUSTER_ACCOUNTS   accounts seeded (`make cluster-test`: 50,000; CI's bounded run: 20,000)
    CLUSTER_KEEP_LOGS  1: keep every process's log (they are kept anyway when a scenario failed)
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.cluster import Cluster
from tests.cluster.report import ROWS, render


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if ROWS:
        terminalreporter.section("cluster report")
        terminalreporter.write_line(render(ROWS))


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.fail("the cluster tests need root and iproute2 (`ip`); scripts/ensure-test-tools.sh installs it")
    cluster = Cluster(accounts=int(os.environ.get("CLUSTER_ACCOUNTS", "20000")))
    try:
        cluster.start()
        yield cluster
    finally:
        failed = request.session.testsfailed > 0
        kept = cluster.close(keep_logs=failed or os.environ.get("CLUSTER_KEEP_LOGS") == "1")
        if kept is not None:
            print(f"\ncluster logs kept in {kept}")
