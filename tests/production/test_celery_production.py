"""Celery for production (docs/reference.md "Celery in production"): every delay a task can be given is shorter than the
broker's visibility timeout, and a worker run as compose runs it leaves no event or reply keys in Redis."""

from __future__ import annotations

import ast
import fcntl
import importlib
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from celery import Celery
from django.conf import settings

from tests.fixtures.worker import ROOT, Worker
from wxplatform.celery import app
from wxplatform.core.backoff import BackoffTask, backoff_delay
from wxplatform.core.liveness import PING_TASK
from wxplatform.core.prefork import RESULT_PIPE_BYTES
from wxplatform.core.redis_client import redis_client

# The production code: the apps and the project package, not the sandbox (never in the image).
SOURCES = ["wxplatform", "tenants", "drafts", "webhooks"]
EXCLUDED = ("migrations", "sandbox")


def source_files() -> Iterator[Path]:
    for package in SOURCES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if not any(part in EXCLUDED for part in path.relative_to(ROOT).parts):
                yield path


def module_of(path: Path) -> Any:
    return importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))


def parameters_of(function: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    a = function.args
    return {arg.arg for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs, *filter(None, [a.vararg, a.kwarg])]}


def longest_delay(expr: ast.expr, namespace: dict[str, Any], passthrough: set[str]) -> float | None:
    """The largest value `expr` (a countdown) can take, or None for a form this test does not know.

    Known forms: a number; None; `backoff_delay(..., cap=X)` (at most X, tested below), where X may be
    `self.backoff_cap` (BackoffTask: the largest backoff_cap of the registered tasks); `random.uniform(a, b)`
    (at most b); `settings.NAME` (its value); a parameter of the enclosing function passed on unchanged (its
    callers are checked where they call with a countdown of their own).
    """
    if isinstance(expr, ast.Constant) and (expr.value is None or isinstance(expr.value, int | float)):
        return float(expr.value or 0)
    if isinstance(expr, ast.Name) and expr.id in passthrough:
        return 0.0
    if isinstance(expr, ast.Attribute) and ast.unparse(expr.value) == "settings":
        # A setting: its value here (settings.py refuses values past their bound, e.g. DRAFT_EVENT_DEBOUNCE <= 60).
        return float(getattr(settings, expr.attr))
    if isinstance(expr, ast.Call):
        name = ast.unparse(expr.func)
        keywords = {k.arg: k.value for k in expr.keywords}
        if name == "backoff_delay" and "cap" in keywords:
            if ast.unparse(keywords["cap"]) == "self.backoff_cap":
                return max(float(getattr(task, "backoff_cap", 0)) for task in registered_tasks())
            return float(eval(compile(ast.Expression(keywords["cap"]), "<cap>", "eval"), namespace))  # noqa: S307
        if name == "random.uniform" and len(expr.args) == 2:
            return float(eval(compile(ast.Expression(expr.args[1]), "<uniform>", "eval"), namespace))  # noqa: S307
    return None


def countdowns() -> list[tuple[str, float | None]]:
    """Every countdown or eta the production code gives (`countdown=`/`eta=` in a call, `countdown = ...`),
    with where it is and its largest value (None: unknown)."""
    found: list[tuple[str, float | None]] = []
    for path in source_files():
        tree = ast.parse(path.read_text(), str(path))
        namespace: dict[str, Any] | None = None
        for function in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]:
            passthrough = parameters_of(function)
            for node in ast.walk(function):
                where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
                given: list[tuple[str, ast.expr]] = []
                if isinstance(node, ast.Call):
                    for keyword in node.keywords:
                        hidden = keyword.arg is None and not (
                            isinstance(keyword.value, ast.Name) and keyword.value.id in passthrough
                        )
                        if hidden and ast.unparse(node.func).endswith(("apply_async", "retry", "enqueue")):
                            found.append((f"{where} (**options may hide a countdown)", None))
                        if keyword.arg in {"countdown", "eta"}:
                            given.append((keyword.arg, keyword.value))
                elif isinstance(node, ast.Assign):
                    given += [(t.id, node.value) for t in node.targets if isinstance(t, ast.Name)]
                for name, value in given:
                    if name == "eta" and not (isinstance(value, ast.Name) and value.id in passthrough):
                        found.append((f"{where} (eta)", None))  # teach this test the bound of an eta first
                    if name == "countdown":
                        namespace = namespace or vars(module_of(path))
                        found.append((where, longest_delay(value, namespace, passthrough)))
    return found


