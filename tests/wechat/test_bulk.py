"""draft/count fan-out against the sandbox: order, per-item typed errors, and the concurrency bound."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from tests.fixtures.sandbox import Sandbox
from tests.wechat.helpers import closed_port_url, wait_until_answered
from wxplatform.wechat.bulk import DraftCountResult, fetch_draft_counts, fetch_draft_counts_async
from wxplatform.wechat.errors import AccountStateError, QuotaError, TokenError, TransportError
from wxsandbox.state import DRAFT_COUNT_PATH


def outcome(result: DraftCountResult[Any]) -> tuple[Any, ...]:
    """(key, count) for a success, (key, error class, errcode) for a failure."""
    if result.error is None:
        return (result.key, result.total_count)
    assert result.total_count is None
    return (result.key, type(result.error), result.error.errcode)


def test_results_come_back_in_input_order(sandbox: Sandbox) -> None:
    accounts = sandbox.control.bulk_create_authorizers(40, draft_count=(0, 50))
    accounts.reverse()

    results = fetch_draft_counts(
        sandbox.base_url, [(a["appid"], a["authorizer_access_token"]) for a in accounts], concurrency=8
    )

    assert [outcome(r) for r in results] == [(a["appid"], a["draft_count"]) for a in accounts]


def test_each_failure_is_captured_as_its_typed_error_next_to_the_successes(sandbox: Sandbox) -> None:
    control = sandbox.control

    def authorized(**fields: Any) -> dict[str, Any]:
        return control.create_authorizer(authorized=True, **fields)

    ok = authorized(draft_count=3)
    invalidated = authorized()
    control.invalidate_authorizer_tokens(invalidated["appid"])
    expired = authorized()
    control.expire_authorizer_tokens(expired["appid"])
    no_permission = authorized(func_ids=[1, 2])
    quota_spent = authorized()
    control.set_quota_used(quota_spent["appid"], 1000)
    revoked = authorized()
    control.revoke(revoked["appid"])
    items = [
        ("ok", ok["authorizer_access_token"]),
        ("invalidated", invalidated["authorizer_access_token"]),
        ("expired", expired["authorizer_access_token"]),
        ("no_permission", no_permission["authorizer_access_token"]),
        ("quota_spent", quota_spent["authorizer_access_token"]),
        ("revoked", revoked["authorizer_access_token"]),
        ("unknown", "not-a-token"),
        ("ok_again", ok["authorizer_access_token"]),
    ]

    results = fetch_draft_counts(sandbox.base_url, items)

    assert [outcome(r) for r in results] == [
        ("ok", 3),
        ("invalidated", TokenError, 40001),
        ("expired", TokenError, 42001),
        ("no_permission", AccountStateError, 61007),
        ("quota_spent", QuotaError, 45009),
        ("revoked", AccountStateError, 61003),
        ("unknown", TokenError, 40001),
        ("ok_again", 3),
    ]
    assert results[4].error is not None
    assert results[4].error.errmsg.startswith("reach max api daily quota limit rid: ")


@pytest.mark.parametrize(
    ("fault", "errmsg", "status"),
    [("http_500", "HTTP 500", 500), ("http_503", "HTTP 503", 503), ("malformed", "malformed body", 200)],
)
def test_transport_failure_of_one_item_leaves_the_others_intact(
    sandbox: Sandbox, fault: str, errmsg: str, status: int
) -> None:
    accounts = sandbox.control.bulk_create_authorizers(3, draft_count=5)
    sandbox.control.set_faults(rate=1.0, kinds=[fault], endpoints=[DRAFT_COUNT_PATH], max_faults=1)

    # One worker takes the items in order, so the single injected fault lands on the first.
    results = fetch_draft_counts(
        sandbox.base_url, [(a["appid"], a["authorizer_access_token"]) for a in accounts], concurrency=1
    )

    first = results[0].error
    assert isinstance(first, TransportError)
    assert (first.errmsg, first.status, results[0].total_count) == (errmsg, status, None)
    assert [(r.total_count, r.error) for r in results[1:]] == [(5, None), (5, None)]


def test_read_timeout_is_captured_without_the_token(sandbox: Sandbox) -> None:
    accounts = sandbox.control.bulk_create_authorizers(2, draft_count=5)
    sandbox.control.set_faults(
        rate=1.0, kinds=["timeout"], endpoints=[DRAFT_COUNT_PATH], max_faults=1, timeout_seconds=1.0
    )

    results = fetch_draft_counts(
        sandbox.base_url,
        [(a["appid"], a["authorizer_access_token"]) for a in accounts],
        concurrency=1,
        read_timeout=0.2,
    )

    error = results[0].error
    assert isinstance(error, TransportError)
    assert error.errmsg == "read timeout"
    assert accounts[0]["authorizer_access_token"] not in repr(error)
    assert (results[1].total_count, results[1].error) == (5, None)
    wait_until_answered(sandbox.control, DRAFT_COUNT_PATH, 2)


def test_unreachable_wechat_gives_every_item_a_connection_error() -> None:
    items = [("a", "TOKEN-A"), ("b", "TOKEN-B")]

    results = fetch_draft_counts(closed_port_url(), items)

    assert [(r.key, type(r.error), r.error and r.error.errmsg) for r in results] == [
        ("a", TransportError, "connection error: Connection refused"),
        ("b", TransportError, "connection error: Connection refused"),
    ]


def test_token_is_sent_verbatim_and_never_read_as_extra_query_parameters(sandbox: Sandbox) -> None:
    account = sandbox.control.create_authorizer(authorized=True, draft_count=9)
    smuggled = "x&access_token=" + account["authorizer_access_token"]

    results = fetch_draft_counts(
        sandbox.base_url, [("smuggled", smuggled), ("real", account["authorizer_access_token"])]
    )

    assert [outcome(r) for r in results] == [("smuggled", TokenError, 40001), ("real", 9)]


def test_no_more_than_concurrency_requests_are_ever_in_flight(sandbox: Sandbox) -> None:
    accounts = sandbox.control.bulk_create_authorizers(24, draft_count=1)
    sandbox.control.set_latency(0.05, endpoint=DRAFT_COUNT_PATH)
    in_flight = {"now": 0, "max": 0}

    async def started(session: object, context: SimpleNamespace, params: object) -> None:
        in_flight["now"] += 1
        in_flight["max"] = max(in_flight["max"], in_flight["now"])

    async def ended(session: object, context: SimpleNamespace, params: object) -> None:
        in_flight["now"] -= 1

    async def run() -> list[DraftCountResult[str]]:
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(started)
        trace.on_request_end.append(ended)
        trace.on_request_exception.append(ended)
        # A connector allowing far more than the bound: only the fan-out itself limits concurrency here.
        connector = aiohttp.TCPConnector(limit=100)
        async with aiohttp.ClientSession(connector=connector, trace_configs=[trace]) as session:
            return await fetch_draft_counts_async(
                sandbox.base_url,
                [(a["appid"], a["authorizer_access_token"]) for a in accounts],
                concurrency=4,
                session=session,
            )

    results = asyncio.run(run())

    assert in_flight == {"now": 0, "max": 4}
    assert [r.total_count for r in results] == [1] * 24


def test_own_session_runs_requests_in_parallel_but_within_the_bound(sandbox: Sandbox) -> None:
    accounts = sandbox.control.bulk_create_authorizers(12, draft_count=2)
    sandbox.control.set_latency(0.2, endpoint=DRAFT_COUNT_PATH)
    items = [(a["appid"], a["authorizer_access_token"]) for a in accounts]

    started = time.monotonic()
    results = fetch_draft_counts(sandbox.base_url, items, concurrency=3)
    elapsed = time.monotonic() - started

    assert [r.total_count for r in results] == [2] * 12
    # 12 calls of 0.2 s, 3 at a time: at least 4 rounds (0.8 s), far from the 2.4 s of one at a time.
    assert 0.8 <= elapsed < 2.0
    assert sandbox.control.counters()["endpoints"][DRAFT_COUNT_PATH]["calls"] == 12


def test_blocking_form_works_from_a_worker_thread(sandbox: Sandbox) -> None:
    account = sandbox.control.create_authorizer(authorized=True, draft_count=4)

    with ThreadPoolExecutor(max_workers=1) as pool:
        results = pool.submit(fetch_draft_counts, sandbox.base_url, [(1, account["authorizer_access_token"])]).result()

    assert results == [DraftCountResult(key=1, total_count=4, error=None)]


def test_blocking_form_refuses_to_run_inside_an_event_loop() -> None:
    async def inside_loop() -> None:
        fetch_draft_counts("http://127.0.0.1:1", [("a", "t")])

    with pytest.raises(RuntimeError, match="running event loop"):
        asyncio.run(inside_loop())


def test_no_items_means_no_calls(sandbox: Sandbox) -> None:
    assert fetch_draft_counts(sandbox.base_url, []) == []
    assert DRAFT_COUNT_PATH not in sandbox.control.counters()["endpoints"]


def test_concurrency_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        fetch_draft_counts("http://127.0.0.1:1", [("a", "t")], concurrency=0)
