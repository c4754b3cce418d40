"""`manage.py run_wechat_sandbox` runs the sandbox in the foreground until Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

from wxsandbox.control import SandboxControl

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_command_serves_demo_accounts_and_stops_on_ctrl_c() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_wechat_sandbox", "--port", str(port), "--authorizers", "6",
         "--ticket-interval", "0", "--seed", "3"],
        cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        control = SandboxControl(f"http://127.0.0.1:{port}")
        control.wait_until_ready(timeout=30)
        accounts = control.list_authorizers()
        ticket = control.push_ticket()["ticket"]
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)

    assert process.returncode == 0
    assert Counter(a["kind"] for a in accounts) == {"subscription": 2, "service": 2, "mini_program": 2}
    assert sum(11 in a["func_ids"] for a in accounts) == 3
    assert not any(a["authorized"] for a in accounts)
    assert f"WeChat sandbox listening on http://127.0.0.1:{port}" in output
    assert ticket not in output
