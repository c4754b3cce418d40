"""Helpers shared by the sandbox-backed tests of the WeChat boundary."""

from __future__ import annotations

import socket
import time

from wxsandbox.control import SandboxControl


def closed_port_url() -> str:
    """A base URL on which nothing listens: connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def wait_until_answered(control: SandboxControl, path: str, calls: int, *, timeout: float = 5.0) -> None:
    """Wait until the sandbox has answered `calls` requests to `path`.

    A "timeout" fault holds its request open after the client gave up; the sandbox answers it later and counts
    it then. Waiting here keeps that late answer from landing in the next test's counters."""
    deadline = time.monotonic() + timeout
    while control.counters()["endpoints"].get(path, {}).get("calls", 0) < calls:
        if time.monotonic() > deadline:
            raise AssertionError(f"sandbox did not answer {calls} calls to {path} within {timeout}s")
        time.sleep(0.02)
