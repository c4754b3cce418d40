"""The foundation's promises: fail-fast secrets, documented settings, JSON logs without secrets, compose file."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from wxplatform.core.observability import RedactSecretsFilter, RequestIdFilter, redact

ROOT = Path(__file__).resolve().parents[1]
SECRETS = [
    "SECRET_KEY",
    "TOKEN_ENCRYPTION_KEYS",
    "WECHAT_COMPONENT_APPID",
    "WECHAT_COMPONENT_APPSECRET",
    "WECHAT_COMPONENT_TOKEN",
    "WECHAT_COMPONENT_AES_KEY",
]


def run_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.smoke
@pytest.mark.parametrize("missing", SECRETS)
def test_start_up_without_a_secret_stops_and_names_it(missing: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != missing}
    env["DEBUG"] = "false"

    result = run_check(env)

    assert result.returncode != 0
    assert f"{missing} must be set when DEBUG is off" in result.stderr


@pytest.mark.smoke
def test_start_up_with_every_secret_passes_the_system_check() -> None:
    assert run_check(dict(os.environ, DEBUG="false")).returncode == 0


@pytest.mark.smoke
def test_every_setting_read_from_the_environment_is_documented_in_env_example() -> None:
    settings_source = (ROOT / "wxplatform" / "settings.py").read_text()
    read = set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z][A-Z0-9_]+)"', settings_source))
    read |= set(re.findall(r'_secret\("([A-Z][A-Z0-9_]+)"\)', settings_source))
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))

    assert read, "no settings found: the pattern no longer matches settings.py"
    assert sorted(read - documented) == []


def _record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("t", logging.INFO, __file__, 1, message, args, None)


@pytest.mark.smoke
def test_log_lines_never_carry_tokens() -> None:
    body = '{"authorizer_refresh_token": "R2"}'
    record = _record("GET /cgi-bin/draft/count?access_token=%s&x=1 %s", "SECRET123", body)

    RedactSecretsFilter().filter(record)

    line = record.getMessage()
    assert "SECRET123" not in line and "R2" not in line
    assert line == 'GET /cgi-bin/draft/count?access_token=***&x=1 {"authorizer_refresh_token": "***"}'


@pytest.mark.smoke
def test_redaction_covers_component_credentials() -> None:
    text = '{"component_appsecret": "S", "component_verify_ticket": "T", "component_access_token": "C"}'
    assert redact(text) == (
        '{"component_appsecret": "***", "component_verify_ticket": "***", "component_access_token": "***"}'
    )


@pytest.mark.smoke
@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("GET /api/v1/tenant?api_key=K1&since=2026", "GET /api/v1/tenant?api_key=***&since=2026"),
        ("<WSGIRequest: GET '/metrics?token=K2'>", "<WSGIRequest: GET '/metrics?token=***'>"),
        ("/internal/v1/x?component=wx1&key=K3", "/internal/v1/x?component=wx1&key=***"),
        ("https://h/hook?X-Api-Key=K4#top", "https://h/hook?X-Api-Key=***#top"),
        ("/x?api%5Fkey=K5&password=K6&client_secret=K7", "/x?api%5Fkey=***&password=***&client_secret=***"),
        ("/wechat/component/events?timestamp=1&nonce=2", "/wechat/component/events?timestamp=1&nonce=2"),
    ],
)
def test_every_credential_looking_query_parameter_is_masked(text: str, masked: str) -> None:
    assert redact(text) == masked


@pytest.mark.smoke
def test_a_logged_traceback_is_redacted_too() -> None:
    try:
        raise ConnectionError("Max retries exceeded with url: /cgi-bin/draft/count?access_token=TRACEBACK-SECRET")
    except ConnectionError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())

    RedactSecretsFilter().filter(record)

    line = logging.Formatter("%(message)s").format(record)
    assert "TRACEBACK-SECRET" not in line and "access_token=***" in line


@pytest.mark.smoke
def test_production_logs_are_one_json_object_per_line_with_the_request_id(client, caplog) -> None:  # type: ignore[no-untyped-def]
    from django.conf import settings

    formatter_config = settings.LOGGING["formatters"]["json"]
    from pythonjsonlogger.json import JsonFormatter

    formatter = JsonFormatter(formatter_config["fmt"], rename_fields=formatter_config["rename_fields"])
    record = _record("hello %s", "world")
    RequestIdFilter().filter(record)

    line = formatter.format(record)

    payload = json.loads(line)
    assert "\n" not in line
    assert (payload["message"], payload["level"], payload["request_id"]) == ("hello world", "INFO", "-")


@pytest.mark.smoke
@pytest.mark.django_db
def test_every_response_carries_a_request_id_and_echoes_a_sane_one(client) -> None:  # type: ignore[no-untyped-def]
    generated = client.get("/healthz")["X-Request-ID"]
    echoed = client.get("/healthz", HTTP_X_REQUEST_ID="abc-123")["X-Request-ID"]
    refused = client.get("/healthz", HTTP_X_REQUEST_ID="bad id\nwith newline")["X-Request-ID"]

    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert echoed == "abc-123"
    assert re.fullmatch(r"[0-9a-f]{32}", refused)


@pytest.mark.smoke
def test_docker_compose_file_is_valid(tmp_path: Path) -> None:
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is not installed (make test installs it with apt where it can)")
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    with (tmp_path / ".env").open("a") as env_file:
        env_file.write("\nPOSTGRES_PASSWORD=compose-check\n")

    result = subprocess.run([compose, "config", "-q"], cwd=tmp_path, capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    services = subprocess.run([compose, "config", "--services"], cwd=tmp_path, capture_output=True, text=True)
    assert {"postgres", "redis", "web", "worker", "beat", "migrate"} <= set(services.stdout.split())


@pytest.mark.smoke
def test_docker_compose_refuses_a_deployment_without_the_database_password(tmp_path: Path) -> None:
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is not installed (make test installs it with apt where it can)")
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    (tmp_path / ".env").write_text("")

    result = subprocess.run(
        [compose, "config", "-q"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k != "POSTGRES_PASSWORD"},
    )  # fmt: skip

    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr
