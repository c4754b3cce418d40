"""Running the sandbox: in a background thread (tests, benchmarks) or in the foreground (demo, command line)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import socket
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from aiohttp import web

from wxsandbox.app import COMPONENTS, STATE, create_app
from wxsandbox.config import SandboxConfig
from wxsandbox.state import CLASSIC_KINDS, SandboxState

logger = logging.getLogger(__name__)

# In-flight requests (a "timeout" fault holds one for 30 s) get this long to finish when the server stops.
_SHUTDOWN_TIMEOUT = 1.0


def _listen(host: str, port: int) -> socket.socket:
    # Binding here, rather than inside aiohttp, gives the caller the real port when it asked for port 0.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def seed_demo_accounts(state: SandboxState, count: int) -> None:
    """Accounts for a demo: the three kinds in turn, every other one without permission set 11.

    They are not authorized yet: the merchant picks one on the consent page."""
    for index in range(count):
        kind = CLASSIC_KINDS[index % len(CLASSIC_KINDS)]
        with_drafts = index % 2 == 0
        state.create_authorizer(
            nickname=f"演示{['订阅号', '服务号', '小程序'][index % 3]}{index + 1:03d}",
            kind=kind,
            func_ids=(1, 11) if with_drafts else (1, 2),
            draft_count=state.rng.randint(0, 50),
            authorized=False,
        )


class SandboxServer:
    """A sandbox listening on host:port, served by its own event loop in a daemon thread."""

    def __init__(self, config: SandboxConfig | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config or SandboxConfig()
        self.host = host
        self.port = port
        self.base_url = ""
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> None:
        """Returns once the server accepts connections; raises if it could not start."""
        if self._thread is not None:
            raise RuntimeError("sandbox already started")
        sock = _listen(self.host, self.port)
        self.port = sock.getsockname()[1]
        self.base_url = _base_url(self.host, self.port)
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, args=(sock,), name="wechat-sandbox", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError("sandbox failed to start") from self._error

    def _run(self, sock: socket.socket) -> None:
        try:
            asyncio.run(self._serve(sock))
        except Exception as exc:  # handed to start(), or logged: a daemon thread has no caller
            if self._ready.is_set():
                logger.exception("sandbox stopped unexpectedly")
            else:
                self._error = exc
                self._ready.set()

    async def _serve(self, sock: socket.socket) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        # No access log: WeChat puts tokens in query strings.
        runner = web.AppRunner(create_app(self.config), access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT)
        await runner.setup()
        try:
            await web.SockSite(runner, sock).start()
            self._ready.set()
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)
        self._thread = None
        self._loop = None

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def run_forever(config: SandboxConfig, *, host: str, port: int, authorizers: int = 0) -> None:
    """Serve in the foreground until Ctrl-C (the management command and `python -m wxsandbox`)."""
    try:
        app = create_app(config)
    except ValueError as exc:
        # A bad --component: the message names its appid and field, never its secret.
        raise SystemExit(str(exc)) from None
    state = app[STATE]
    # A sandbox restored from its state file already has its demo accounts.
    restored = any(not a.test_account for a in state.authorizers.values())
    if authorizers and not restored:
        seed_demo_accounts(state, authorizers)
    sock = _listen(host, port)
    port = sock.getsockname()[1]
    # Never log tokens: the config holds only the component secret, which is not printed.
    tickets = f"every {config.ticket_interval:g}s" if config.ticket_interval > 0 else "on demand only"
    logger.info(
        "WeChat sandbox listening on %s (component %s, event_url %s, message_url %s, tickets %s, "
        "%d accounts, state file %s)",
        _base_url(host, port),
        ", ".join(c.appid for c in app[COMPONENTS]),
        config.event_url or "unset",
        config.message_url or "unset",
        tickets,
        sum(not a.test_account for a in state.authorizers.values()),
        config.state_file or "none (in memory only)",
    )
    web.run_app(app, sock=sock, print=None, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Command-line options shared by `manage.py run_wechat_sandbox` and `python -m wxsandbox`."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--event-url", default=None, help="the platform's authorization event URL")
    parser.add_argument(
        "--ticket-interval", type=float, default=600.0, help="seconds between ticket pushes (0 = on demand)"
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every WeChat answer")
    parser.add_argument("--seed", type=int, default=None, help="seed for tokens and faults")
    parser.add_argument("--authorizers", type=int, default=0, help="demo accounts to create at start")
    parser.add_argument("--message-url", default=None, help="the platform's message-and-event URL, containing $APPID$")
    parser.add_argument(
        "--state-file", default=None, help="keep the sandbox's state in this file across restarts (e.g. var/...)"
    )
    parser.add_argument(
        "--component",
        action="append",
        default=[],
        dest="components",
        metavar="JSON",
        help='one more third-party platform, repeatable: {"appid", "appsecret", "token", "aes_key", '
        '"event_url"?, "message_url"?, "platform_func_ids"?}',
    )


def serve_from_options(options: Mapping[str, Any]) -> None:
    message_url = options.get("message_url")
    if message_url is not None and "$APPID$" not in message_url:
        # WeChat refuses such a configuration too: the URL must say where the authorizer's appid goes
        # (docs/wechat/message-url.md#the-url-and-appid).
        raise SystemExit("--message-url must contain $APPID$, e.g. http://host/wechat/authorizers/$APPID$/events")
    components = []
    for text in options.get("components") or []:
        try:
            spec = json.loads(text)
        except ValueError:
            raise SystemExit(f"--component must be a JSON object, not {text[:40]!r}") from None
        if not isinstance(spec, dict):
            raise SystemExit("--component must be a JSON object")
        components.append(spec)
    config = SandboxConfig(
        components=components,
        event_url=options["event_url"],
        ticket_interval=options["ticket_interval"],
        latency=options["latency"],
        seed=options["seed"],
        message_url=options.get("message_url"),
        state_file=options.get("state_file"),
    )
    run_forever(config, host=options["host"], port=options["port"], authorizers=options["authorizers"])
