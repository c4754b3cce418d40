"""The process-wide WeChat client, built from settings, and its per-platform views.

One pooled requests.Session per process is the point (keep-alive to WeChat); it holds no tenant state. Every
platform's client shares it: `component_client(component)` is the same transport bound to one platform's appid
and secret, for the component endpoints; `wechat_client()` is the bare transport, for the calls an authorizer's
own access token authorizes (draft/count, quota, rid, custom send), which name no platform.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from django.conf import settings

from wxplatform.core.egress import observe_error, record_base_change
from wxplatform.core.metrics import observe_wechat_call
from wxplatform.wechat.bases import Bases
from wxplatform.wechat.client import WeChatClient
from wxplatform.wechat.crypto import MessageCrypto

if TYPE_CHECKING:
    from wxplatform.component.models import Platform


@lru_cache(maxsize=1)
def _bases(base_url: str, fallbacks: tuple[str, ...], cooldown: float) -> Bases:
    return Bases(base_url, fallbacks, cooldown=cooldown, on_change=record_base_change)


def wechat_bases() -> Bases:
    """This process's WeChat API bases and their breakers, shared by the requests client, the draft/count
    fan-out and the gateway (wxplatform/wechat/bases.py)."""
    return _bases(settings.WECHAT_API_BASE, tuple(settings.WECHAT_API_FALLBACK_BASES), settings.WECHAT_BASE_COOLDOWN)


@lru_cache(maxsize=1)
def _client(base_url: str, proxy: str, bases: Bases) -> WeChatClient:
    # No platform credentials: a component endpoint called through the bare transport by mistake is refused
    # by WeChat (41018 missing component_appid) instead of silently speaking for the default platform.
    return WeChatClient(
        base_url=base_url,
        component_appid="",
        component_appsecret="",
        connect_timeout=settings.WECHAT_CONNECT_TIMEOUT,
        read_timeout=settings.WECHAT_READ_TIMEOUT,
        on_call=observe_wechat_call,
        on_error=observe_error,
        proxy=proxy or None,
        bases=bases,
    )


def wechat_client() -> WeChatClient:
    # Keyed by base URL, proxy and bases so that tests pointing them elsewhere get a matching client.
    return _client(settings.WECHAT_API_BASE, settings.WECHAT_HTTP_PROXY, wechat_bases())


def component_client(component: Platform) -> WeChatClient:
    """The shared transport speaking for one platform (its appid and secret in the component endpoints)."""
    return wechat_client().for_component(component.component_appid, component.appsecret)


def message_crypto(component: Platform) -> MessageCrypto:
    """Verifies, decrypts and encrypts one platform's pushes (its token, EncodingAESKey and appid)."""
    return MessageCrypto(component.token, component.aes_key, component.component_appid)