def visibility_timeout() -> float:
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    assert "visibility_timeout" in options, "set the broker's visibility_timeout explicitly"
    return float(options["visibility_timeout"])  # type: ignore[arg-type]


def registered_tasks() -> list[Any]:
    app.loader.import_default_modules()
    return [task for name, task in sorted(app.tasks.items()) if not name.startswith("celery.")]


def longest_run(task: Any) -> float:
    return float(task.time_limit or settings.CELERY_TASK_TIME_LIMIT)


pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="the visibility timeout is the Redis transport's")


def test_the_scan_finds_the_countdowns_the_code_is_known_to_have() -> None:
    # A scan that found nothing would pass whatever the code did.
    sites = dict(countdowns())
    assert {"tenants/tasks.py", "wxplatform/core/queueing.py", "wxplatform/core/backoff.py", "drafts/events.py"} <= {
        where.split(":")[0] for where in sites
    }
    assert max(v for v in sites.values() if v is not None) == 300.0  # the token refreshes' spread and cap


def test_every_countdown_and_its_task_end_within_the_visibility_timeout() -> None:
    """An ETA task stays unacknowledged from its fetch until it ends (acks_late): with a countdown plus a run
    longer than the visibility timeout, Redis hands it to a second worker and it runs twice."""
    sites = countdowns()
    unknown = [where for where, delay in sites if delay is None]
    assert unknown == [], "countdowns of a form this test cannot bound; teach longest_delay() about them"
    longest_countdown = max(delay for _, delay in sites if delay is not None)
    acks_late = [t for t in registered_tasks() if t.acks_late]
    assert len(acks_late) > 10
    for task in acks_late:
        assert longest_countdown + longest_run(task) < visibility_timeout(), task.name


def test_automatic_retries_wait_less_than_the_visibility_timeout() -> None:
    retried = [t for t in registered_tasks() if getattr(t, "autoretry_for", ())]
    assert retried, "drafts' tasks retry database outages automatically"
    for task in retried:
        # Celery's retry_backoff caps the delay at retry_backoff_max; else a BackoffTask waits at most its
        # backoff_cap, any other task default_retry_delay.
        if getattr(task, "retry_backoff", False):
            delay = task.retry_backoff_max
        elif isinstance(task, BackoffTask):
            delay = task.backoff_cap
        else:
            delay = task.default_retry_delay
        assert delay + longest_run(task) < visibility_timeout(), task.name


def test_a_task_that_may_outlast_the_visibility_timeout_is_not_acks_late() -> None:
    long_tasks = [t.name for t in registered_tasks() if longest_run(t) >= visibility_timeout()]
    assert long_tasks == ["tenants.reconcile_authorizers"]
    assert [t.acks_late for t in registered_tasks() if t.name in long_tasks] == [False]


def test_the_visibility_timeout_exceeds_the_hard_time_limit() -> None:
    assert settings.CELERY_TASK_TIME_LIMIT < visibility_timeout()


def test_every_task_has_time_for_its_soft_limit_while_a_broker_command_holds_the_worker_loop() -> None:
    # An ack to a Redis that went silent holds the worker's event loop for up to the socket timeout; the soft
    # limit must still fall due before the hard one (settings.py refuses the defaults otherwise).
    socket_timeout = settings.CELERY_BROKER_TRANSPORT_OPTIONS["socket_timeout"]
    for task in registered_tasks():
        soft = task.soft_time_limit or settings.CELERY_TASK_SOFT_TIME_LIMIT
        hard = task.time_limit or settings.CELERY_TASK_TIME_LIMIT
        assert hard - soft > socket_timeout, task.name


def test_the_broker_sockets_drop_bytes_unacknowledged_for_the_socket_timeout() -> None:
    # TCP_USER_TIMEOUT: a BRPOP written while the link was down is never delivered late to a connection the
    # worker has given up on (tests/cluster/test_node_cut_off.py, docs/cluster.md).
    with app.connection_for_read() as connection:
        pool = connection.default_channel.client.connection_pool
        redis_connection = pool.get_connection()
        try:
            redis_connection.connect()
            sock = redis_connection._sock
            assert sock is not None
            user_timeout = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT)
            keepalive = sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
        finally:
            pool.release(redis_connection)
    assert (user_timeout, keepalive) == (int(settings.CELERY_BROKER_TRANSPORT_OPTIONS["socket_timeout"] * 1000), 1)


