"""The platform wired to the sandbox: WeChat pushes to a live Django server, settings point at the sandbox."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings as django_settings

from tests.fixtures.sandbox import Sandbox
from wxplatform.wechat.crypto import MessageCrypto, build_xml

EVENTS_PATH = "/wechat/component/events"


@dataclass(frozen=True)
class Platform:
    sandbox: Sandbox
    url: str

    @property
    def control(self) -> Any:
        return self.sandbox.control

    def push_ticket(self) -> str:
        answer = self.control.push_ticket()
        assert answer["push"]["status"] == 200, answer["push"]
        ticket: str = answer["ticket"]
        return ticket


@pytest.fixture
def platform(wechat_settings: Sandbox, live_server: Any, settings: Any) -> Platform:
    """Sandbox + live server; pushes reach /wechat/component/events. No ticket yet: use push_ticket()."""
    settings.PUBLIC_BASE_URL = live_server.url
    wechat_settings.control.set_event_url(f"{live_server.url}{EVENTS_PATH}")
    return Platform(sandbox=wechat_settings, url=live_server.url)


@pytest.fixture
def ready_platform(platform: Platform) -> Platform:
    """The platform holding a verify ticket, as it does minutes after WeChat starts pushing."""
    platform.push_ticket()
    return platform


def signed_push(
    fields: dict[str, str | int],
    *,
    appid: str | None = None,
    token: str | None = None,
    timestamp: int | None = None,
    nonce: str = "1320562132",
) -> tuple[bytes, dict[str, str]]:
    """An encrypted component push as WeChat sends it: (body, query parameters)."""
    appid = appid or django_settings.WECHAT_COMPONENT_APPID
    crypto = MessageCrypto(
        token or django_settings.WECHAT_COMPONENT_TOKEN, django_settings.WECHAT_COMPONENT_AES_KEY, appid
    )
    ts = str(timestamp if timestamp is not None else int(time.time()))
    encrypt, signature = crypto.encrypt_message(build_xml(fields), timestamp=ts, nonce=nonce)
    body = build_xml({"AppId": appid, "Encrypt": encrypt}).encode()
    return body, {"timestamp": ts, "nonce": nonce, "encrypt_type": "aes", "msg_signature": signature}


def ticket_fields(ticket: str, created: int | None = None) -> dict[str, str | int]:
    return {
        "AppId": django_settings.WECHAT_COMPONENT_APPID,
        "CreateTime": created if created is not None else int(time.time()),
        "InfoType": "component_verify_ticket",
        "ComponentVerifyTicket": ticket,
    }


def onboard(platform: Platform, **account: Any) -> Any:
    """Authorizes a new sandbox account through the real flow (page → consent → callback): the Tenant."""
    import re
    from html import unescape
    from urllib.parse import parse_qs, urlsplit

    import requests

    from tenants.models import Tenant

    created = platform.control.create_authorizer(**{"kind": "service", "func_ids": [1, 11], **account})
    page = requests.get(f"{platform.url}/wechat/authorize", timeout=10)
    link = unescape(re.search(r'id="authorize-pc"[^>]*href="([^"]+)"', page.text).group(1))  # type: ignore[union-attr]
    query = {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}
    answer = platform.control.consent(
        query["pre_auth_code"], created["appid"], redirect_uri=query["redirect_uri"], push=False
    )
    assert requests.get(answer["redirect_url"], timeout=30).status_code == 200
    return Tenant.objects.get(authorizer_appid=created["appid"])
