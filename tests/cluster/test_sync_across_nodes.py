"""A scheduled run synced by three worker hosts over the network: every account's count stored once, one
snapshot each, the run finishes, every expired token refreshed exactly once (the emulator counts
api_authorizer_token per account), the component token fetched once; the web host answers from the data host."""

from __future__ import annotations

import time

import pytest

from tests.cluster.checks import (
    assert_synced_once,
    chunks_per_host,
    counters,
    endpoint_calls,
    expire_tokens,
    start_run,
    wait_finished,
)
from tests.cluster.cluster import WORKERS, Cluster
from tests.cluster.report import record

pytestmark = pytest.mark.cluster

AUTHORIZER_TOKEN = "/cgi-bin/component/api_authorizer_token"
COMPONENT_TOKEN = "/cgi-bin/component/api_component_token"


def test_three_worker_hosts_sync_every_account_exactly_once(cluster: Cluster) -> None:
    with cluster.scenario("sync") as scenario:
        expired = expire_tokens(scenario, every=100, remainder=1)
        workers = [scenario.start_worker(host) for host in WORKERS]
        scenario.start_web()

        started = time.monotonic()
        run = start_run(scenario)
        run = wait_finished(scenario, run, timeout=900)
        wall = time.monotonic() - started

        assert_synced_once(scenario, cluster, run)
        wechat = counters(scenario, cluster)
        assert wechat["authorizer_token_calls"] == dict.fromkeys(expired, 1)
        assert endpoint_calls(wechat, AUTHORIZER_TOKEN) == len(expired)
        assert endpoint_calls(wechat, COMPONENT_TOKEN) == 1
        per_host = chunks_per_host(workers)
        assert sum(per_host.values()) == run.chunks_total
        assert all(per_host.get(host, 0) > 0 for host in WORKERS), per_host

        # The web host serves from the data host: readiness (database and broker) and a merchant's stored count.
        assert scenario.ops("w1", "get", f"{cluster.web_url}/readyz")["status"] == 200
        appid = next(iter(cluster.expected))
        key = scenario.ops("web", "issue-key", appid)["key"]
        answer = scenario.ops("w2", "get", f"{cluster.web_url}/api/v1/draft-count", "--key", key)
        assert (answer["status"], answer["body"]["total_count"]) == (200, cluster.expected[appid])

    n = len(cluster.expected)
    record(
        "sync across 3 worker hosts",
        f"{n:,} accounts in {run.seconds:.1f} s (planning to last chunk; {wall:.1f} s from publish): "
        f"{n / run.seconds:,.0f} accounts/s; chunks per host {per_host}; {len(expired)} tokens refreshed once each; "
        f"seeded in {cluster.seed_seconds:.1f} s",
    )
