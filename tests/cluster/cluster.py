"""The cluster: seven hosts on one private network (tests/cluster/network.py), each running what a production
host of that role runs.

    data   a PostgreSQL cluster initdb'd into a temporary directory and a redis-server, both listening on
           the host's address (and on Unix sockets in the temporary directory, which the test reads)
    emu    the WeChat emulator (the project's sandbox), 50 ms per call as WeChat from a nearby region
    w1-w3  `celery -A wxplatform worker`, one per host
    web    gunicorn serving the web app; the scenarios' one-off commands (tests/cluster/ops.py) run here

The shared PostgreSQL and Redis of the machine are never used. Each scenario gets a database of its own
(a copy of the seeded template, so every scenario starts from the same accounts) and a Redis key prefix of
its own, and starts its own workers; `Cluster.close()` stops everything and removes every namespace.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from tests.cluster.network import Network

ROOT = Path(__file__).resolve().parents[2]
HOSTS = ["data", "emu", "w1", "w2", "w3", "web"]
WORKERS = ["w1", "w2", "w3"]
PG_PORT, REDIS_PORT, SANDBOX_PORT, WEB_PORT = 5432, 6379, 8100, 8000
TEMPLATE = "cluster_template"
# The emulator's answer time for every WeChat call.
LATENCY = 0.05
# As README "Running on several machines" recommends for production (there 60s): a cut-off worker's open
# transaction, and the row locks it holds, end after this long instead of when its TCP connection dies.
IDLE_IN_TRANSACTION = "15s"


def postgres_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError(f"no PostgreSQL {name} under /usr/lib/postgresql/*/bin")
    return found[-1]


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str, every: float = 0.2) -> float:
    """Polls `condition`; returns the seconds it took. The timeout only bounds a hung run."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)
    return time.monotonic() - started


def _remove_stale_directories() -> None:
    """Temporary directories (a PostgreSQL cluster, logs) of an earlier run that was killed before its cleanup."""
    for directory in Path(tempfile.gettempdir()).glob("wxp-cluster-*"):
        owner = directory / "owner"
        if owner.exists() and not Path(f"/proc/{owner.read_text().strip()}").exists():
            shutil.rmtree(directory, ignore_errors=True)


@dataclass
class Process:
    host: str
    role: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None


@dataclass
class Scenario:
    """One scenario's database, Redis prefix and processes."""

    cluster: Cluster
    name: str
    env: dict[str, str]
    processes: list[Process] = field(default_factory=list)

    @property
    def database(self) -> str:
        return self.name

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self.cluster.sql(query, params, database=self.database)

    def start_worker(self, host: str, *, concurrency: int = 2, timeout: float = 90) -> Process:
        worker = self.spawn(
            host, "worker",
            [sys.executable, "-m", "celery", "-A", "wxplatform", "worker", "-n", f"{host}@%h",
             "-c", str(concurrency), "-l", "INFO"],
        )  # fmt: skip
        wait_for(
            lambda: self._started(worker, b" ready."), timeout=timeout, what=f"the worker on {host} to start", every=0.1
        )
        return worker

    def start_beat(self, host: str) -> Process:
        return self.spawn(host, "beat", [sys.executable, "-m", "celery", "-A", "wxplatform", "beat", "-l", "INFO"])

    def start_web(self, host: str = "web", timeout: float = 90) -> Process:
        address = self.cluster.net.address(host)
        web = self.spawn(
            host, "web",
            [sys.executable, "-m", "gunicorn", "wxplatform.wsgi:application", "--bind", f"{address}:{WEB_PORT}",
             "--workers", "2", "--threads", "4", "--timeout", "60", "--graceful-timeout", "5"],
        )  # fmt: skip
        wait_for(lambda: self._started(web, b"Booting worker"), timeout=timeout, what="gunicorn to start", every=0.1)
        return web

    @staticmethod
    def _started(process: Process, marker: bytes) -> bool:
        if not process.alive():
            raise AssertionError(f"{process.role} on {process.host} exited:\n{process.output()[-4000:]}")
        return marker in process.log.read_bytes()

    def spawn(self, host: str, role: str, argv: list[str], env: dict[str, str] | None = None) -> Process:
        log = self.cluster.dir / f"{self.name}-{role}-{host}-{len(self.processes)}.log"
        host_env = self.env | {"PROMETHEUS_MULTIPROC_DIR": str(self.cluster.metrics_dir(host))} | (env or {})
        process = Process(host, role, self.cluster.net.spawn(host, argv, env=host_env, log=log, cwd=ROOT), log)
        self.processes.append(process)
        return process

    def ops(self, host: str, *args: str) -> Any:
        return self.cluster.ops(host, *args, env=self.env)

    def stop(self) -> None:
        for process in reversed(self.processes):
            self.cluster.net.stop(process.process)


