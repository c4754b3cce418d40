"""Redis behind Sentinel (issue 24, part 3): one master, one replica and three sentinels of the test's own
(tests/ha/sentinel.py), the project's processes given REDIS_SENTINELS and REDIS_SENTINEL_MASTER.

A planned switch-over (`SENTINEL FAILOVER`) and a crashed master (SIGKILL) each happen in the middle of a
scheduled sync run served by a real Celery worker, while WeChat's pushes arrive at the web app under gunicorn.
Nothing is lost (every account's count stored once, every chunk done), the worker and the web app reach the new
master without a restart, and every push is answered within WeChat's 5 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from django.db.models import Count

from drafts.models import DraftSnapshot, JobState, SyncChunk, SyncJob, SyncRun
from tenants.models import AuthorizationCode, Tenant
from tests.chaos.harness import ROOT, ApiServer, assert_worker_alive, wait_for
from tests.factories import make_api_key
from tests.fixtures.platform import EVENTS_PATH, signed_push
from tests.fixtures.sandbox import Sandbox
from tests.fixtures.sync import component_ready, sandbox_tenants, worker_env
from tests.fixtures.worker import Worker, _worker_env
from tests.ha.sentinel import FIGURES, SentinelCluster

pytestmark = [pytest.mark.sentinel, pytest.mark.django_db(transaction=True)]

DRAFT_COUNT = "/cgi-bin/draft/count"
# WeChat waits 5 s for a push's answer, then retries the push (docs/wechat/message-url.md).
PUSH_DEADLINE = 5.0

# A long-lived process that reports, for each way the project reaches Redis, the port of the server that
# answered: its own client (probes, throttle, rate limiter), Django's cache, and the Celery broker (through the
# producer pool, whose connections are kept, as a web process's are). The rate limiter's bucket and the API
# throttle's window are written too, so that the test can find them on the master.
_PROBE = """
import json, sys, django
django.setup()
from django.core.cache import cache
from drafts.ratelimit import draft_count_limiter
from wxplatform.core.throttling import window_count
from wxplatform.celery import app
from wxplatform.core.redis_client import redis_client

def broker_port():
    with app.producer_pool.acquire(block=True) as producer:
        return producer.channel.client.info("server")["tcp_port"]

def cache_port():
    cache.set("ha-probe", 1, 60)
    return cache._cache.get_client(write=True).info("server")["tcp_port"]

for _line in sys.stdin:
    answer = {}
    for name, probe in (("client", lambda: redis_client().info("server")["tcp_port"]), ("cache", cache_port),
                        ("broker", broker_port), ("limiter", lambda: draft_count_limiter().reserve(1) * 0),
                        ("throttle", lambda: window_count("ha-probe-window", ttl=60))):
        try:
            answer[name] = probe()
        except Exception as exc:
            answer[name] = type(exc).__name__
    print(json.dumps(answer), flush=True)
