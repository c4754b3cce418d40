"""The chaos suite's equipment: real processes to break (a private Redis, a TCP proxy in front of PostgreSQL,
the web app under gunicorn), the scale knob, a database fingerprint and the report table.

Nothing here is a stand-in: the Redis is a redis-server, the proxy forwards real PostgreSQL connections and
cuts them at the socket, the API is the WSGI app served by gunicorn in its own processes.

    CHAOS_SCALE=long   (make chaos) more tenants, more rounds, more fuzzing; default "bounded" (make test)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import requests

ROOT = Path(__file__).resolve().parents[2]
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"

T = TypeVar("T")

# --- Scale -------------------------------------------------------------------------------------------

LONG = os.environ.get("CHAOS_SCALE", "bounded").strip().lower() == "long"


def scaled(bounded: T, long: T) -> T:
    """The bounded value in `make test`, the long one in `make chaos`."""
    return long if LONG else bounded


# --- Waiting -----------------------------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str, every: float = 0.05) -> None:
    """Polls `condition`; the timeout only bounds a hung run, it is not what the test measures."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def assert_worker_alive(worker: Any) -> None:
    """A worker that died (or logged an unrecoverable error) fails the scenario: a later run finishing the
    work does not excuse it, since in production nothing restarts the work a dead worker held."""
    output = worker.output()
    assert worker.process is not None and worker.process.poll() is None, f"the worker died:\n{output[-4000:]}"
    assert "Unrecoverable error" not in output, output[-4000:]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- A private Redis ---------------------------------------------------------------------------------


