"""The process-wide WeChat client, built from settings.

One pooled requests.Session per process is the point (keep-alive to WeChat); it holds no tenant state.
"""

from __future__ import annotations

from functools import lru_cache

from django.conf import settings

from wxplatform.egress import observe_error
from wxplatform.metrics import observe_wechat_call
from wxplatform.wechat.client import WeChatClient
from wxplatform.wechat.crypto import MessageCrypto


@lru_cache(maxsize=1)
def _client(base_url: str, proxy: str) -> WeChatClient:
    return WeChatClient(
        base_url=base_url,
        component_appid=settings.WECHAT_COMPONENT_APPID,
        component_appsecret=settings.WECHAT_COMPONENT_APPSECRET,
        connect_timeout=settings.WECHAT_CONNECT_TIMEOUT,
        read_timeout=settings.WECHAT_READ_TIMEOUT,
        on_call=observe_wechat_call,
        on_error=observe_error,
        proxy=proxy or None,
    )


def wechat_client() -> WeChatClient:
    # Keyed by base URL and proxy so that tests pointing them elsewhere get a matching client.
    return _client(settings.WECHAT_API_BASE, settings.WECHAT_HTTP_PROXY)


def message_crypto() -> MessageCrypto:
    return MessageCrypto(
        settings.WECHAT_COMPONENT_TOKEN, settings.WECHAT_COMPONENT_AES_KEY, settings.WECHAT_COMPONENT_APPID
    )
