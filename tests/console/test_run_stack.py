"""`make run` as a newcomer meets it: the real run_stack command, its sandbox, gunicorn, worker and beat, on
SQLite and the embedded broker in a VAR_DIR of its own, on free ports."""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from standardwebhooks import Webhook

from tests.fixtures.receiver import Receiver
from wxsandbox.control import SandboxControl

ROOT = Path(__file__).resolve().parents[2]
RUNNING = "The service is running"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stack_env(var_dir: Path, sandbox_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "TEST_DATABASE_NAME"}}
    sandbox = f"http://127.0.0.1:{sandbox_port}"
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        DEBUG="true",
        VAR_DIR=str(var_dir),
        LANGUAGE_CODE="en",
        WECHAT_API_BASE=sandbox,
        WECHAT_MP_BASE=sandbox,
        WECHAT_OPEN_BASE=sandbox,
        PYTHONUNBUFFERED="1",
        # Every process of this stack inherits it: how a test finds what is left (Stack.leftovers).
        WXP_TEST_STACK=str(var_dir),
    )
    return env


def processes_marked(marker: str) -> list[int]:
    """The processes (of this user) whose environment carries WXP_TEST_STACK=marker."""
    needle = f"WXP_TEST_STACK={marker}".encode() + b"\0"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or another user's
            continue
        if needle in environ:
            found.append(int(entry.name))
    return found