"""


class Probe:
    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _PROBE],
            cwd=ROOT,
            env=dict(os.environ, DJANGO_SETTINGS_MODULE="wxplatform.settings", **env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("?\n")
        self.process.stdin.flush()
        return dict(json.loads(self.process.stdout.readline()))

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def probe(sentinel_cluster: SentinelCluster) -> Iterator[Probe]:
    process = Probe(sentinel_cluster.env())
    yield process
    process.close()


def _on(port: int, answer: dict[str, Any]) -> dict[str, Any]:
    return {"client": port, "cache": port, "broker": port, "limiter": 0.0, "throttle": answer.get("throttle")}


@pytest.mark.django_db(transaction=False)
def test_every_redis_connection_follows_the_master_the_sentinels_name(
    sentinel_cluster: SentinelCluster, probe: Probe
) -> None:
    prefix = os.environ["REDIS_KEY_PREFIX"]
    first = probe.ask()
    master = sentinel_cluster.master_port()
    assert first == _on(master, first) and first["throttle"] == 1
    assert sentinel_cluster.master().exists(f"{prefix}:drafts:draft-count-rate") == 1

    old, new = sentinel_cluster.failover()
    # The very next use of each connection is on the new master: nothing was written to the old one, which
    # still answers as a master until the sentinels demote it.
    after_failover = probe.ask()
    assert after_failover == _on(new, after_failover), (old, new, after_failover)
    # The window's counter was replicated before the switch, and counted on the new master.
    assert after_failover["throttle"] == 2

    # The old master rejoins as the new one's replica (the sentinels reconfigure it some 10 s later), so that
    # the next promotion keeps the data.
    sentinel_cluster.wait_replicated()
    old, new = sentinel_cluster.kill_master()
    answers: list[dict[str, Any]] = []

    def settled() -> bool:
        answers.append(probe.ask())
        return answers[-1] == _on(new, answers[-1])

    # The processes reconnect on their own; the bound only stops a hung test.
    wait_for(settled, timeout=15, what="every client to reach the new master", every=0.1)
    assert answers[-1]["throttle"] == 3
    assert sentinel_cluster.master().exists(f"{prefix}:drafts:draft-count-rate") == 1


# --- A failover in the middle of a sync ------------------------------------------------------------------


def _beat_tick(env: dict[str, str], task: str = "drafts.sync_all") -> None:
    """What the beat does: send `task` (drafts.sync_all every 15 minutes, drafts.sweep_jobs every minute), by a
    real `celery call`, through the sentinels."""
    subprocess.run(
        [sys.executable, "-m", "celery", "-A", "wxplatform", "call", task],
        cwd=ROOT,
        env=_worker_env(env),
        check=True,
        capture_output=True,
        timeout=60,
    )


# How often the test sends the sweep while a stalled run finishes: beyond the test's DRAFT_SYNC_STALL_TIMEOUT of
# 5 s, as the beat's minute is a tenth of the 600 s default.
SWEEP_EVERY = 6.0


def _run_finished_with_sweeps(env: dict[str, str], worker: Worker, run: SyncRun, *, sweeps: bool) -> int:
    """Waits up to two minutes for `run` to finish, sending drafts.sweep_jobs every SWEEP_EVERY seconds when
    `sweeps`; returns how many it sent. A run that does not finish fails the test with its chunks and the
    worker's log."""
    deadline = time.monotonic() + 120
    sent = 0
    while time.monotonic() < deadline:
        if sweeps:
            _beat_tick(env, "drafts.sweep_jobs")
            sent += 1
        try:
            wait_for(
                lambda: SyncRun.objects.filter(pk=run.pk, finished_at__isnull=False).exists(),
                timeout=SWEEP_EVERY,
                what="the run to finish",
                every=0.2,
            )
            return sent
        except AssertionError:
            continue
    chunks = list(SyncChunk.objects.filter(run=run).order_by("index").values_list("index", "done_at"))
    requeued_at = SyncRun.objects.values_list("requeued_at", flat=True).get(pk=run.pk)
    raise AssertionError(
        f"the run did not finish in 120 s (requeued at {requeued_at}); chunks: {chunks}\n{worker.output()[-6000:]}"
    )