@pytest.mark.parametrize("socket_timeout, refused", [("4", False), ("5", True), ("10", True)])
def test_settings_refuse_a_broker_socket_timeout_as_long_as_the_gap_between_the_time_limits(
    socket_timeout: str, refused: bool
) -> None:
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "wxplatform.settings", "CELERY_TASK_SOFT_TIME_LIMIT": "20",
        "CELERY_TASK_TIME_LIMIT": "25", "CELERY_BROKER_SOCKET_TIMEOUT": socket_timeout,
    }  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    message = (
        f"CELERY_BROKER_SOCKET_TIMEOUT ({socket_timeout} s) must be shorter than the time between "
        "CELERY_TASK_SOFT_TIME_LIMIT and CELERY_TASK_TIME_LIMIT (5 s)"
    )
    assert (result.returncode != 0, message in result.stderr) == (refused, refused), result.stderr[-2000:]


@pytest.mark.parametrize("base, cap", [(2, 60), (1, 10), (20, 300), (0.5, 8)])
def test_backoff_delay_never_exceeds_its_cap(base: float, cap: float) -> None:
    random.seed(0)
    delays = [backoff_delay(attempt, base=base, cap=cap) for attempt in range(1, 40) for _ in range(20)]
    assert max(delays) <= cap
    assert max(delays) > cap / 2  # the cap is reached (half of it fixed, half jitter)


# --- The worker's command line and its keys in Redis -----------------------------------------------------


