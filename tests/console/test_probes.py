"""The compose health check probes http://127.0.0.1:8000/readyz while ALLOWED_HOSTS is the public name
(issue 18, Medium 4): probes from the probe networks pass by IP; the host check still holds for anyone
else and for every other page."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture
def public_name_only(settings: Any) -> None:
    settings.ALLOWED_HOSTS = ["wx.example.com"]


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_by_ip_pass_from_loopback(public_name_only: None, path: str, caplog: Any) -> None:
    with caplog.at_level(logging.ERROR):
        response = Client(REMOTE_ADDR="127.0.0.1").get(path, HTTP_HOST="127.0.0.1:8000")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "ok"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_the_host_check_still_holds_for_other_clients(public_name_only: None, path: str) -> None:
    response = Client(REMOTE_ADDR="203.0.113.9").get(path, HTTP_HOST="127.0.0.1:8000")

    assert response.status_code == 400


def test_the_host_check_still_holds_for_other_pages_from_loopback(public_name_only: None) -> None:
    response = Client(REMOTE_ADDR="127.0.0.1").get("/wechat/authorize", HTTP_HOST="127.0.0.1:8000")

    assert response.status_code == 400
