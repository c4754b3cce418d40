"""The production image, built and run for real (`make image-test`, in CI): the project's unchanged Dockerfile
on a base built here, then exactly the commands docker-compose.yml gives migrate, web, worker and beat, with
.env.example filled in (DEBUG off, every secret set, TRUSTED_PROXIES as CIDRs), against this machine's
PostgreSQL (a fresh database) and Redis (a key prefix of its own). The WeChat emulator runs outside the image,
in this test process; the image must not contain it.

Each check is one test; they share one build and one stack (module fixtures) and run in order. Everything is
stopped and dropped at the end, failures included.
"""

from __future__ import annotations

import json
import re
import shlex
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
import redis
import requests
import yaml

from tests.deploy.engine import LABEL, Engine, progress
from tests.deploy.envfile import ROOT, example_env, free_port, get_from
from tests.deploy.frontproxy import FrontProxy
from tests.fixtures.sandbox import Sandbox
from wxsandbox.control import SandboxControl

pytestmark = pytest.mark.image

IMAGE = "wxplatform:image-test"
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
ADMIN = "postgres://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    engine = Engine()
    try:
        engine.start()
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="module")
def image(engine: Engine) -> str:
    base = engine.base_image()
    started = time.monotonic()
    progress(f"building {IMAGE} from the Dockerfile on {base}")
    common = ["build", "--network", "host", "--build-arg", f"BASE_IMAGE={base}"]
    # The build stage is tagged too, so that pruning stale images keeps its dependency layer (the warm cache).
    for target in (["--target", "build", "-t", f"{IMAGE}-build"], ["-t", IMAGE]):
        built = engine.docker(*common, *target, str(ROOT), check=False, timeout=1800)
        # Without the terminal colours the daemon puts around a failing step's output.
        output = re.sub(r"\x1b\[[0-9;]*m", "", f"{built.stdout[-6000:]}\n{built.stderr[-3000:]}")
        assert built.returncode == 0, f"the image does not build:\n{output}"
    engine.docker("image", "prune", "-f", check=False)
    size = int(engine.docker("image", "inspect", "-f", "{{.Size}}", IMAGE).stdout)
    progress(f"built {IMAGE} in {time.monotonic() - started:.0f} s, {size / 1e6:.0f} MB")
    return IMAGE


@dataclass
class Stack:
    engine: Engine
    run_id: str
    env: dict[str, str]
    env_file: Path
    web_port: int
    proxy: FrontProxy
    sandbox: Sandbox

    def args(self, *, port: int | None = None) -> list[str]:
        """`docker run` options every service shares: host network, the settings, the metrics volume."""
        extra = ["-e", f"PORT={port}"] if port else []
        return [
            "--network", "host", "--label", LABEL, "--env-file", str(self.env_file), *extra,
            "-v", f"wxp-it-{self.run_id}-metrics:/app/var/metrics",
        ]  # fmt: skip

    def start(self, service: str, *, port: int | None = None) -> str:
        name = f"wxp-it-{self.run_id}-{service}"
        command = COMPOSE["services"][service].get("command", [])
        self.engine.docker("run", "-d", "--name", name, *self.args(port=port), IMAGE, *command)
        return name

    def run(self, *command: str, timeout: float = 120) -> tuple[int, str]:
        """A one-off container of the image (what `docker compose run` does): exit code and output."""
        done = self.engine.docker("run", "--rm", *self.args(), IMAGE, *command, check=False, timeout=timeout)
        return done.returncode, done.stdout + done.stderr

    def logs(self, name: str) -> str:
        done = self.engine.docker("logs", name, check=False)
        return done.stdout + done.stderr

    def running(self, name: str) -> bool:
        return self.engine.docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"

    def healthcheck(self, service: str, name: str, timeout: float = 90) -> None:
        """docker-compose.yml's health check of `service`, run in the container until it passes."""
        test = COMPOSE["services"][service]["healthcheck"]["test"]
        # Compose writes a literal $ as $$.
        argv = [part.replace("$$", "$") for part in test[1:]]
        command = ["sh", "-c", argv[0]] if test[0] == "CMD-SHELL" else argv
        deadline = time.monotonic() + timeout
        while True:
            check = self.engine.docker("exec", name, *command, check=False)
            if check.returncode == 0:
                return
            assert self.running(name), f"{service} stopped:\n{self.logs(name)[-6000:]}"
            assert time.monotonic() < deadline, (
                f"{service}'s health check ({shlex.join(command)}) still fails after {timeout} s:\n"
                f"{check.stdout}{check.stderr}\n--- logs ---\n{self.logs(name)[-6000:]}"
            )
            time.sleep(2)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(f"{self.proxy.url}{path}", allow_redirects=False, timeout=30, **kwargs)