class Cluster:
    def __init__(self, accounts: int) -> None:
        self.accounts = accounts
        _remove_stale_directories()
        self.dir = Path(tempfile.mkdtemp(prefix="wxp-cluster-"))
        (self.dir / "owner").write_text(str(os.getpid()))
        self.net = Network.create(HOSTS)
        self.pg_dir = self.dir / "pg"
        self.expected: dict[str, int] = {}
        self.scenarios: list[Scenario] = []
        self.seed_seconds = 0.0
        from cryptography.fernet import Fernet

        self.encryption_key = Fernet.generate_key().decode()

    # --- addresses -------------------------------------------------------------------------------

    @property
    def sandbox_url(self) -> str:
        return f"http://{self.net.address('emu')}:{SANDBOX_PORT}"

    @property
    def web_url(self) -> str:
        return f"http://{self.net.address('web')}:{WEB_PORT}"

    def database_url(self, name: str) -> str:
        return f"postgres://postgres@{self.net.address('data')}:{PG_PORT}/{name}"

    def metrics_dir(self, host: str) -> Path:
        path = self.dir / "metrics" / host
        path.mkdir(parents=True, exist_ok=True)
        return path

    # --- the data host ---------------------------------------------------------------------------

    def start(self) -> Cluster:
        self._start_postgres()
        self._start_redis()
        self._start_sandbox()
        self._seed()
        return self

    def _start_postgres(self) -> None:
        # PostgreSQL refuses to run as root: the cluster belongs to the postgres user.
        self.pg_dir.mkdir()
        shutil.chown(self.pg_dir, "postgres", "postgres")
        shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(
            ["runuser", "-u", "postgres", "--", postgres_bin("initdb"), "-D", str(self.pg_dir / "data"),
             "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"],
            check=True, capture_output=True,
        )  # fmt: skip
        with (self.pg_dir / "data" / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {self.net.address('data').rsplit('.', 1)[0]}.0/24 trust\n")
        self._pg = self.net.spawn(
            "data",
            ["runuser", "-u", "postgres", "--", postgres_bin("postgres"), "-D", str(self.pg_dir / "data"),
             "-c", f"listen_addresses={self.net.address('data')}", "-c", f"port={PG_PORT}",
             "-c", f"unix_socket_directories={self.pg_dir}", "-c", "max_connections=300",
             "-c", "shared_buffers=128MB", "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off", "-c", f"idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION}"],
            env=dict(os.environ), log=self.dir / "postgres.log",
        )  # fmt: skip
        wait_for(self._postgres_ready, timeout=60, what="PostgreSQL on the data host")

    def _postgres_ready(self) -> bool:
        if self._pg.poll() is not None:
            raise AssertionError((self.dir / "postgres.log").read_text(errors="replace")[-3000:])
        try:
            self.sql("SELECT 1", database="postgres")
        except psycopg.OperationalError:
            return False
        return True

    def sql(self, query: str, params: tuple[Any, ...] = (), *, database: str) -> list[tuple[Any, ...]]:
        """A query on the data host's PostgreSQL, through its Unix socket (the test is outside the network)."""
        with psycopg.connect(
            host=str(self.pg_dir), port=PG_PORT, user="postgres", dbname=database, autocommit=True
        ) as c:
            cursor = c.execute(query, params)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []

    def _start_redis(self) -> None:
        self._redis = self.net.spawn(
            "data",
            [shutil.which("redis-server") or "/usr/bin/redis-server", "--bind", self.net.address("data"),
             "--port", str(REDIS_PORT), "--save", "", "--appendonly", "no", "--protected-mode", "no",
             "--unixsocket", str(self.dir / "redis.sock"), "--dir", str(self.dir)],
            env=dict(os.environ), log=self.dir / "redis.log",
        )  # fmt: skip
        wait_for(lambda: (self.dir / "redis.sock").exists(), timeout=30, what="redis-server on the data host")

    def redis(self) -> Any:
        import redis

        return redis.Redis(unix_socket_path=str(self.dir / "redis.sock"))

    def _start_sandbox(self) -> None:
        self._sandbox = self.net.spawn(
            "emu",
            [sys.executable, "-m", "wxsandbox", "--host", self.net.address("emu"), "--port", str(SANDBOX_PORT),
             "--ticket-interval", "0", "--latency", str(LATENCY), "--seed", "1"],
            env=dict(os.environ, PYTHONPATH=str(ROOT)), log=self.dir / "sandbox.log", cwd=ROOT,
        )  # fmt: skip

    # --- environments ----------------------------------------------------------------------------

    def environment(self, database: str, prefix: str) -> dict[str, str]:
        """What a host's processes are given: the data host's PostgreSQL and Redis, the emulator as WeChat."""
        from wxsandbox.config import SandboxConfig

        component = SandboxConfig()
        inherited = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TZ")}
        return inherited | {
            "PYTHONPATH": str(ROOT),
            "DJANGO_SETTINGS_MODULE": "wxplatform.settings",
            "DEBUG": "false",
            "SECRET_KEY": "cluster-test-secret-key-0123456789abcdef",
            "TOKEN_ENCRYPTION_KEYS": self.encryption_key,
            "DATABASE_URL": self.database_url(database),
            "REDIS_URL": f"redis://{self.net.address('data')}:{REDIS_PORT}/0",
            "REDIS_KEY_PREFIX": prefix,
            "WECHAT_API_BASE": self.sandbox_url,
            "WECHAT_MP_BASE": self.sandbox_url,
            "WECHAT_OPEN_BASE": self.sandbox_url,
            "WECHAT_COMPONENT_APPID": component.component_appid,
            "WECHAT_COMPONENT_APPSECRET": component.component_appsecret,
            "WECHAT_COMPONENT_TOKEN": component.component_token,
            "WECHAT_COMPONENT_AES_KEY": component.component_aes_key,
            "ALLOWED_HOSTS": f"{self.net.address('web')},localhost",
            "HEALTH_CHECK_NETWORKS": "127.0.0.0/8,10.231.0.0/24",
            "SECURE_COOKIES": "false",
            "LANGUAGE_CODE": "en",
            # Back-to-back runs in one scenario must not be answered as "synced moments ago".
            "DRAFT_SYNC_MIN_INTERVAL": "0",
        }

    def ops(self, host: str, *args: str, env: dict[str, str], timeout: float = 900) -> Any:
        out = self.net.run(host, [sys.executable, "-m", "tests.cluster.ops", *args], env=env, cwd=ROOT, timeout=timeout)
        return json.loads(out.strip().splitlines()[-1])

    def _seed(self) -> None:
        """The template every scenario's database is copied from: migrated, N accounts, a verify ticket."""
        self.sql(f'CREATE DATABASE "{TEMPLATE}"', database="postgres")
        started = time.monotonic()
        out = self.dir / "expected.json"
        env = self.environment(TEMPLATE, "cluster-seed")
        wait_for(self._sandbox_ready, timeout=60, what="the emulator")
        self.ops(
            "web", "seed", "--accounts", str(self.accounts), "--sandbox", self.sandbox_url, "--out", str(out), env=env
        )
        self.seed_seconds = time.monotonic() - started
        self.expected = json.loads(out.read_text())

    def _sandbox_ready(self) -> bool:
        # The seed command then waits for it to answer (SandboxControl.wait_until_ready).
        if self._sandbox.poll() is not None:
            raise AssertionError((self.dir / "sandbox.log").read_text(errors="replace")[-3000:])
        return True

    # --- scenarios -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def scenario(self, name: str, **settings: str) -> Iterator[Scenario]:
        """A database copied from the template and a Redis prefix of the scenario's own; its processes are
        stopped when it ends. The emulator's counters start at zero."""
        database = f"{name}_{uuid.uuid4().hex[:6]}"
        self.sql(f'CREATE DATABASE "{database}" TEMPLATE "{TEMPLATE}"', database="postgres")
        scenario = Scenario(self, database, self.environment(database, f"cluster-{database}") | settings)
        self.scenarios.append(scenario)
        self.ops("web", "counters", "--sandbox", self.sandbox_url, "--reset", env=scenario.env)
        try:
            yield scenario
        finally:
            scenario.stop()

    def close(self, *, keep_logs: bool = False) -> Path | None:
        """Stops everything and removes the network; with `keep_logs`, the processes' logs are copied to a
        directory under /tmp first, whose path is returned."""
        for scenario in self.scenarios:
            with contextlib.suppress(Exception):
                scenario.stop()
        self.net.destroy()
        kept = None
        if keep_logs:
            kept = Path(tempfile.mkdtemp(prefix="wxp-cluster-logs-"))
            for log in self.dir.glob("*.log"):
                shutil.copy(log, kept)
        shutil.rmtree(self.dir, ignore_errors=True)
        return kept
