"""What a reviewer expects of the console's and the docs' HTTP face (issue 18, reviewer hardening): the admin
login locked out after repeated failures (django-axes), X-Forwarded-Proto believed only from the configured
proxies, HSTS and the HTTPS redirect behind settings, and a Content-Security-Policy on the admin and the
API docs."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"


@pytest.fixture
def staff() -> Any:
    return get_user_model().objects.create_user("operator", password="right-password-1", is_staff=True)


def login(client: Client, username: str, password: str) -> Any:
    return client.post(LOGIN, {"username": username, "password": password})


def test_the_admin_login_is_locked_out_after_repeated_failures(staff: Any, settings: Any) -> None:
    client = Client(REMOTE_ADDR="198.51.100.20")
    failures = [login(client, "operator", f"wrong-{n}").status_code for n in range(settings.AXES_FAILURE_LIMIT)]

    locked = login(client, "operator", "right-password-1")

    assert failures[:-1] == [200] * (settings.AXES_FAILURE_LIMIT - 1)
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session
    # The lockout is of that username from that address: the same user elsewhere still logs in.
    elsewhere = Client(REMOTE_ADDR="198.51.100.21")
    assert login(elsewhere, "operator", "right-password-1").status_code == 302
    assert "_auth_user_id" in elsewhere.session


def test_forwarded_proto_is_believed_only_from_a_trusted_proxy(settings: Any) -> None:
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000

    spoofed = Client(REMOTE_ADDR="203.0.113.7").get(LOGIN, HTTP_X_FORWARDED_PROTO="https")
    settings.TRUSTED_PROXIES = ["203.0.113.7/32"]
    proxied = Client(REMOTE_ADDR="203.0.113.7").get(LOGIN, HTTP_X_FORWARDED_PROTO="https")

    assert spoofed.status_code == 301 and spoofed["Location"].startswith("https://")
    assert "Strict-Transport-Security" not in spoofed
    assert proxied.status_code == 200
    assert proxied["Strict-Transport-Security"] == "max-age=31536000"


@pytest.mark.parametrize("path", [LOGIN, "/admin/", "/admin/tenants/tenant/", "/api/docs/"])
def test_the_admin_and_the_api_docs_carry_a_content_security_policy(path: str, admin_client: Client) -> None:
    response = (Client() if path == LOGIN else admin_client).get(path)

    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe-eval" not in policy
    # Nothing the policy would block: no inline script and no inline event handler on the page.
    html = response.content.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert not re.search(r"<[^>]+\son[a-z]+=", html)