@pytest.fixture(scope="module")
def stack(engine: Engine, image: str, sandbox_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    run_id = uuid.uuid4().hex[:8]
    database = f"wxp_image_{run_id}"
    prefix = f"wxp-image-{run_id}"
    web_port = free_port()
    public = "https://wx.example.com"
    env = example_env(
        DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{database}",
        REDIS_URL="redis://127.0.0.1:6379/0",
        REDIS_KEY_PREFIX=prefix,
        WECHAT_API_BASE=sandbox_server.base_url,
        WECHAT_MP_BASE=sandbox_server.base_url,
        WECHAT_OPEN_BASE=sandbox_server.base_url,
        PUBLIC_BASE_URL=public,
        METRICS_TOKEN=uuid.uuid4().hex,
    )
    assert env["DEBUG"] == "false" and "/" in env["TRUSTED_PROXIES"]
    assert env["ALLOWED_HOSTS"] == urlsplit(public).hostname
    env_file = tmp_path_factory.mktemp("image") / "env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in env.items()))
    sandbox = Sandbox(
        base_url=sandbox_server.base_url,
        control=SandboxControl(sandbox_server.base_url),
        config=sandbox_server.config,
    )
    sandbox.control.reset()
    proxy = FrontProxy(f"http://127.0.0.1:{web_port}", urlsplit(public).hostname or "").start()
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        # A run killed before its clean-up left its database (runs take turns on the engine's lock).
        stale = admin.execute("SELECT datname FROM pg_database WHERE datname LIKE 'wxp\\_image\\_%'").fetchall()
        for (name,) in stale:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{database}"')
    progress(f"database {database}, Redis prefix {prefix}, web on port {web_port}, front proxy {proxy.url}")
    stack = Stack(engine, run_id, env, env_file, web_port, proxy, sandbox)
    try:
        yield stack
    finally:
        progress("removing the containers, the database and the Redis keys")
        names = engine.docker("ps", "-aq", "--filter", f"name=wxp-it-{run_id}-", check=False).stdout.split()
        if names:
            engine.docker("rm", "-f", *names, check=False)
        engine.docker("volume", "rm", "-f", f"wxp-it-{run_id}-metrics", check=False)
        proxy.stop()
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)
        env_file.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def services(stack: Stack) -> dict[str, str]:
    progress("migrate")
    code, output = stack.run(*COMPOSE["services"]["migrate"]["command"], timeout=300)
    assert code == 0, f"migrate exited {code}:\n{output[-6000:]}"
    progress("starting web, worker and beat")
    names = {
        "web": stack.start("web", port=stack.web_port),
        "worker": stack.start("worker"),
        "beat": stack.start("beat"),
    }
    stack.healthcheck("web", names["web"])
    progress("web is healthy")
    return names


def test_migrate_then_web_answers_readyz(stack: Stack, services: dict[str, str]) -> None:
    ready = stack.get("/readyz")
    assert ready.status_code == 200, ready.text
    # Straight to gunicorn, as the probe of a load balancer by IP: answered too (HEALTH_CHECK_NETWORKS).
    direct = requests.get(f"http://127.0.0.1:{stack.web_port}/readyz", timeout=10)
    assert direct.status_code == 200, direct.text


def test_admin_static_files_are_served(stack: Stack, services: dict[str, str]) -> None:
    login = stack.get("/admin/login/")
    assert login.status_code == 200, login.text[:2000]
    stylesheets = re.findall(r'href="(/static/[^"]+\.css)"', login.text)
    assert stylesheets, login.text[:2000]
    for path in stylesheets:
        css = stack.get(path)
        assert css.status_code == 200, path
        assert css.headers["Content-Type"].startswith("text/css"), path
        assert len(css.content) > 100, path


