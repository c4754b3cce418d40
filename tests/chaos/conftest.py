"""Fixtures of the chaos suite: the sandbox as WeChat with the fast sync settings, real processes to break,
and the report table printed when the session ends (`make test` and `make chaos` alike)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection

from tests.chaos.harness import ROWS, ApiServer, RedisServer, TcpProxy, render
from tests.fixtures.worker import _worker_env


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if ROWS:
        terminalreporter.section("chaos report")
        terminalreporter.write_line(render(ROWS))


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, to stop and start without disturbing anyone else's Redis."""
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def database_proxy(transactional_db: None) -> Iterator[TcpProxy]:
    """A TCP proxy in front of the test database's server; DATABASE_URL through it with `proxied_database_url`."""
    settings = connection.settings_dict
    proxy = TcpProxy(settings["HOST"] or "127.0.0.1", int(settings["PORT"] or 5432)).start()
    yield proxy
    proxy.close()


def proxied_database_url(proxy: TcpProxy) -> str:
    """The test database's URL, through the proxy."""
    url = _worker_env({})["DATABASE_URL"]
    host_port = url.split("@", 1)[1].split("/", 1)[0]
    return url.replace(f"@{host_port}/", f"@127.0.0.1:{proxy.port}/", 1)


@pytest.fixture
def api_server_factory(transactional_db: None) -> Iterator[Callable[..., ApiServer]]:
    """Starts the web app under gunicorn with the test's environment (database, Redis, sandbox) plus `env`."""
    started: list[ApiServer] = []

    def make(
        *, env: dict[str, str] | None = None, workers: int = 2, threads: int = 8, args: tuple[str, ...] = ()
    ) -> ApiServer:
        server = ApiServer(_worker_env(env or {}), workers=workers, threads=threads, args=args)
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.stop()
