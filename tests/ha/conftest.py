"""Fixtures of the high-availability tests: a Redis Sentinel deployment of the test's own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ha.sentinel import FIGURES, REDIS_SENTINEL, SentinelCluster


@pytest.fixture
def sentinel_cluster() -> Iterator[SentinelCluster]:
    """One master, one replica, three sentinels on free loopback ports; all killed when the test ends."""
    if not Path(REDIS_SENTINEL).exists():
        pytest.skip("redis-sentinel is not installed (scripts/ensure-test-tools.sh installs it)")
    cluster = SentinelCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("Redis Sentinel failovers")
        for line in FIGURES:
            terminalreporter.write_line(line)