class Pusher:
    """Sends WeChat's `authorized` push to the web app every `every` seconds, timing each answer."""

    def __init__(self, url: str, every: float = 0.5) -> None:
        self.url = url
        self.every = every
        self.timings: list[float] = []
        self.answers: list[tuple[int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pusher", daemon=True)

    def __enter__(self) -> Pusher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            body, params = signed_push(
                {
                    "AppId": "wx0000sandbox0comp",
                    "CreateTime": int(time.time()),
                    "InfoType": "authorized",
                    "AuthorizerAppid": f"wxsentinelpush{n:04d}",
                    "AuthorizationCode": f"queryauthcode@@@sentinel-{n}",
                    "AuthorizationCodeExpiredTime": int(time.time()) + 600,
                }
            )
            started = time.monotonic()
            try:
                answer = requests.post(f"{self.url}{EVENTS_PATH}", params=params, data=body, timeout=30)
                self.answers.append((answer.status_code, answer.text))
            except requests.RequestException as exc:
                self.answers.append((0, type(exc).__name__))
            self.timings.append(time.monotonic() - started)
            self._stop.wait(self.every)


@pytest.mark.parametrize("fault", ["SENTINEL FAILOVER", "master SIGKILLed"])
def test_a_redis_failover_mid_sync_loses_nothing_and_pushes_are_answered(
    fault: str,
    sync_settings: Sandbox,
    sentinel_cluster: SentinelCluster,
    worker_factory: Callable[..., Worker],
) -> None:
    sandbox = sync_settings
    # The pushes' authorization tasks can then get a component token (and finish at once on the unknown codes).
    component_ready(sandbox)
    count, chunk_size = 90, 6
    tenants = sandbox_tenants(sandbox, count, draft_count=(1, 40))
    truth = {a["appid"]: a["draft_count"] for a in sandbox.control.list_authorizers()}
    asker = tenants[0]
    _key, asker_key = make_api_key(asker)
    # Slow enough that the run spans the failover (15 chunks of 6 at 0.3 s, two at a time).
    sandbox.control.set_latency(0.3, endpoint=DRAFT_COUNT)
    env = worker_env(
        **sentinel_cluster.env(),
        DRAFT_SYNC_CHUNK_SIZE=str(chunk_size),
        DRAFT_SYNC_CONCURRENCY=str(chunk_size),
        DRAFT_SYNC_CHUNKS_IN_FLIGHT="2",
        # A chunk whose worker lost the broker mid-task is handed out again this soon (a test setting).
        CELERY_VISIBILITY_TIMEOUT="3",
        CELERY_UNACKED_RESTORE_INTERVAL="1",
        # A run with no chunk finished for this long has lost its chunk messages: the minute sweep queues its
        # next chunks again (a test setting; 600 s in production).
        DRAFT_SYNC_STALL_TIMEOUT="5",
    )
    worker = worker_factory(concurrency=2, env=env)
    api = ApiServer(_worker_env(env)).start()
    try:
        with Pusher(api.url) as pusher:
            _beat_tick(env)
            wait_for(lambda: SyncChunk.objects.filter(done_at__isnull=False).exists(), timeout=60, what="a chunk")
            run = SyncRun.objects.get()
            old, new = sentinel_cluster.failover() if fault == "SENTINEL FAILOVER" else sentinel_cluster.kill_master()
            promotion = sentinel_cluster.last_promotion_seconds
            assert SyncChunk.objects.filter(run=run, done_at__isnull=True).exists(), "the run ended before the fault"
            resumed = True
            try:
                wait_for(
                    lambda: SyncRun.objects.filter(pk=run.pk, finished_at__isnull=False).exists(),
                    timeout=20,
                    what="the run to finish after the failover",
                    every=0.2,
                )
            except AssertionError:
                # A chunk's successor published to the old master in the moment before the sentinels named the
                # new one is lost with it (docs/deploy/redis-sentinel.md#following-a-failover): the run stalls,
                # and the beat's minute sweep queues its next chunks again.
                resumed = False
            # The same run finishes, stalled or not, with the sweep sent as the beat sends it: again and again. A
            # sweep that lands within DRAFT_SYNC_STALL_TIMEOUT of a chunk's progress (the surviving chain, a chunk
            # redelivered after the visibility timeout) rightly leaves the run alone; the next one queues it.
            sweeps = _run_finished_with_sweeps(env, worker, run, sweeps=not resumed)
        # The web app publishes to the new master and the worker consumes from it: a sync asked for now is done.
        asked = requests.post(
            f"{api.url}/api/v1/draft-count/sync", headers={"Authorization": f"Api-Key {asker_key}"}, timeout=30
        )
        job = SyncJob.objects.get(tenant=asker)
        wait_for(
            lambda: SyncJob.objects.filter(pk=job.pk, state=JobState.SUCCEEDED).exists(),
            timeout=30,
            what="the job asked for after the failover",
        )
    finally:
        api.stop()

    stored = dict(Tenant.objects.filter(pk__in=[t.pk for t in tenants]).values_list("authorizer_appid", "draft_count"))
    wrong = sorted(appid for appid, value in truth.items() if stored.get(appid) != value)
    run.refresh_from_db()
    FIGURES.append(
        f"{fault}: promoted in {promotion:.1f} s; {len(pusher.timings)} pushes, slowest answered in "
        f"{max(pusher.timings) * 1000:.0f} ms; run of {run.chunks_total} chunks "
        + ("finished" if resumed else f"stalled (a chunk message lost), finished after {sweeps} sweep(s)")
        + f"; {len(wrong)} counts wrong"
    )
    assert_worker_alive(worker)
    assert (old != new) and sentinel_cluster.master_port() == new
    assert wrong == []
    assert run.chunks_done == run.chunks_total
    assert not DraftSnapshot.objects.values("tenant").annotate(n=Count("id")).filter(n__gt=1).exists()
    assert asked.status_code == 202, asked.text
    # Every push was answered `success` in time, and recorded (its task is swept in if its publish was lost).
    assert pusher.answers and set(pusher.answers) == {(200, "success")}, set(pusher.answers)
    assert max(pusher.timings) < PUSH_DEADLINE, max(pusher.timings)
    assert AuthorizationCode.objects.filter(authorizer_appid__startswith="wxsentinelpush").count() == len(
        pusher.answers
    )
