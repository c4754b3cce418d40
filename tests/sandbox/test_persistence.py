"""The sandbox's state survives a restart when it has a state file, and only then."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.sandbox.conftest import COMPONENT_APPID, COMPONENT_SECRET
from tests.sandbox.test_command import ROOT, free_port
from wxsandbox.app import SAVER, create_app
from wxsandbox.config import SandboxConfig
from wxsandbox.control import SandboxControl
from wxsandbox.persistence import StateFile
from wxsandbox.server import SandboxServer

DRAFT_COUNT = "/cgi-bin/draft/count"


@contextmanager
def running(path: Path, **config: object) -> Iterator[tuple[str, SandboxControl]]:
    server = SandboxServer(SandboxConfig(ticket_interval=0, state_file=str(path), seed=1, **config))  # type: ignore[arg-type]
    server.start()
    try:
        yield server.base_url, SandboxControl(server.base_url)
    finally:
        server.stop()


def component_token(base_url: str, control: SandboxControl) -> str:
    ticket = control.push_ticket()["ticket"]
    answer = requests.post(
        f"{base_url}/cgi-bin/component/api_component_token",
        json={"component_appid": COMPONENT_APPID, "component_appsecret": COMPONENT_SECRET,
              "component_verify_ticket": ticket},
        timeout=10,
    ).json()  # fmt: skip
    token: str = answer["component_access_token"]
    return token


def test_accounts_tokens_quotas_and_rids_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "sandbox-state.json"
    with running(path) as (base_url, control):
        account = control.create_authorizer(authorized=True, draft_count=6, nickname="留下来")
        control.create_authorizer()  # never authorized
        control.set_quota(account["appid"], used=10, daily_limit=20, clears=3)
        control.send_message(account["appid"], content="hi", from_openid="oFAN0000000000000000000000003")
        component = component_token(base_url, control)
        failed = requests.post(
            f"{base_url}/cgi-bin/component/api_query_auth",
            params={"component_access_token": component},
            json={"component_appid": COMPONENT_APPID, "authorization_code": "nope"},
            timeout=10,
        ).json()
        rid = failed["errmsg"].rsplit(" rid: ", 1)[1]
        before = control.list_authorizers()

    with running(path) as (base_url, control):
        token = account["authorizer_access_token"]
        counted = requests.get(f"{base_url}{DRAFT_COUNT}", params={"access_token": token}, timeout=10).json()
        after = control.list_authorizers()
        rid_answer = requests.post(
            f"{base_url}/cgi-bin/openapi/rid/get", params={"access_token": component}, json={"rid": rid}, timeout=10
        ).json()
        custom = requests.post(
            f"{base_url}/cgi-bin/message/custom/send",
            params={"access_token": token},
            json={"touser": "oFAN0000000000000000000000003", "msgtype": "text", "text": {"content": "still here"}},
            timeout=10,
        ).json()

    assert counted == {"total_count": 6}
    assert [a["appid"] for a in after] == [a["appid"] for a in before]
    restored = next(a for a in after if a["appid"] == account["appid"])
    assert (restored["nickname"], restored["authorizer_refresh_token"]) == (
        "留下来",
        account["authorizer_refresh_token"],
    )
    # 10 before the restart, and the draft/count call after it.
    assert (restored["quota_used"], restored["daily_limits"], restored["quota_clears"]) == (
        {DRAFT_COUNT: 11},
        {DRAFT_COUNT: 20},
        3,
    )
    assert rid_answer["errcode"] == 0
    assert custom == {"errcode": 0, "errmsg": "ok"}


def test_a_seeded_sandbox_does_not_issue_its_old_tokens_again(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    with running(path) as (_, control):
        first = control.create_authorizer(authorized=True)
    with running(path) as (_, control):
        second = control.create_authorizer(authorized=True)
    assert second["appid"] != first["appid"]
    assert second["authorizer_access_token"] != first["authorizer_access_token"]


def test_changes_are_written_in_the_background(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    with running(path, state_save_interval=0.05) as (_, control):
        account = control.create_authorizer(nickname="后台写入")
        deadline = time.monotonic() + 5
        while not (path.exists() and account["appid"] in path.read_text(encoding="utf-8")):
            assert time.monotonic() < deadline, "the state file was not written"
            time.sleep(0.02)
        data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"] == 1
    assert not (tmp_path / "state.json.tmp").exists()


def test_reset_also_clears_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    with running(path) as (_, control):
        control.create_authorizer(appid="wxforgetme")
    assert "wxforgetme" in path.read_text(encoding="utf-8")
    with running(path) as (_, control):
        control.reset()
        assert not path.exists()
    with running(path) as (_, control):
        assert control.list_authorizers() == []


def test_a_missing_file_starts_afresh_and_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wxsandbox.persistence")
    path = tmp_path / "nothing-here.json"
    with running(path) as (_, control):
        assert control.list_authorizers() == []
    assert f"no sandbox state file at {path}: starting afresh" in caplog.text


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ('{"format": 1, "authori', "is not JSON"),
        ("[1, 2]", "is not a JSON object"),
        ('{"format": 1, "component_appid": "wx0000sandbox0comp"}', "does not hold a sandbox state"),
        ('{"format": 99}', "does not hold a sandbox state"),
    ],
)
def test_an_unreadable_file_starts_afresh_and_is_kept_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str, why: str
) -> None:
    path = tmp_path / "state.json"
    path.write_text(content, encoding="utf-8")
    with running(path) as (_, control):
        assert control.list_authorizers() == []
        control.create_authorizer(appid="wxafterwards")
    assert why in caplog.text
    assert (tmp_path / "state.json.corrupt").read_text(encoding="utf-8") == content
    assert "wxafterwards" in path.read_text(encoding="utf-8")


def test_a_file_of_another_component_is_not_loaded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "state.json"
    with running(path) as (_, control):
        control.create_authorizer(appid="wxothercomp")
    with running(path, component_appid="wxanothercomponent") as (_, control):
        assert control.list_authorizers() == []
    assert "it belongs to component 'wx0000sandbox0comp'" in caplog.text


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.json"
    file = StateFile(path)
    file.write('{"old": true}')

    def broken_replace(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        file.write('{"new": true}')
    assert path.read_text(encoding="utf-8") == '{"old": true}'


def test_without_a_state_file_nothing_is_kept() -> None:
    assert SAVER not in create_app(SandboxConfig())


def test_the_command_line_option_keeps_state_across_runs(tmp_path: Path) -> None:
    path = tmp_path / "var" / "sandbox-state.json"

    def run_once() -> list[str]:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "wxsandbox", "--port", str(port), "--ticket-interval", "0",
             "--authorizers", "2", "--state-file", str(path)],
            cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        try:
            control = SandboxControl(f"http://127.0.0.1:{port}")
            control.wait_until_ready(timeout=30)
            appids = [a["appid"] for a in control.list_authorizers()]
        finally:
            process.send_signal(signal.SIGINT)
            process.communicate(timeout=30)
        assert process.returncode == 0
        return appids

    first = run_once()
    second = run_once()
    assert len(first) == 2
    # The demo accounts are not seeded again over the restored ones.
    assert second == first
