"""`make run`'s development environment file (docs/development.md#the-development-environment-file): read by
manage.py in a second terminal, the real environment winning, ignored when DEV_ENV_FILE is empty."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.smoke

ROOT = Path(__file__).resolve().parents[1]
PRINT = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps([s.DEBUG, s.WECHAT_API_BASE, s.WECHAT_MP_BASE, s.WEBHOOK_ALLOW_PRIVATE_TARGETS]))"
)


def settings_in_a_second_terminal(var_dir: Path, **extra: str) -> list[object]:
    # A plain terminal: none of the suite's variables, only what a shell has and what the test adds.
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "VAR_DIR": str(var_dir), **extra}
    env["DJANGO_SETTINGS_MODULE"] = "wxplatform.settings"
    done = subprocess.run([sys.executable, "-c", PRINT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def test_a_command_reads_make_runs_environment_and_the_real_environment_wins(tmp_path: Path) -> None:
    (tmp_path / "dev.env").write_text(
        "# written by make run\nDEBUG=true\nWECHAT_API_BASE=http://127.0.0.1:8100\n"
        "WECHAT_MP_BASE=http://127.0.0.1:8100\nWEBHOOK_ALLOW_PRIVATE_TARGETS=true\n"
    )

    assert settings_in_a_second_terminal(tmp_path) == [True, "http://127.0.0.1:8100", "http://127.0.0.1:8100", True]
    assert settings_in_a_second_terminal(tmp_path, WECHAT_MP_BASE="http://127.0.0.1:9999")[2] == "http://127.0.0.1:9999"


def test_without_the_file_or_with_dev_env_file_empty_the_defaults_are_production_strict(tmp_path: Path) -> None:
    strict = {"SECRET_KEY": "x" * 50, "TOKEN_ENCRYPTION_KEYS": "ZGV2LW9ubHktdG9rZW4ta2V5LWNoYW5nZS1tZS0wMTI=",
              "WECHAT_COMPONENT_APPID": "wx0123456789abcdef", "WECHAT_COMPONENT_APPSECRET": "s",
              "WECHAT_COMPONENT_TOKEN": "t", "WECHAT_COMPONENT_AES_KEY": "a" * 43}  # fmt: skip
    defaults = [False, "https://api.weixin.qq.com", "https://mp.weixin.qq.com", False]
    assert settings_in_a_second_terminal(tmp_path, **strict) == defaults

    (tmp_path / "dev.env").write_text("DEBUG=true\nWECHAT_API_BASE=http://127.0.0.1:8100\n")
    assert settings_in_a_second_terminal(tmp_path, DEV_ENV_FILE="", **strict) == defaults
