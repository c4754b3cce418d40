"""WeChat slow to answer while anonymous visitors open the authorization page (issue 28, finding 3): the page
calls WeChat synchronously, so each view holds a web thread while WeChat holds the call. They may hold only a
few (AUTHORIZE_CONCURRENCY per process, the rest answered 503 "busy" with Retry-After at once), so the
merchant API and both push URLs keep answering, the pushes within WeChat's 5 seconds.

gunicorn runs as the image runs it: three workers, with the worker class and threads of gunicorn.conf.py."""

from __future__ import annotations

import runpy
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from urllib.parse import urlencode

import pytest
import requests

from tenants.models import Tenant
from tests.chaos.harness import ROOT, ApiServer, Row, note, record, wait_for
from tests.factories import make_api_key, make_tenant
from tests.fixtures.platform import EVENTS_PATH, sealed_message, signed_push, text_message, ticket_fields
from tests.fixtures.sandbox import Sandbox

pytestmark = [pytest.mark.chaos, pytest.mark.django_db(transaction=True)]

PREAUTH = "/cgi-bin/component/api_create_preauthcode"
IMAGE_WORKERS = 3  # the Dockerfile's --workers
WECHAT_HOLDS = 15.0  # seconds WeChat takes to answer the slow calls
WECHAT_WAITS = 5.0  # seconds WeChat waits for a push's answer: a functional bound (docs/wechat/message-url.md)


def held_in_wechat(sandbox: Sandbox) -> int:
    """Page views whose WeChat call the sandbox is holding (counted when the hold begins)."""
    return int(sandbox.control.counters()["faults_injected"].get("timeout", 0))


def timed(call: Callable[[], requests.Response]) -> tuple[requests.Response, float]:
    started = time.monotonic()
    answer = call()
    return answer, time.monotonic() - started


def test_slow_wechat_holds_a_few_threads_and_the_api_and_pushes_keep_answering(
    wechat_settings: Sandbox, api_server_factory: Callable[..., ApiServer]
) -> None:
    sandbox = wechat_settings
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    threads = int(conf.get("threads", 1))
    args = ("--worker-class", str(conf.get("worker_class", "sync")))
    env = {
        "WECHAT_MP_BASE": sandbox.base_url,
        "WECHAT_OPEN_BASE": sandbox.base_url,
        "AUTHORIZE_RATE_LIMIT": "1000/min",  # every visitor here is 127.0.0.1; the limit is not what is tested
    }
    api = api_server_factory(env=env, workers=IMAGE_WORKERS, threads=threads, args=args)
    sandbox.control.set_event_url(f"{api.url}{EVENTS_PATH}")
    assert sandbox.control.push_ticket()["push"]["status"] == 200
    assert requests.get(f"{api.url}/wechat/authorize", timeout=30).status_code == 200  # the component token
    tenant: Tenant = make_tenant()
    _key, raw_key = make_api_key(tenant)

    sandbox.control.set_faults(rate=1.0, kinds=["timeout"], endpoints=[PREAUTH], timeout_seconds=WECHAT_HOLDS)
    visitors = IMAGE_WORKERS * threads  # as many slow views as the web server has threads
    pool = ThreadPoolExecutor(max_workers=visitors + 3)
    try:
        views: list[Future[requests.Response]] = [
            pool.submit(requests.get, f"{api.url}/wechat/authorize", timeout=60) for _ in range(visitors)
        ]
        # Every view is either held by WeChat or already answered: the web server is as full as it gets.
        wait_for(
            lambda: held_in_wechat(sandbox) + sum(view.done() for view in views) >= visitors,
            timeout=30,
            what="every slow view to be held by WeChat or answered",
        )
        held = held_in_wechat(sandbox)

        # The three at once, each timed from the moment the web server is full.
        ticket_body, ticket_query = signed_push(ticket_fields("ticket@@@while-slow"))
        message_body, message_query = sealed_message(text_message("hello"))
        message_url = f"{api.url}/wechat/authorizers/{tenant.authorizer_appid}/events?{urlencode(message_query)}"
        probes = [
            pool.submit(
                timed,
                lambda: requests.get(
                    f"{api.url}/api/v1/tenant", headers={"Authorization": f"Api-Key {raw_key}"}, timeout=60
                ),
            ),
            pool.submit(
                timed,
                lambda: requests.post(
                    f"{api.url}{EVENTS_PATH}?{urlencode(ticket_query)}", data=ticket_body, timeout=60
                ),
            ),
            pool.submit(timed, lambda: requests.post(message_url, data=message_body, timeout=60)),
        ]
        (tenant_read, read_seconds), (ticket, ticket_seconds), (message, message_seconds) = [
            probe.result() for probe in probes
        ]
        answers = [view.result() for view in views]
    finally:
        pool.shutdown(wait=True)

    busy = [a for a in answers if a.status_code == 503 and "Retry-After" in a.headers]
    note(
        f"slow WeChat: {held} of {visitors} page views held by WeChat, {len(busy)} answered busy; "
        f"API read {read_seconds:.1f} s, ticket push {ticket_seconds:.1f} s, message push {message_seconds:.1f} s"
    )
    record(
        Row(
            scenario="WeChat slow on the authorization page",
            requests=held,
            faults=f"{held} calls held {WECHAT_HOLDS:.0f} s",
            correct=None,
            total=None,
            lost=0,
            duplicated=0,
            server_errors=sum(1 for a in answers if a.status_code >= 500 and a.status_code != 503),
        )
    )
    assert tenant_read.status_code == 200
    assert tenant_read.json()["appid"] == tenant.authorizer_appid
    assert (ticket.status_code, ticket.text) == (200, "success")
    assert message.status_code == 200
    assert ticket_seconds < WECHAT_WAITS
    assert message_seconds < WECHAT_WAITS
    # The views beyond what may wait on WeChat were told at once to come back, and when.
    assert held < visitors
    assert len(busy) >= visitors - held
    assert all(int(a.headers["Retry-After"]) >= 1 for a in busy)
    assert all("busy" in a.text for a in busy)