def compose_service(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"][name]  # type: ignore[no-any-return]


def test_compose_runs_one_node_per_container_and_probes_its_progress() -> None:
    worker = compose_service("worker")
    assert worker["command"][:4] == ["celery", "-A", "wxplatform", "worker"]
    assert {"--without-gossip", "--without-mingle", "--without-heartbeat"} <= set(worker["command"])
    assert not {"-E", "--task-events", "-Q", "--queues"} & set(worker["command"])  # every queue, no events
    assert worker["healthcheck"]["test"] == ["CMD", "python", "manage.py", "worker_alive"]


def event_and_reply_keys(prefix: str) -> dict[str, str]:
    """Keys of Celery events (celeryev) and of remote-control replies under `prefix`, with their types."""
    client = redis_client()
    keys = [k.decode() for k in client.scan_iter(match=f"{prefix}*", count=1000)]
    return {k: client.type(k).decode() for k in keys if "celeryev" in k or "reply.celery.pidbox" in k}


#: Celery's command line reads these when the flags are not given; wxplatform/celery.py defaults them to true.
FEATURE_VARIABLES = ("CELERY_WORKER_WITHOUT_GOSSIP", "CELERY_WORKER_WITHOUT_MINGLE", "CELERY_WORKER_WITHOUT_HEARTBEAT")
PLAIN_WORKER = ["celery", "-A", "wxplatform", "worker", "--loglevel", "INFO", "-c", "2"]
#: The test process imported wxplatform.celery, so its environment holds the defaults already: a worker
#: started with them removed shows that its own import sets them.
AS_THE_PROJECT_LEAVES_IT: dict[str, str | None] = dict.fromkeys(FEATURE_VARIABLES)
FEATURES_TURNED_BACK_ON: dict[str, str | None] = dict.fromkeys(FEATURE_VARIABLES, "false")


@pytest.fixture
def compose_worker(worker_factory: Callable[..., Worker], tmp_path: Path) -> Callable[..., tuple[Worker, str]]:
    def start(command: list[str], env: dict[str, str | None] = AS_THE_PROJECT_LEAVES_IT) -> tuple[Worker, str]:
        # Its own key prefix, so that nothing else in this session writes under it.
        prefix = f"{settings.REDIS_KEY_PREFIX}-w{len(list(tmp_path.iterdir()))}"
        (tmp_path / prefix).mkdir()
        own = {"REDIS_KEY_PREFIX": prefix, "CELERY_QUEUE": f"{prefix}-default", "VAR_DIR": str(tmp_path / prefix)}
        return worker_factory(env=own | env, command=command), prefix

    return start


@pytest.mark.parametrize("command", ["compose", "plain"])
@pytest.mark.django_db(transaction=True)
def test_a_worker_leaves_no_event_or_reply_keys(
    compose_worker: Callable[..., tuple[Worker, str]], command: str
) -> None:
    worker, prefix = compose_worker(compose_service("worker")["command"] if command == "compose" else PLAIN_WORKER)
    # Work for it on the queue a plain `celery -A wxplatform worker` serves (no -Q: CELERY_QUEUE names it).
    # Not the current app: shared tasks sent by later tests of this process must keep using the project's app.
    sender = Celery("sender", broker=settings.REDIS_URL, task_default_queue=f"{prefix}-default", set_as_current=False)
    sender.conf.broker_transport_options = {"global_keyprefix": f"{prefix}:"}
    samples = []
    try:
        for _ in range(6):
            for _ in range(20):
                sender.send_task(PING_TASK, ignore_result=True)
            time.sleep(1)
            samples.append(event_and_reply_keys(prefix))
    finally:
        sender.close()
    deadline = time.monotonic() + 30
    while worker.output().count(f"{PING_TASK}[") < 2 * 120 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert worker.output().count(f"{PING_TASK}[") == 2 * 120  # each received, then succeeded
    assert samples == [{}] * 6


@pytest.mark.django_db(transaction=True)
def test_the_key_check_sees_what_a_worker_with_gossip_leaves(compose_worker: Callable[..., tuple[Worker, str]]) -> None:
    # The control: the same check against a plain worker with gossip, mingle and heartbeats turned back on.
    _, prefix = compose_worker(PLAIN_WORKER, FEATURES_TURNED_BACK_ON)
    keys = event_and_reply_keys(prefix)
    assert keys == {f"{prefix}:_kombu.binding.celeryev": "set"}, keys


def heartbeats_within(prefix: str, seconds: float) -> int:
    """How many worker heartbeats were published under `prefix` within `seconds` (kombu's fanout topics)."""
    pubsub = redis_client().pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe(f"{prefix}:*celeryev*heartbeat*")
    try:
        deadline = time.monotonic() + seconds
        seen = 0
        while (left := deadline - time.monotonic()) > 0:
            if pubsub.get_message(timeout=min(left, 0.5)) is not None:
                seen += 1
        return seen
    finally:
        pubsub.close()


@pytest.mark.parametrize("env, beats", [(AS_THE_PROJECT_LEAVES_IT, False), (FEATURES_TURNED_BACK_ON, True)])
@pytest.mark.django_db(transaction=True)
def test_a_plain_worker_sends_no_heartbeats_unless_they_are_turned_back_on(
    compose_worker: Callable[..., tuple[Worker, str]], env: dict[str, str | None], beats: bool
) -> None:
    # A heartbeat is published from the worker's event loop with retries that wait for the broker: a worker
    # cut off from Redis froze until it was back (tests/cluster/test_node_cut_off.py). Celery sends one
    # every 2 s, so 5 s sees two when they are on.
    _, prefix = compose_worker(PLAIN_WORKER, env)
    assert (heartbeats_within(prefix, 5.0) >= 2) is beats


def pipe_sizes(pid: int) -> list[int]:
    """The capacity of every pipe the process holds open."""
    sizes = []
    for fd in (Path("/proc") / str(pid) / "fd").iterdir():
        if os.readlink(fd).startswith("pipe:"):
            opened = os.open(fd, os.O_RDONLY | os.O_NONBLOCK)
            try:
                sizes.append(fcntl.fcntl(opened, fcntl.F_GETPIPE_SZ))
            finally:
                os.close(opened)
    return sizes


@pytest.mark.django_db(transaction=True)
def test_a_plain_worker_writes_results_into_a_pipe_a_failed_tasks_traceback_fits_in(
    compose_worker: Callable[..., tuple[Worker, str]],
) -> None:
    # A child that blocks writing a result while the event loop is away gets it cut by the time limits that
    # fire when the loop returns: "Unrecoverable error" (wxplatform/core/prefork.py).
    worker, _ = compose_worker(PLAIN_WORKER)
    assert worker.process is not None
    main = worker.process.pid  # the worker's command runs as this process: `python -m celery ...`
    children = [int(pid) for pid in Path(f"/proc/{main}/task/{main}/children").read_text().split()]
    assert len(children) == 2  # -c 2
    assert [RESULT_PIPE_BYTES in pipe_sizes(child) for child in children] == [True, True]