def test_forwarding_headers_are_believed_only_from_trusted_proxies(stack: Stack, services: dict[str, str]) -> None:
    # TRUSTED_PROXIES is CIDRs (127.0.0.1/32 among them): through the front proxy HTTPS is believed (the tests
    # above got 200s). From 127.0.0.2, not a proxy, the same X-Forwarded-Proto is dropped: plain HTTP, redirected.
    url = f"http://127.0.0.1:{stack.web_port}/api/v1/tenant"
    host = {"Host": stack.env["ALLOWED_HOSTS"]}
    status, headers = get_from("127.0.0.2", url, {**host, "X-Forwarded-Proto": "https"})
    assert status == 301
    assert headers["Location"] == f"https://{host['Host']}/api/v1/tenant"
    status, _ = get_from("127.0.0.1", url, {**host, "X-Forwarded-Proto": "https"})
    assert status == 401


def test_worker_logs_ready_and_passes_its_health_check(stack: Stack, services: dict[str, str]) -> None:
    deadline = time.monotonic() + 90
    while " ready." not in stack.logs(services["worker"]):
        assert stack.running(services["worker"]), stack.logs(services["worker"])[-6000:]
        assert time.monotonic() < deadline, stack.logs(services["worker"])[-6000:]
        time.sleep(1)
    stack.healthcheck("worker", services["worker"])


def test_beat_starts(stack: Stack, services: dict[str, str]) -> None:
    deadline = time.monotonic() + 60
    while "beat: Starting" not in stack.logs(services["beat"]):
        assert stack.running(services["beat"]), stack.logs(services["beat"])[-6000:]
        assert time.monotonic() < deadline, stack.logs(services["beat"])[-6000:]
        time.sleep(1)


def test_check_deploy_is_clean(stack: Stack, services: dict[str, str]) -> None:
    code, output = stack.run("python", "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert code == 0, output
    assert "System check identified no issues" in output, output


@pytest.mark.parametrize("module", ["wxsandbox", "wxplatform.sandbox"])
def test_the_emulator_is_not_in_the_image(stack: Stack, services: dict[str, str], module: str) -> None:
    code, output = stack.run("python", "-c", f"import {module}")
    assert code != 0, f"{module} is importable inside the image"
    assert "ModuleNotFoundError" in output, output


def test_a_draft_count_travels_end_to_end(stack: Stack, services: dict[str, str]) -> None:
    control = stack.sandbox.control
    public = stack.env["PUBLIC_BASE_URL"]
    # WeChat pushes the ticket to the web container (through the front proxy, as in production).
    control.set_event_url(f"{stack.proxy.url}/wechat/component/events")
    pushed = control.push_ticket()
    assert pushed["push"]["status"] == 200, pushed
    # A merchant authorizes an account that has 7 drafts: page, consent, callback in one browser session.
    account = control.create_authorizer(kind="service", func_ids=[1, 11], draft_count=7)
    page = stack.get("/wechat/authorize")
    assert page.status_code == 200, page.text[:2000]
    link = unescape(re.search(r'id="authorize-pc"[^>]*href="([^"]+)"', page.text).group(1))  # type: ignore[union-attr]
    query = {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}
    answer = control.consent(query["pre_auth_code"], account["appid"], redirect_uri=query["redirect_uri"], push=False)
    assert answer["redirect_url"].startswith(public), answer
    # The browser sends the session cookie back (Secure: it would over HTTPS; the proxy stands for HTTPS here).
    done = stack.get(answer["redirect_url"][len(public) :], cookies=dict(page.cookies))
    assert done.status_code == 200, done.text[:2000]
    key = re.search(r'id="api-key">([^<]+)<', done.text)
    assert key, done.text[:3000]
    auth = {"Authorization": f"Api-Key {unescape(key.group(1))}"}
    # The worker container syncs against the emulator; the merchant API answers the count.
    sync = requests.post(f"{stack.proxy.url}/api/v1/draft-count/sync", headers=auth, timeout=30)
    assert sync.status_code in (200, 202), sync.text
    deadline = time.monotonic() + 120
    while True:
        count = stack.get("/api/v1/draft-count", headers=auth)
        if count.status_code == 200 and count.json().get("total_count") == 7:
            break
        assert time.monotonic() < deadline, (
            f"{count.status_code} {count.text}\n{stack.logs(services['worker'])[-6000:]}"
        )
        time.sleep(1)
    calls = json.dumps(control.counters())
    assert "draft/count" in calls, calls


def test_worker_and_beat_are_still_up(stack: Stack, services: dict[str, str]) -> None:
    for service in ("worker", "beat", "web"):
        assert stack.running(services[service]), stack.logs(services[service])[-6000:]
