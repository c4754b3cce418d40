"""Fixtures of the high-availability tests: a Redis Sentinel deployment of the test's own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ha.sentinel import REDIS_SENTINEL, SentinelCluster


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
