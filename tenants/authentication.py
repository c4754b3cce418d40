"""Merchant API authentication: `Authorization: Api-Key <key>` resolves the calling tenant once per request.

Keys are issued and hashed by djangorestframework-api-key (tenants.models.TenantAPIKey); the prefix-key stack
they share with the provider's service keys (wxplatform.core.keys) finds the key by its visible prefix, lets
the library verify the secret part, and refuses revoked or expired keys. The key and its tenant are read
together, in one query, on every request; of the tenant only the fields the view names (`tenant_fields`).
No process remembers either, so a revoked, expired or deleted key is refused on the very next request. The
tenant is set as `request.tenant`. The one write is `last_used_at`, at most once per API_KEY_TOUCH_INTERVAL.

A revocation limits the keys the tenant had to its history (`history_only`, 403 `api_key_history_only`
elsewhere) for API_KEY_REVOKED_GRACE_DAYS, after which they expire; a re-authorization never revives them.
A key issued later to a tenant that is revoked or must re-authorize keeps access to its profile and
history, and the draft-count endpoints answer with a precise error code instead (wxplatform/api).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.settings import api_settings

from tenants.models import Tenant, TenantAPIKey
from tenants.selectors import TENANT_API_FIELDS, api_key_find
from wxplatform.core.keys import KeyPrincipal, PerKeyThrottle, PrefixKeyAuthentication, PrefixKeyScheme

if TYPE_CHECKING:
    # Not at run time: DRF imports this module while rest_framework.views is still being imported.
    from rest_framework.views import APIView


KEYWORD = "Api-Key"


@dataclass(frozen=True, kw_only=True)
class APIKeyPrincipal(KeyPrincipal):
    """`request.user` of a key-authenticated request: the tenant, never a Django user."""

    tenant: Tenant
    key: TenantAPIKey


class APIKeyRevoked(exceptions.AuthenticationFailed):
    default_detail = _("This API key has been revoked.")
    default_code = "api_key_revoked"


class APIKeyExpired(exceptions.AuthenticationFailed):
    default_detail = _("This API key has expired.")
    default_code = "api_key_expired"


class TenantAPIKeyAuthentication(PrefixKeyAuthentication):
    keyword = KEYWORD
    malformed_message = _("Malformed Authorization header; expected 'Api-Key <key>'.")
    invalid_message = _("Invalid API key.")
    revoked_error = APIKeyRevoked
    expired_error = APIKeyExpired

    def find(self, request: Request, raw_key: str) -> TenantAPIKey | None:
        # A view may name the only tenant fields it reads (`tenant_fields`); the others are not loaded.
        view = request.parser_context.get("view")
        return api_key_find(raw_key=raw_key, tenant_fields=getattr(view, "tenant_fields", TENANT_API_FIELDS))

    def principal(self, request: Request, key: TenantAPIKey) -> APIKeyPrincipal:
        request.tenant = key.tenant  # type: ignore[attr-defined]
        request._request.tenant = key.tenant  # type: ignore[attr-defined]  # visible to middleware and logs
        return APIKeyPrincipal(tenant=key.tenant, key=key)


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


class TenantAPIKeyScheme(PrefixKeyScheme):  # type: ignore[no-untyped-call]
    target_class = "tenants.authentication.TenantAPIKeyAuthentication"
    name = "ApiKeyAuth"
    # Lazy, so that the schema says it in the request's language (the library annotates a plain str).
    description = _("Send `Authorization: Api-Key <key>`. Keys are issued per merchant account and shown once.")  # type: ignore[assignment]


class APIKeyRateThrottle(PerKeyThrottle):
    """The merchant API's per-key limit (the `api_key` rate of DRF's DEFAULT_THROTTLE_RATES)."""

    scope = "api_key"
    principal_type = APIKeyPrincipal

    # A merchant holds a key: a Redis outage must not become an API outage for them (wxplatform.core.throttling).
    open_when_unavailable = True

    def rate(self) -> str:
        return str(api_settings.DEFAULT_THROTTLE_RATES[self.scope])