class RedisServer:
    """A redis-server of our own, on a free port, with its data in a temporary directory. It persists every
    write (AOF, fsync always), so that a stop and start on the same port is a restart, not a wipe."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="chaos-redis-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20) -> None:
        self.process = subprocess.Popen(
            [
                REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "no",
                "--logfile", str(self.dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        wait_for(self.ping, timeout=timeout, what="redis-server to answer PING")

    def ping(self) -> bool:
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        """A clean shutdown (SIGTERM): Redis flushes its AOF and exits; clients see the connection drop."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(20)

    def restart(self) -> None:
        self.stop()
        self.start()
        self.restarts += 1

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# --- A TCP proxy that can cut the database off -------------------------------------------------------


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target (PostgreSQL, Redis). `cut()` closes the listener and resets every
    open connection, as a database restart does to its clients; `stall()` resets them too but keeps accepting
    new ones and never answers them, as a database host that stopped answering does (a client waits for its
    connect timeout); `silence()` closes the listener and holds every byte of the open connections without
    closing them, as a link that went down does (TCP delivers what was held once it is back); `restore()`
    forwards again on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.cuts = 0
        self.connections_cut = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="chaos-tcp-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._stalled = False
        self._flowing = asyncio.Event()

    def start(self) -> TcpProxy:
        self._thread.start()
        self.restore()
        return self

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    def restore(self) -> None:
        self._stalled = False
        if self._server is None:
            self._run(self._listen())
        self._loop.call_soon_threadsafe(self._flowing.set)

    def silence(self) -> None:
        self._run(self._silence())
        self.cuts += 1

    def stall(self) -> None:
        self._stalled = True
        self.connections_cut += self._run(self._abort_open())
        self.cuts += 1

    def cut(self) -> None:
        self.connections_cut += self._run(self._cut())
        self.cuts += 1

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._flowing.set)  # held bytes go nowhere: their connections are reset
        with contextlib.suppress(Exception):
            self._run(self._cut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)

    async def _cut(self) -> int:
        if self._server is not None:
            self._server.close()
            self._server = None
        return await self._abort_open()

    async def _silence(self) -> None:
        self._flowing.clear()
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _abort_open(self) -> int:
        writers, self._writers = list(self._writers), set()
        for writer in writers:
            writer.transport.abort()
        return len(writers) // 2

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self._stalled:
            # Accepted, never forwarded nor answered: the client's bytes are read and dropped until it gives up.
            self._writers.add(client_writer)
            with contextlib.suppress(OSError):
                while await client_reader.read(65536):
                    pass
            self._writers.discard(client_writer)
            client_writer.transport.abort()
            return
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers.update((client_writer, server_writer))
        await asyncio.gather(
            self._pipe(client_reader, server_writer), self._pipe(server_reader, client_writer), return_exceptions=True
        )
        self._writers.difference_update((client_writer, server_writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            # One side closed or broke: so does the other, as with a direct connection.
            writer.transport.abort()


# --- The web app under gunicorn ----------------------------------------------------------------------


class ApiServer:
    """The WSGI app in its own gunicorn processes, with its own environment (database URL, Redis URL)."""

    def __init__(self, env: dict[str, str], *, workers: int = 2, threads: int = 8, args: tuple[str, ...] = ()) -> None:
        self.args = args
        self.port = free_port()
        self.env = env
        self.workers = workers
        self.threads = threads
        self.log = Path(tempfile.mkstemp(prefix="chaos-gunicorn-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> ApiServer:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable, "-m", "gunicorn", "wxplatform.wsgi:application",
                    "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers),
                    "--threads", str(self.threads), "--timeout", "120", "--graceful-timeout", "5",
                    *self.args,
                ],
                cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"gunicorn exited:\n{self.output()[-4000:]}")
            try:
                return requests.get(f"{self.url}/healthz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_for(ready, timeout=timeout, what="gunicorn to answer /healthz", every=0.1)
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


# --- Database fingerprint ----------------------------------------------------------------------------


def database_fingerprint() -> dict[str, str]:
    """A digest of every row of every table, per table: equal fingerprints mean nothing was written."""
    from django.db import connection

    digests: dict[str, str] = {}
    with connection.cursor() as cursor:
        for table in sorted(connection.introspection.table_names(cursor)):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608 - names from the catalog
            rows = sorted(repr(row) for row in cursor.fetchall())
            digests[table] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    return digests


def wechat_requests(control: Any) -> int:
    """Every request the sandbox's WeChat endpoints received, whatever they answered (the report's "requests")."""
    return sum(int(endpoint["calls"]) for endpoint in control.counters()["endpoints"].values())


def changed_tables(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(t for t in before.keys() | after.keys() if before.get(t) != after.get(t))


# --- Report ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    scenario: str
    requests: int
    faults: str
    correct: int | None
    total: int | None
    lost: int
    duplicated: int
    server_errors: int = 0


ROWS: list[Row] = []
NOTES: list[str] = []

_HEADER = ("scenario", "requests", "faults injected", "tenants correct/total", "lost", "duplicated", "5xx")


def record(row: Row) -> Row:
    """Adds a scenario's outcome to the table printed at the end of the session (also printed at once)."""
    ROWS.append(row)
    print(f"\nchaos: {' | '.join(_cells(row))}", flush=True)
    return row


def note(text: str) -> None:
    """A line printed under the table (details a scenario wants in CI logs)."""
    NOTES.append(text)
    print(f"\nchaos: {text}", flush=True)


def _cells(row: Row) -> tuple[str, ...]:
    tenants = f"{row.correct}/{row.total}" if row.total is not None else "-"
    return (
        row.scenario,
        str(row.requests),
        row.faults,
        tenants,
        str(row.lost),
        str(row.duplicated),
        str(row.server_errors),
    )


def render(rows: list[Row]) -> str:
    table = [_HEADER, *(_cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(_HEADER))]

    def line(cells: tuple[str, ...]) -> str:
        return " | ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    rule = "-+-".join("-" * w for w in widths)
    notes = (
        "requests: calls WeChat (the sandbox) received, or, for fuzzers, requests sent; lost: eligible tenants "
        "without their true count at the end; duplicated: snapshots, run counts, quota calls or token refreshes "
        "beyond one each; 5xx: answers other than 503 during an outage."
    )
    return "\n".join([line(table[0]), rule, *(line(cells) for cells in table[1:]), "", *NOTES, notes])
