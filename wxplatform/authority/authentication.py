"""`Authorization: Service-Key <key>`: the provider's own services, on the token authority's endpoints only.

A merchant's `Api-Key` is a different scheme and a different table (tenants.authentication): it is refused
here, and a service key is refused on the merchant API. The key is looked up by its visible prefix and verified
by djangorestframework-api-key's hasher on every request (the prefix-key stack of wxplatform.core.keys, which
the merchant keys use too); nothing remembers it, so a revoked key is refused on the very next request.
The key is checked first; only a wrong one (unknown, revoked, expired, malformed) is counted against its client
address (SERVICE_KEY_FAILURE_RATE), and beyond the rate every wrong key from that address is answered 429. A valid
key is never refused for its address: honest services behind one NAT are not locked out by a neighbour's
mistakes. Guessing stays hopeless (32 random characters per key, of which the refusal reveals nothing) and cheap
to refuse (an unknown prefix costs one indexed read, a wrong secret one SHA-512).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework_api_key.models import AbstractAPIKey

from wxplatform.authority.models import ServiceKey
from wxplatform.authority.selectors import service_key_find
from wxplatform.core.keys import KeyPrincipal, PerKeyThrottle, PrefixKeyAuthentication, PrefixKeyScheme
from wxplatform.core.proxies import client_address
from wxplatform.core.throttling import window_exceeded

if TYPE_CHECKING:
    # Not at run time: DRF imports authentication modules while rest_framework.views is still being imported.
    from rest_framework.views import APIView

KEYWORD = "Service-Key"
_FAILURE_SCOPE = "service_key_failures"


@dataclass(frozen=True, kw_only=True)
class ServiceKeyPrincipal(KeyPrincipal):
    """`request.user` of a service-key request: the key, never a Django user nor a tenant."""

    key: ServiceKey


class ServiceKeyRevoked(exceptions.AuthenticationFailed):
    default_detail = _("This service key has been revoked.")
    default_code = "service_key_revoked"


class ServiceKeyExpired(exceptions.AuthenticationFailed):
    default_detail = _("This service key has expired.")
    default_code = "service_key_expired"


class ServiceKeyAuthentication(PrefixKeyAuthentication):
    keyword = KEYWORD
    malformed_message = _("Malformed Authorization header; expected 'Service-Key <key>'.")
    invalid_message = _("Invalid service key.")
    revoked_error = ServiceKeyRevoked
    expired_error = ServiceKeyExpired

    def verified_key(self, request: Request, header: str) -> AbstractAPIKey:
        try:
            key = super().verified_key(request, header)
        except exceptions.AuthenticationFailed:
            address = client_address(request._request)
            wait = window_exceeded(scope=_FAILURE_SCOPE, ident=address, rate=settings.SERVICE_KEY_FAILURE_RATE)
            if wait is not None:
                raise exceptions.Throttled(wait) from None
            raise
        return key

    def find(self, request: Request, raw_key: str) -> ServiceKey | None:
        return service_key_find(raw_key=raw_key)

    def principal(self, request: Request, key: ServiceKey) -> ServiceKeyPrincipal:
        return ServiceKeyPrincipal(key=key)


def request_service_key(request: Request) -> ServiceKey:
    principal = request.user
    if not isinstance(principal, ServiceKeyPrincipal):
        raise exceptions.NotAuthenticated()
    return principal.key


class ServiceKeyRateThrottle(PerKeyThrottle):
    """A fixed-window request counter per valid service key (SERVICE_KEY_RATE), in Redis like the merchant API's
    per-key throttle; counted in the process while Redis is down (wxplatform.core.throttling.LocalWindows)."""

    scope = "service_key"
    principal_type = ServiceKeyPrincipal

    def rate(self) -> str:
        return str(settings.SERVICE_KEY_RATE)


class HasServiceKey(BasePermission):
    def has_permission(self, request: Request, view: APIView) -> bool:
        return isinstance(request.user, ServiceKeyPrincipal)


class ServiceKeyScheme(PrefixKeyScheme):  # type: ignore[no-untyped-call]
    target_class = "wxplatform.authority.authentication.ServiceKeyAuthentication"
    name = "ServiceKeyAuth"
    description = "`Service-Key <key>`"
