"""Start-up cannot be misconfigured silently: web (gunicorn), worker and beat start on `.env.example` as a
provider fills it in, every documented setting in the form it is documented (VAR_DIR and CELERY_QUEUE empty,
TRUSTED_PROXIES as CIDRs), with the commands docker-compose.yml gives them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.conf import settings

from tests.deploy.envfile import ROOT, example_env, free_port, get_from, parse
from tests.fixtures.worker import _database_url

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        **example_env(
            DATABASE_URL=_database_url(),
            REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            # The session's prefix (tests/_env.py), so that this run's queue and keys are its own.
            REDIS_KEY_PREFIX=f"{settings.REDIS_KEY_PREFIX}-startup",
            PROMETHEUS_MULTIPROC_DIR=str(tmp_path),
        ),
    }


class Process:
    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.log = Path(tempfile.mkstemp(prefix="wxp-startup-", suffix=".log")[1])
        with self.log.open("wb") as out:
            self.popen = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            assert self.popen.poll() is None, f"exited with {self.popen.returncode}:\n{self.output()[-4000:]}"
            assert time.monotonic() < deadline, f"no {text!r} within {timeout}s:\n{self.output()[-4000:]}"
            time.sleep(0.2)

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self.log.unlink(missing_ok=True)


@pytest.fixture
def start() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.stop()


def test_env_example_documents_trusted_proxies_as_cidrs() -> None:
    values, _ = parse((ROOT / ".env.example").read_text())
    assert "/" in values["TRUSTED_PROXIES"]


def test_gunicorn_serves_with_env_example_trusted_proxies(env: dict[str, str], start: list[Process]) -> None:
    port = free_port()
    web = Process(
        [sys.executable, "-m", "gunicorn", "wxplatform.wsgi:application", "--workers", "1"], env | {"PORT": str(port)}
    )
    start.append(web)
    web.wait_for("Booting worker")
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            ready = requests.get(f"{base}/readyz", timeout=5)
            break
        except requests.ConnectionError:
            assert time.monotonic() < deadline, web.output()[-4000:]
            time.sleep(0.2)
    assert ready.status_code == 200, ready.text
    host = {"Host": env["ALLOWED_HOSTS"].split(",")[0]}
    # Plain HTTP is redirected to HTTPS (SECURE_SSL_REDIRECT), from a proxy in TRUSTED_PROXIES (127.0.0.1/32)
    # X-Forwarded-Proto: https is believed: the request reaches the API, which asks for a key.
    plain = requests.get(f"{base}/api/v1/tenant", headers=host, allow_redirects=False, timeout=5)
    assert plain.status_code == 301
    assert plain.headers["Location"] == f"https://{host['Host']}/api/v1/tenant"
    proxied = requests.get(
        f"{base}/api/v1/tenant", headers={**host, "X-Forwarded-Proto": "https"}, allow_redirects=False, timeout=5
    )
    assert proxied.status_code == 401, proxied.text
    assert proxied.json()["error"]["code"]
    # From 127.0.0.2, not a trusted proxy, the same header is not believed by Django nor by gunicorn.
    status, headers = get_from("127.0.0.2", f"{base}/api/v1/tenant", {**host, "X-Forwarded-Proto": "https"})
    assert status == 301
    assert headers["Location"].startswith("https://")


def test_worker_and_beat_start_on_env_example(env: dict[str, str], start: list[Process]) -> None:
    worker = Process(
        [sys.executable, "-m", "celery", "-A", "wxplatform", "worker", "--loglevel", "INFO", "--concurrency", "1"], env
    )
    start.append(worker)
    beat = Process(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "wxplatform",
            "beat",
            "--loglevel",
            "INFO",
            "--schedule",
            str(Path(env["HOME"]) / "beat-schedule"),
        ],
        env,
    )
    start.append(beat)
    worker.wait_for(" ready.")
    # The queue is <REDIS_KEY_PREFIX>-default although CELERY_QUEUE is present and empty.
    assert f"{env['REDIS_KEY_PREFIX']}-default" in worker.output()
    beat.wait_for("beat: Starting")
    time.sleep(3)
    assert beat.popen.poll() is None, beat.output()[-4000:]
    assert worker.popen.poll() is None, worker.output()[-4000:]
