"""Merchant API authentication: `Authorization: Api-Key <key>` resolves the calling tenant once per request.

Keys are issued and hashed by djangorestframework-api-key (tenants.models.TenantAPIKey); this module only
finds the key by its visible prefix, lets the library verify the secret part, and refuses revoked or
expired keys. The key and its tenant are read together, in one query, on every request; of the tenant only
the fields the view names (`tenant_fields`). No process remembers either, so a revoked, expired or deleted
key is refused on the very next request. The tenant is set as `request.tenant`. The one write is
`last_used_at`, at most once per API_KEY_TOUCH_INTERVAL.

A revocation limits the keys the tenant had to its history (`history_only`, 403 `api_key_history_only`
elsewhere) for API_KEY_REVOKED_GRACE_DAYS, after which they expire; a re-authorization never revives them.
A key issued later to a tenant that is revoked or must re-authorize keeps access to its profile and
history, and the draft-count endpoints answer with a precise error code instead (wxplatform/api).
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
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle
from rest_framework_api_key.permissions import KeyParser

from tenants.models import Tenant, TenantAPIKey
from tenants.selectors import TENANT_API_FIELDS, api_key_find
from tenants.services import api_key_mark_used
from wxplatform.core.throttling import window_exceeded

if TYPE_CHECKING:
    # Not at run time: DRF imports this module while rest_framework.views is still being imported.
    from rest_framework.views import APIView


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
        # A view may name the only tenant fields it reads (`tenant_fields`); the others are not loaded.
        view = request.parser_context.get("view")
        key = api_key_find(raw_key=raw.strip(), tenant_fields=getattr(view, "tenant_fields", TENANT_API_FIELDS))
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


class APIKeyHistoryOnly(exceptions.PermissionDenied):
    default_detail = _(
        "This API key belongs to an authorization that was revoked: it can read the draft count history "
        "only, until it expires. Authorize the account again for a new key."
    )
    default_code = "api_key_history_only"


class HasTenant(BasePermission):
    """A key-authenticated request; a key of a revoked authorization only on views that allow it
    (`history_only_keys_allowed`, the history)."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        principal = request.user
        if not isinstance(principal, APIKeyPrincipal):
            return False
        if principal.key.history_only and not getattr(view, "history_only_keys_allowed", False):
            raise APIKeyHistoryOnly()
        return True


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


class APIKeyRateThrottle(BaseThrottle):
    """A fixed-window request counter per API key, in Redis (the Django cache without it)."""

    scope = "api_key"

    def __init__(self) -> None:
        self.wait_seconds: float | None = None

    def allow_request(self, request: Request, view: APIView) -> bool:
        principal = request.user
        if not isinstance(principal, APIKeyPrincipal):
            return True
        # Read on every request rather than at import, so that settings overrides (tests, bench) apply.
        rate = str(api_settings.DEFAULT_THROTTLE_RATES[self.scope])
        # A merchant holds a key: a Redis outage must not become an API outage for them (wxplatform.core.throttling).
        self.wait_seconds = window_exceeded(
            scope=self.scope, ident=principal.key.prefix, rate=rate, open_when_unavailable=True
        )
        return self.wait_seconds is None

    def wait(self) -> float | None:
        return self.wait_seconds