class Stack:
    def __init__(self, var_dir: Path, port: int, sandbox_port: int) -> None:
        self.var_dir, self.port, self.sandbox_port = var_dir, port, sandbox_port
        self.log = var_dir.parent / f"run-{time.monotonic_ns()}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.extra: list[str] = []
        self.extra_env: dict[str, str] = {}
        # Started as a shell without job control starts a background command: SIGINT ignored.
        self.sigint_ignored = False

    def command(self) -> list[str]:
        return [sys.executable, str(ROOT / "manage.py"), "run_stack", "--port", str(self.port),
                "--sandbox-port", str(self.sandbox_port), *self.extra]  # fmt: skip

    def start(self) -> None:
        self.log = self.var_dir.parent / f"run-{time.monotonic_ns()}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                self.command(), cwd=ROOT, env={**stack_env(self.var_dir, self.sandbox_port), **self.extra_env},
                stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if self.sigint_ignored else None,
            )  # fmt: skip

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_running(self, timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        while RUNNING not in self.output():
            assert self.process is not None and self.process.poll() is None, self.output()[-3000:]
            assert time.monotonic() < deadline, self.output()[-3000:]
            time.sleep(0.5)
        time.sleep(0.5)  # the summary's last lines
        match = re.search(r"Demo API key \([^)]*\): (\S+)", self.output())
        assert match or "--no-demo" in self.command(), self.output()[-2000:]
        return match.group(1) if match else ""

    def interrupt(self) -> None:
        """Ctrl-C, as the terminal sends it."""
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        self.process.wait(60)

    def leftovers(self, *, within: float = 0) -> list[int]:
        """The stack's processes still running after `within` seconds (zombies excepted)."""
        deadline = time.monotonic() + within
        while True:
            alive = [pid for pid in processes_marked(str(self.var_dir)) if not _zombie(pid)]
            if not alive or time.monotonic() >= deadline:
                return alive
            time.sleep(0.5)

    def kill(self) -> None:
        """Whatever happened, nothing of this stack is left running: run_stack and every process it started."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        for pid in processes_marked(str(self.var_dir)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


@pytest.fixture
def var_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "var"
    folder.mkdir()
    return folder


def run_once(var_dir: Path, port: int, sandbox_port: int) -> tuple[int, str]:
    stack = Stack(var_dir, port, sandbox_port)
    done = subprocess.run(
        stack.command(), cwd=ROOT, env=stack_env(var_dir, sandbox_port), capture_output=True, text=True, timeout=60
    )
    return done.returncode, done.stdout + done.stderr


def test_a_second_instance_in_the_same_checkout_stops_at_once_and_touches_nothing(var_dir: Path) -> None:
    # The first instance holds the lock (here: this test, pretending to be it).
    lock = os.open(var_dir / "run_stack.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(lock, b"4242")
    (var_dir / "metrics").mkdir()
    (var_dir / "metrics" / "counter_web-1.db").write_bytes(b"first instance's counters")
    try:
        code, output = run_once(var_dir, free_port(), free_port())
    finally:
        os.close(lock)

    assert code != 0
    assert "already running in this checkout (process 4242)" in output
    assert "Traceback" not in output
    assert "Migrating" not in output
    # Nothing was migrated, onboarded or deleted.
    assert not (var_dir / "db.sqlite3").exists()
    assert (var_dir / "metrics" / "counter_web-1.db").exists()


def test_a_port_in_use_is_named_in_one_line_at_once(var_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        code, output = run_once(var_dir, port, free_port())

    assert code != 0
    errors = [line for line in output.splitlines() if line.strip()]
    # One line, before anything was started.
    assert len(errors) == 1 and f"Port {port} (web server) cannot be used" in errors[0]
    assert "Traceback" not in output
    assert not (var_dir / "db.sqlite3").exists()


@pytest.fixture
def stack(var_dir: Path) -> Iterator[Stack]:
    running = Stack(var_dir, free_port(), free_port())
    yield running
    running.kill()


def test_restarted_make_run_keeps_its_merchants_replaces_its_demo_key_and_stops_cleanly(stack: Stack) -> None:
    stack.start()
    key = stack.wait_running()
    web = f"http://127.0.0.1:{stack.port}"
    first = requests.get(f"{web}/api/v1/draft-count", headers={"Authorization": f"Api-Key {key}"}, timeout=10)
    assert (first.status_code, first.json()["total_count"]) == (200, 12)
    assert "ineligible on purpose" in stack.output()
    assert "No hostname was supplied" not in stack.output()

    stack.interrupt()
    # Every process stopped on its own SIGTERM (nothing had to be killed after the grace period), and none
    # logged an error on the way out.
    stopping = stack.output().split("Stopping…", 1)[1]
    assert "was killed" not in stopping
    assert "ERROR" not in stopping

    # The sandbox kept its accounts: after a restart the merchants are still authorized, and a fresh sync of the
    # demo service account works (before, the sandbox forgot them and the next sync got 61003).
    stack.start()
    new_key = stack.wait_running()
    headers = {"Authorization": f"Api-Key {new_key}"}
    answer = requests.post(f"{web}/api/v1/draft-count/sync", headers=headers, timeout=10).json()
    job = answer["job"]
    deadline = time.monotonic() + 30
    while job["state"] in ("pending", "running") and time.monotonic() < deadline:
        time.sleep(0.3)
        job = requests.get(job["url"], headers=headers, timeout=10).json()
    assert (job["state"], job["error"]) == ("succeeded", None)
    old = requests.get(f"{web}/api/v1/draft-count", headers={"Authorization": f"Api-Key {key}"}, timeout=10)
    assert (old.status_code, old.json()["error"]["code"]) == (401, "authentication_failed")
    stack.interrupt()
    with sqlite3.connect(stack.var_dir / "db.sqlite3") as db:
        statuses = dict(db.execute("SELECT authorizer_appid, status FROM tenants_tenant").fetchall())
        # Every row, revoked or not: a restart replaces the demo key's row instead of adding a revoked one.
        demo_keys = db.execute("SELECT COUNT(*) FROM tenants_tenantapikey WHERE name = 'make run demo'").fetchone()[0]
    assert set(statuses.values()) == {"active"} and len(statuses) == 4
    assert demo_keys == 1


# Seconds the idle stack is watched: beat sends webhooks.deliver every 10 s, so at least two ticks fall in it.
IDLE_SECONDS = 25
# Lines an idle stack may print in that time (none is expected: routine lines are below WARNING).
IDLE_LINES_AT_MOST = 1


def beat_ticks(var_dir: Path) -> int:
    """How many times beat has sent the webhook delivery entry (django-celery-beat counts each send)."""
    with sqlite3.connect(var_dir / "db.sqlite3") as db:
        row = db.execute(
            "SELECT total_run_count FROM django_celery_beat_periodictask WHERE task = 'webhooks.deliver'"
        ).fetchone()
    return int(row[0]) if row else 0


def test_make_run_ends_its_start_up_with_the_banner_then_stays_quiet_but_shows_warnings(stack: Stack) -> None:
    stack.start()
    key = stack.wait_running()
    time.sleep(3)  # whatever start-up still had to say

    # The banner, demo key and all, is the last block on the screen: nothing of the start-up came after it.
    lines = stack.output().rstrip().splitlines()
    banner = next(i for i, line in enumerate(lines) if RUNNING in line)
    assert lines[-1].startswith("  Try: curl") and key in lines[-1], "\n".join(lines[banner:])
    assert all(line.startswith("  ") for line in lines[banner + 1 :]), "\n".join(lines[banner:])
    # The start-up itself is short: the steps, the demo merchants and the sync's table, not every process's
    # banner, task list and access log.
    assert len(lines) < 60, "\n".join(lines)

    # Idle, with beat sending its entries: (next to) nothing is printed.
    printed, ticks = len(lines), beat_ticks(stack.var_dir)
    time.sleep(IDLE_SECONDS)
    idle = stack.output().rstrip().splitlines()[printed:]
    assert len(idle) <= IDLE_LINES_AT_MOST, "\n".join(idle)
    assert beat_ticks(stack.var_dir) >= ticks + 2

    # What goes wrong is still shown: a refused request is a warning of the web server's.
    web = f"http://127.0.0.1:{stack.port}"
    refused = requests.get(f"{web}/api/v1/draft-count", headers={"Authorization": "Api-Key nope.nope"}, timeout=10)
    assert refused.status_code == 401
    deadline = time.monotonic() + 10
    while "Unauthorized: /api/v1/draft-count" not in stack.output() and time.monotonic() < deadline:
        time.sleep(0.3)
    assert "Unauthorized: /api/v1/draft-count" in stack.output()
    stack.interrupt()


def test_make_run_verbose_shows_every_line_again(stack: Stack) -> None:
    stack.extra = ["--no-demo", "--verbose"]  # make run VERBOSE=1
    stack.start()
    stack.wait_running()

    output = stack.output()
    assert '"GET /readyz HTTP/1.1" 200' in output  # the web server's access log
    assert "[tasks]" in output and "celery beat v" in output  # Celery's banners
    assert "INFO" in output
    stack.interrupt()


SECOND = "wx2c2769f8efd9abc2"
THIRD = "wx0000000000000003"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def manage(stack: Stack, *arguments: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *arguments], cwd=ROOT,
        env=stack_env(stack.var_dir, stack.sandbox_port), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def add_component(stack: Stack, appid: str, *extra: str, secret: str = "s" * 32) -> str:
    return manage(
        stack, "add_component", f"--appid={appid}", f"--secret={secret}", "--token=second", f"--aes-key={AES_KEY}",
        *extra,
    )  # fmt: skip


def test_make_run_comes_up_with_every_platform_added_and_names_one_the_sandbox_cannot_serve(stack: Stack) -> None:
    manage(stack, "migrate", "--verbosity=0")
    add_component(stack, SECOND, "--name=Second entity")
    assert add_component(stack, THIRD, "--name=Old entity", "--inactive") == (
        f"Added platform Old entity ({THIRD}).\nIt is switched off: switch it on in the console to refresh and sync.\n"
    )

    stack.start()
    stack.wait_running()

    web = f"http://127.0.0.1:{stack.port}"
    assert f"Platform Second entity ({SECOND}) is served by the sandbox." in stack.output()
    # The added platform got its own ticket, at its own event URL, so every active platform is ready.
    assert requests.get(f"{web}/readyz", timeout=10).json()["conditions"]["component"] == "ok"
    with sqlite3.connect(stack.var_dir / "db.sqlite3") as db:
        rows = dict(db.execute("SELECT component_appid, ticket_received_at IS NOT NULL FROM component_platform"))
        active = dict(db.execute("SELECT component_appid, active FROM component_platform"))
    assert rows[SECOND] == 1 and rows[THIRD] == 0
    assert active[THIRD] == 0
    stack.interrupt()

    # The platform's secrets change; the sandbox (which keeps its platforms across restarts) still has the old
    # ones: the platform is named with the remedy and left out, and the stack comes up all the same.
    add_component(stack, SECOND, secret="f" * 32)
    stack.start()
    stack.wait_running()
    assert (
        f"Platform Second entity ({SECOND}) is skipped: the sandbox cannot serve it (its secrets changed since the "
        f"sandbox registered it). Switch it off in the console ({web}/admin/component/platform/"
    ) in stack.output()
    stack.interrupt()


def readme_commands(readme: Path) -> list[str]:
    """The manage.py commands of the README's code blocks, as a developer copies them (not those run inside a
    container, which the production sections show)."""
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", readme.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if "manage.py" in line and not line.startswith(("#", "docker", "kubectl"))]


def second_terminal(stack: Stack, command: str) -> subprocess.CompletedProcess[str]:
    # Nothing of the suite's environment: a shell in the checkout. VAR_DIR only because the test's stack has its
    # own (a developer's is var/, the default).
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "VAR_DIR": str(stack.var_dir)}
    return subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


LIST_PATH = "/cgi-bin/component/api_get_authorizer_list"


def sandbox_calls(sandbox: SandboxControl, path: str | None = None) -> int:
    endpoints = sandbox.counters_total()["total"]["endpoints"]
    return sum(entry["calls"] for name, entry in endpoints.items() if path is None or name == path)


def test_every_manage_py_command_of_the_readme_works_as_written_in_a_second_terminal(stack: Stack) -> None:
    commands = readme_commands(ROOT / "README.md")
    # A count synced at start-up is not asked again for a minute; the webhook below needs a second sync now.
    stack.extra_env = {"DRAFT_SYNC_MIN_INTERVAL": "1"}
    # The venv's python, as make install made it: a bare `python` may have no Django.
    venv_form = re.compile(r"(^|\$\()\.venv/bin/python manage\.py ")
    assert len(commands) >= 4 and all(venv_form.search(c) for c in commands), commands
    stack.start()
    key = stack.wait_running()
    sandbox = SandboxControl(f"http://127.0.0.1:{stack.sandbox_port}")
    lists_before = sandbox_calls(sandbox, LIST_PATH)

    outputs = {}
    for command in commands:
        done = second_terminal(stack, command)
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr, done.stderr
        outputs[command.split("manage.py ")[1].split()[0]] = done.stdout

    # They talked to the stack's sandbox (not the real WeChat) and to its database.
    assert sandbox_calls(sandbox, LIST_PATH) > lists_before
    # In Chinese, the default language of a terminal with no LANGUAGE_CODE.
    assert "微信列出 4 个账号" in outputs["reconcile_authorizers"]
    assert outputs["release_check"].rstrip().endswith("通过")
    assert "网络" not in outputs["sync_drafts"]

    # Webhooks can be tried at once: a plain-HTTP receiver on loopback is accepted under make run.
    web = f"http://127.0.0.1:{stack.port}"
    receiver = Receiver()
    try:
        created = requests.post(
            f"{web}/api/v1/webhooks", headers={"Authorization": f"Api-Key {key}"}, timeout=10,
            json={"url": receiver.url("/hook"), "events": ["draft_count.changed"]},
        )  # fmt: skip
        assert created.status_code == 201, created.text
        sandbox.update_authorizer("wxdemo0000000001", draft_count=13)
        time.sleep(1.1)
        synced = requests.post(f"{web}/api/v1/draft-count/sync", headers={"Authorization": f"Api-Key {key}"}, timeout=9)
        assert synced.status_code in (200, 202), synced.text
        delivery = receiver.wait_for(1, timeout=60)[0]
        event = json.loads(delivery.body)
        assert (event["type"], event["data"]["total_count"]) == ("draft_count.changed", 13)
        Webhook(created.json()["secret"]).verify(delivery.body, delivery.headers)
    finally:
        receiver.close() and "network" not in outputs["sync_drafts"].lower()


@pytest.mark.parametrize("how", ["SIGHUP to the terminal's process group", "SIGKILL of run_stack"])
def test_no_process_of_the_stack_outlives_run_stack_however_it_dies(stack: Stack, how: str) -> None:
    stack.extra = ["--no-demo"]
    stack.start()
    stack.wait_running()
    assert stack.process is not None
    # run_stack and its sandbox, gunicorn (master and workers), Celery worker (and its pool) and beat.
    assert len(stack.leftovers()) >= 7

    if how.startswith("SIGHUP"):
        os.killpg(stack.process.pid, signal.SIGHUP)  # the terminal closed
    else:
        stack.process.kill()
    stack.process.wait(30)

    assert stack.leftovers(within=30) == []
    # The ports are free for the next make run.
    for port in (stack.port, stack.sandbox_port):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))


def test_ctrl_c_stops_make_run_even_when_it_was_started_with_sigint_ignored(stack: Stack) -> None:
    """`make run &` from a script (a shell without job control) starts it with SIGINT ignored, which Python keeps:
    Ctrl-C (or a test's SIGINT) must still stop the stack, in order."""
    stack.sigint_ignored = True
    stack.extra = ["--no-demo"]
    stack.start()
    stack.wait_running()

    stack.interrupt()

    assert "Stopping…" in stack.output()
    assert stack.leftovers(within=10) == []
