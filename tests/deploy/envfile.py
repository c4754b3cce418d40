"""`.env.example` as a provider fills it in: every documented setting in its documented form, the REQUIRED
placeholders given real-looking values. Used by the start-up test (host processes) and the image test
(containers), so both run on exactly what the README tells a provider to copy."""

from __future__ import annotations

import http.client
import secrets
import socket
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
ENV_EXAMPLE = ROOT / ".env.example"

# A value for each placeholder .env.example marks REQUIRED (or leaves for the provider); a new REQUIRED
# variable without one here fails the tests that use this module, by name.
_FILL: dict[str, Callable[[], str]] = {
    "SECRET_KEY": lambda: secrets.token_urlsafe(50),
    "TOKEN_ENCRYPTION_KEYS": lambda: Fernet.generate_key().decode(),
    "WECHAT_COMPONENT_APPID": lambda: "wx0000sandbox0comp",
    "WECHAT_COMPONENT_APPSECRET": lambda: "sandbox-component-secret",
    "WECHAT_COMPONENT_TOKEN": lambda: "sandboxtoken",
    "WECHAT_COMPONENT_AES_KEY": lambda: "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    "POSTGRES_PASSWORD": lambda: secrets.token_urlsafe(16),
}


def parse(text: str) -> tuple[dict[str, str], set[str]]:
    """The assignments of an env file, and the names of the empty ones its comments mark REQUIRED."""
    values: dict[str, str] = {}
    required: set[str] = set()
    # A comment block speaks of the assignments right below it ("# REQUIRED: AppID and AppSecret." above two).
    comment: list[str] = []
    after_assignment = False
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            comment, after_assignment = [], False
        elif stripped.startswith("#"):
            comment = [stripped] if after_assignment else [*comment, stripped]
            after_assignment = False
        elif "=" in stripped:
            name, value = (part.strip() for part in stripped.split("=", 1))
            values[name] = value
            if not value and any("REQUIRED" in c for c in comment):
                required.add(name)
            after_assignment = True
    return values, required


def example_env(**overrides: str) -> dict[str, str]:
    """.env.example with its REQUIRED placeholders filled, then `overrides` (connections, ports)."""
    values, required = parse(ENV_EXAMPLE.read_text())
    for name in sorted(required):
        assert name in _FILL, f"{name} is REQUIRED in .env.example: give it a value in tests/deploy/envfile.py"
        values[name] = _FILL[name]()
    values.update(overrides)
    return values


def get_from(source: str, url: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    """GET from a chosen local source address (e.g. 127.0.0.2, loopback but outside 127.0.0.1/32): a client
    that is not one of TRUSTED_PROXIES. Status and headers."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10, source_address=(source, 0))
    try:
        connection.request("GET", parts.path, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders())
    finally:
        connection.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
