"""Consumer mode: a deployment that gets every token from the provider's token authority instead of WeChat.

With WECHAT_TOKEN_AUTHORITY_URL and WECHAT_TOKEN_AUTHORITY_KEY set (staging, a copy of production, a second
service), this deployment never calls api_component_token, api_authorizer_token nor api_start_push_ticket:
each of those calls may invalidate the token the production deployment holds after WeChat's 5-minute overlap
(docs/wechat/tokens.md). Everything else (draft/count, api_query_auth, ...) still calls WeChat with the tokens
the authority handed out. The callers (component and tenant services) keep their single-flight row locks, and
store what the authority answers as a refresh would.

One plain function per endpoint, a timeout on every call; the key is sent in the Authorization header only and
never appears in an exception, a log line or a repr.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote

import requests
from django.conf import settings
from django.utils.dateparse import parse_datetime

from wxplatform.wechat.errors import TransportError

KEYWORD = "Service-Key"


class AuthorityRefused(Exception):
    """The authority answered with an error in its error shape: `status` is the HTTP status, `code` the
    stable error code (tenant_revoked, service_key_out_of_scope, component_not_ready, ...)."""

    def __init__(self, status: int, code: str, message: str = "") -> None:
        self.status = status
        self.code = code
        super().__init__(f"token authority answered {status} {code}: {message}"[:300])


@dataclass(frozen=True)
class HandedToken:
    access_token: str = field(repr=False)
    expires_at: datetime


def authority_configured() -> bool:
    """Whether this deployment is a consumer of a token authority (settings check that both or neither are set)."""
    return bool(settings.WECHAT_TOKEN_AUTHORITY_URL)


@lru_cache(maxsize=1)
def _session() -> requests.Session:
    session = requests.Session()
    # The authority is an internal service: the WeChat egress proxy and any proxy of the environment are not
    # on the way to it.
    session.trust_env = False
    return session


def authority_component_token(component_appid: str) -> HandedToken:
    """GET /internal/v1/components/<component_appid>/token."""
    return _get(f"/internal/v1/components/{quote(component_appid, safe='')}/token")


def authority_authorizer_token(component_appid: str, authorizer_appid: str) -> HandedToken:
    """GET /internal/v1/components/<component_appid>/authorizers/<appid>/token."""
    return _get(
        f"/internal/v1/components/{quote(component_appid, safe='')}/authorizers/{quote(authorizer_appid, safe='')}"
        "/token"
    )


def _get(path: str) -> HandedToken:
    url = f"{settings.WECHAT_TOKEN_AUTHORITY_URL}{path}"
    headers = {"Authorization": f"{KEYWORD} {settings.WECHAT_TOKEN_AUTHORITY_KEY}", "Accept": "application/json"}
    try:
        response = _session().get(
            url,
            headers=headers,
            timeout=(settings.WECHAT_CONNECT_TIMEOUT, settings.WECHAT_READ_TIMEOUT),
            allow_redirects=False,
        )
    except requests.Timeout:
        raise TransportError("token authority: timeout") from None
    except requests.RequestException as exc:
        raise TransportError(f"token authority: {type(exc).__name__}") from None
    body = _json(response)
    if response.status_code == 200:
        token = body.get("access_token")
        expires_at = parse_datetime(str(body.get("expires_at", "")))
        if not isinstance(token, str) or not token or expires_at is None or expires_at.tzinfo is None:
            raise TransportError("token authority: malformed answer", status=response.status_code)
        return HandedToken(access_token=token, expires_at=expires_at)
    error = body.get("error")
    if response.status_code == 429 or not isinstance(error, dict) or not error.get("code"):
        # A throttle, a proxy's error page, a 5xx without the authority's error shape: try again later.
        raise TransportError(f"token authority: HTTP {response.status_code}", status=response.status_code)
    raise AuthorityRefused(response.status_code, str(error["code"])[:64], str(error.get("message", ""))[:200])


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
