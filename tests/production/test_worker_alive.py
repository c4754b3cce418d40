"""`manage.py worker_alive` against real workers: an idle healthy worker passes for longer than the bound,
one whose process is up but whose consumers were cancelled fails within the bound (wxplatform/core/liveness.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from django.conf import settings

from tests.fixtures.worker import ROOT, Worker
from wxplatform.celery import app
from wxplatform.core.liveness import liveness_queue
from wxplatform.core.redis_client import redis_client

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="the probe's ping queue is a Redis list")

MAX_AGE = 8


def probe(env: dict[str, str], node: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "worker_alive", "--node", node, "--max-age", str(MAX_AGE), *extra],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def ping_key(node: str) -> str:
    return f"{settings.CELERY_BROKER_TRANSPORT_OPTIONS['global_keyprefix']}{liveness_queue(node).name}"


@pytest.fixture
def alive_worker(worker_factory: Callable[..., Worker], tmp_path: Path) -> Worker:
    # Its own VAR_DIR, shared with the probes below: the marker lives there.
    return worker_factory(env={"VAR_DIR": str(tmp_path)})


def test_idle_worker_stays_alive_longer_than_the_bound(alive_worker: Worker) -> None:
    # Without the probe's own ping, the marker written at start would be older than the bound by the end.
    started = time.monotonic()
    answers = []
    while time.monotonic() - started < 2.5 * MAX_AGE:
        answers.append(probe(alive_worker.env, alive_worker.nodename))
    assert [a.returncode for a in answers] == [0] * len(answers), answers[-1].stderr
    assert f"Worker {alive_worker.nodename} is alive" in answers[-1].stdout
    # Every ping was taken: nothing is left waiting in the worker's queue.
    assert redis_client().llen(ping_key(alive_worker.nodename)) == 0


def test_worker_that_stopped_consuming_fails_within_the_bound(alive_worker: Worker) -> None:
    node = alive_worker.nodename
    assert probe(alive_worker.env, node).returncode == 0
    # "Process up, not consuming" (celery#8030): the worker stops consuming every queue and lives on.
    for queue in (settings.CELERY_TASK_DEFAULT_QUEUE, liveness_queue(node).name):
        replies = app.control.cancel_consumer(queue, destination=[node], reply=True, timeout=10)
        assert replies == [{node: {"ok": f"no longer consuming from {queue}"}}]
    stalled_at = time.monotonic()

    waiting = []  # pings waiting in the worker's queue after each probe
    answer = probe(alive_worker.env, node)
    waiting.append(redis_client().llen(ping_key(node)))
    while answer.returncode == 0 and time.monotonic() - stalled_at < MAX_AGE + 30:
        answer = probe(alive_worker.env, node)
        waiting.append(redis_client().llen(ping_key(node)))

    assert answer.returncode == 1
    assert f"Worker {node} is stalled: no task taken or finished for" in answer.stderr
    assert f"(bound {MAX_AGE} s)" in answer.stderr
    assert alive_worker.process is not None and alive_worker.process.poll() is None  # the process is still up
    # Nobody took the pings any more, and the probes never left more than one waiting (it expires with the bound).
    assert 1 in waiting and max(waiting) == 1, waiting


def test_a_worker_that_never_ran_here_fails_and_its_ping_expires(tmp_path: Path) -> None:
    node = f"absent-{tmp_path.name}@nowhere"
    env = {**os.environ, "VAR_DIR": str(tmp_path), "LANGUAGE_CODE": "zh-hans"}
    answer = probe(env, node, "--max-age", "60", "--wait", "0")
    assert answer.returncode == 1
    assert f"工作进程 {node} 未在本机启动" in answer.stderr
    # The ping nobody will take expires with the bound instead of staying in Redis for good.
    key = ping_key(node)
    assert redis_client().llen(key) == 1
    assert 0 < redis_client().ttl(key) <= 60
    redis_client().delete(key)
