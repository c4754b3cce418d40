"""Merchant API authentication: `Authorization: Api-Key <key>` resolves the calling tenant once per request.

Keys are issued and hashed by djangorestframework-api-key (tenants.models.TenantAPIKey); this module only
finds the key by its visible prefix, lets the library verify the secret part, and refuses revoked or
expired keys. The key's tenant comes in the same query and is set as `request.tenant` (STYLE §4).

A key of a tenant that revoked the authorization (or must re-authorize) still authenticates: the merchant
keeps access to its own profile and history, and the draft-count endpoints answer with a precise error
code instead (drafts/api). Deleting the keys is the way to lock a merchant out entirely.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import redis
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from redis.exceptions import RedisError
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle
from rest_framework_api_key.permissions import KeyParser

from tenants.models import Tenant, TenantAPIKey
from tenants.selectors import api_key_find
from tenants.services import api_key_mark_used

if TYPE_CHECKING:
    # Not at run time: DRF imports this module while rest_framework.views is still being imported.
    from rest_framework.views import APIView

logger = logging.getLogger(__name__)

KEYWORD = "Api-Key"


@dataclass(frozen=True)
class APIKeyPrincipal:
    """`request.user` of a key-authenticated request: the tenant, never a Django user."""

    tenant: Tenant
    key: TenantAPIKey
    is_authenticated: bool = True
    is_anonymous: bool = False


class APIKeyRevoked(exceptions.AuthenticationFailed):
    default_detail = _("This API key has been revoked.")
    default_code = "api_key_revoked"


class APIKeyExpired(exceptions.AuthenticationFailed):
    default_detail = _("This API key has expired.")
    default_code = "api_key_expired"


class TenantAPIKeyAuthentication(BaseAuthentication):
    key_parser = KeyParser()

    def authenticate(self, request: Request) -> tuple[APIKeyPrincipal, TenantAPIKey] | None:
        if not request.META.get("HTTP_AUTHORIZATION"):
            return None  # DRF answers 401 not_authenticated
        raw = self.key_parser.get_from_authorization(request)
        if not raw or not raw.strip():
            raise exceptions.AuthenticationFailed(
                _("Malformed Authorization header; expected 'Api-Key <key>'."), code="authentication_failed"
            )
        key = api_key_find(raw_key=raw.strip())
        # Revoked and expired are told apart only once the secret has verified, so they reveal nothing
        # to someone guessing keys.
        if key is None:
            raise exceptions.AuthenticationFailed(_("Invalid API key."), code="authentication_failed")
        if key.revoked:
            raise APIKeyRevoked()
        if key.has_expired:
            raise APIKeyExpired()
        now = timezone.now()
        touch_interval = settings.API_KEY_TOUCH_INTERVAL
        if key.last_used_at is None or (now - key.last_used_at).total_seconds() >= touch_interval:
            api_key_mark_used(key=key, at=now, interval=touch_interval)
        request.tenant = key.tenant  # type: ignore[attr-defined]
        request._request.tenant = key.tenant  # type: ignore[attr-defined]  # visible to middleware and logs
        return APIKeyPrincipal(tenant=key.tenant, key=key), key

    def authenticate_header(self, request: Request) -> str:
        # Its presence turns NotAuthenticated into 401 (not 403), with WWW-Authenticate: Api-Key.
        return KEYWORD


def request_tenant(request: Request) -> Tenant:
    """The tenant resolved by TenantAPIKeyAuthentication; views call this rather than trusting input."""
    principal = request.user
    if not isinstance(principal, APIKeyPrincipal):
        raise exceptions.NotAuthenticated()
    return principal.tenant


class HasTenant(BasePermission):
    def has_permission(self, request: Request, view: APIView) -> bool:
        return isinstance(request.user, APIKeyPrincipal)


@lru_cache(maxsize=4)
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)


class APIKeyRateThrottle(BaseThrottle):
    """A fixed-window request counter per API key, in Redis (the shared cache without it).

    DRF's SimpleRateThrottle keeps every request time of the window in one cache value, which costs
    O(rate) per request at high rates; a counter costs O(1), and with Redis one round trip (SET NX EX and
    INCR pipelined). A fixed window may let through up to twice the rate across a window boundary, which is
    fine for abuse protection. If Redis is down the request is let through: throttling must not turn a
    cache outage into an API outage.
    """

    scope = "api_key"

    def __init__(self) -> None:
        self.wait_seconds: float | None = None

    def parse_rate(self) -> tuple[int, int]:
        # Read on every request rather than at import, so that settings overrides (tests, bench) apply.
        rate = str(api_settings.DEFAULT_THROTTLE_RATES[self.scope])
        count, _slash, period = rate.partition("/")
        seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[0]]
        return int(count), seconds

    def allow_request(self, request: Request, view: APIView) -> bool:
        if not isinstance(request.user, APIKeyPrincipal):
            return True
        limit, window = self.parse_rate()
        now = time.time()
        window_index = int(now // window)
        key = f"{settings.REDIS_KEY_PREFIX}:throttle:{self.scope}:{request.user.key.prefix}:{window}:{window_index}"
        try:
            count = self._count(key, window)
        except (RedisError, OSError, ValueError) as exc:
            logger.warning("API throttle unavailable, request let through: %s", type(exc).__name__)
            return True
        if count <= limit:
            return True
        self.wait_seconds = (window_index + 1) * window - now
        return False

    @staticmethod
    def _count(key: str, window: int) -> int:
        """This window's requests so far, this one included. The key outlives its window a little."""
        if settings.REDIS_URL:
            pipeline = _redis(settings.REDIS_URL).pipeline(transaction=False)
            pipeline.set(key, 0, ex=window + 1, nx=True)
            pipeline.incr(key)
            return int(pipeline.execute()[1])
        # The file cache of a Redis-less development setup: add() then incr(), good enough for one machine.
        cache.add(key, 0, timeout=window + 1)
        return int(cache.incr(key))

    def wait(self) -> float | None:
        return self.wait_seconds


class TenantAPIKeyScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """Documents the header in the OpenAPI schema, so that generated clients send it."""

    target_class = "tenants.authentication.TenantAPIKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        # OpenAPI 3.0 has no scheme for a custom Authorization prefix: an apiKey scheme on the header it is.
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "Send `Authorization: Api-Key <key>`. Keys are issued per merchant account and shown once.",
        }
