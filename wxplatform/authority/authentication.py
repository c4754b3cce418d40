"""`Authorization: Service-Key <key>`: the provider's own services, on the token authority's endpoints only.

A merchant's `Api-Key` is a different scheme and a different table (tenants.authentication): it is refused
here, and a service key is refused on the merchant API. The key is looked up by its visible prefix and verified
by djangorestframework-api-key's hasher on every request; nothing remembers it, so a revoked key is refused on
the very next request. The key is checked first; only a wrong one (unknown, revoked, expired, malformed) is
counted against its client address (SERVICE_KEY_FAILURE_RATE), and beyond the rate every wrong key from that
address is answered 429. A valid key is never refused for its address: honest services behind one NAT are not
locked out by a neighbour's mistakes. Guessing stays hopeless (32 random characters per key, of which the
refusal reveals nothing) and cheap to refuse (an unknown prefix costs one indexed read, a wrong secret one
SHA-512).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from tenants.throttling import window_exceeded
from wxplatform.authority.models import ServiceKey
from wxplatform.authority.selectors import service_key_find
from wxplatform.authority.services import service_key_mark_used
from wxplatform.proxies import client_address

if TYPE_CHECKING:
    # Not at run time: DRF imports authentication modules while rest_framework.views is still being imported.
    from rest_framework.views import APIView

KEYWORD = "Service-Key"
_FAILURE_SCOPE = "service_key_failures"


@dataclass(frozen=True)
class ServiceKeyPrincipal:
    """`request.user` of a service-key request: the key, never a Django user nor a tenant."""

    key: ServiceKey
    is_authenticated: bool = True
    is_anonymous: bool = False


class ServiceKeyRevoked(exceptions.AuthenticationFailed):
    default_detail = _("This service key has been revoked.")
    default_code = "service_key_revoked"


class ServiceKeyExpired(exceptions.AuthenticationFailed):
    default_detail = _("This service key has expired.")
    default_code = "service_key_expired"


class ServiceKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[ServiceKeyPrincipal, ServiceKey] | None:
        header = str(request.META.get("HTTP_AUTHORIZATION", ""))
        if not header:
            return None  # DRF answers 401 not_authenticated
        try:
            key = self._key(header)
        except exceptions.AuthenticationFailed:
            address = client_address(request._request)
            wait = window_exceeded(scope=_FAILURE_SCOPE, ident=address, rate=settings.SERVICE_KEY_FAILURE_RATE)
            if wait is not None:
                raise exceptions.Throttled(wait) from None
            raise
        now = timezone.now()
        interval = settings.API_KEY_TOUCH_INTERVAL
        if key.last_used_at is None or (now - key.last_used_at).total_seconds() >= interval:
            service_key_mark_used(key=key, at=now, interval=interval)
        return ServiceKeyPrincipal(key=key), key

    def _key(self, header: str) -> ServiceKey:
        scheme, _space, raw = header.partition(" ")
        if scheme != KEYWORD or not raw.strip():
            # A merchant's "Api-Key ..." lands here too: it is not a service key.
            raise exceptions.AuthenticationFailed(
                _("Malformed Authorization header; expected 'Service-Key <key>'."), code="authentication_failed"
            )
        key = service_key_find(raw_key=raw.strip())
        # Revoked and expired are told apart only once the secret has verified, so they reveal nothing to
        # someone guessing keys.
        if key is None:
            raise exceptions.AuthenticationFailed(_("Invalid service key."), code="authentication_failed")
        if key.revoked:
            raise ServiceKeyRevoked()
        if key.has_expired:
            raise ServiceKeyExpired()
        return key

    def authenticate_header(self, request: Request) -> str:
        # Its presence turns NotAuthenticated into 401 (not 403), with WWW-Authenticate: Service-Key.
        return KEYWORD


def request_service_key(request: Request) -> ServiceKey:
    principal = request.user
    if not isinstance(principal, ServiceKeyPrincipal):
        raise exceptions.NotAuthenticated()
    return principal.key


class ServiceKeyRateThrottle(BaseThrottle):
    """A fixed-window request counter per valid service key (SERVICE_KEY_RATE), in Redis like the merchant API's
    per-key throttle; let through when Redis is down."""

    scope = "service_key"

    def __init__(self) -> None:
        self.wait_seconds: float | None = None

    def allow_request(self, request: Request, view: APIView) -> bool:
        principal = request.user
        if not isinstance(principal, ServiceKeyPrincipal):
            return True
        self.wait_seconds = window_exceeded(
            scope=self.scope, ident=principal.key.prefix, rate=settings.SERVICE_KEY_RATE
        )
        return self.wait_seconds is None

    def wait(self) -> float | None:
        return self.wait_seconds


class HasServiceKey(BasePermission):
    def has_permission(self, request: Request, view: APIView) -> bool:
        return isinstance(request.user, ServiceKeyPrincipal)


class ServiceKeyScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "wxplatform.authority.authentication.ServiceKeyAuthentication"
    name = "ServiceKeyAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "apiKey", "in": "header", "name": "Authorization", "description": "`Service-Key <key>`"}
