"""Merchant API authentication: `Authorization: Api-Key <key>` resolves the calling tenant once per request.

Keys are issued and hashed by djangorestframework-api-key (tenants.models.TenantAPIKey); this module only
finds the key by its visible prefix, lets the library verify the secret part, and refuses revoked or
expired keys. The key's tenant is read with it and set as `request.tenant`.

A verified key is remembered in this process for API_KEY_CACHE_SECONDS (a few seconds; 0 turns it off):
keyed by the SHA-256 of the whole raw key (never the key itself), holding the key's id, prefix, tenant
id, revoked flag, expiry and last use. Within that time the key row is not read again, so revoking,
deleting or re-dating a key takes effect within API_KEY_CACHE_SECONDS in every process; no process needs
to be told. The tenant row is not remembered here: it comes from tenants.readcache, whose copy of a row
is dropped as soon as the row changes in the database, so a tenant's status and draft count are current.
Only keys whose secret verified are remembered, so guessing keys neither fills the cache nor skips the
hasher.

A key of a tenant that revoked the authorization (or must re-authorize) still authenticates: the merchant
keeps access to its own profile and history, and the draft-count endpoints answer with a precise error
code instead (drafts/api). Deleting the keys is the way to lock a merchant out entirely.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework_api_key.permissions import KeyParser

from tenants.models import Tenant, TenantAPIKey
from tenants.selectors import TENANT_API_FIELDS, api_key_find, tenant_get
from tenants.services import api_key_mark_used

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


# What is remembered of a key, in the model's field order (which Model.from_db() expects).
_REMEMBERED_KEY_FIELDS = tuple(
    field.attname
    for field in TenantAPIKey._meta.concrete_fields
    if field.attname in {"id", "prefix", "revoked", "expiry_date", "tenant_id", "last_used_at"}
)


@dataclass
class _VerifiedKey:
    """What this process remembers of a key whose secret verified: no secret, and not its tenant."""

    id: str
    prefix: str
    revoked: bool
    expiry_date: datetime | None
    tenant_id: int
    last_used_at: datetime | None
    trusted_until: float  # on _clock()

    def as_key(self, tenant: Tenant) -> TenantAPIKey:
        """The key as a model instance; its other fields (name, hash) are deferred."""
        values = [getattr(self, name) for name in _REMEMBERED_KEY_FIELDS]
        key = TenantAPIKey.from_db(DEFAULT_DB_ALIAS, _REMEMBERED_KEY_FIELDS, values)
        key.tenant = tenant
        return key


# A per-process memo, not a source of truth: the key row stays authoritative and is read again after
# API_KEY_CACHE_SECONDS, and no secret is held. Only verified keys get in, so its size is bounded by the
# keys in use; the bound is a backstop.
_VERIFIED_KEYS_MAX = 10_000
_verified_keys: dict[bytes, _VerifiedKey] = {}
_clock = time.monotonic


def api_key_cache_clear() -> None:
    """Forgets every verified key (tests; a key's removal is otherwise seen within API_KEY_CACHE_SECONDS)."""
    _verified_keys.clear()


def _verify(raw_key: str, tenant_fields: tuple[str, ...]) -> tuple[_VerifiedKey, Tenant] | None:
    """The verified key and its tenant (`tenant_fields` read now), or None if `raw_key` is no key of ours."""
    ttl = float(settings.API_KEY_CACHE_SECONDS)
    digest = hashlib.sha256(raw_key.encode("utf-8", "surrogatepass")).digest()
    now = _clock()
    verified = _verified_keys.get(digest) if ttl > 0 else None
    if verified is not None and verified.trusted_until > now:
        tenant = tenant_get(tenant_id=verified.tenant_id, fields=tenant_fields, use_copy=True)
        if tenant is not None:
            return verified, tenant
        # The tenant was deleted, and its keys with it: ask the database about the key itself.
    key = api_key_find(raw_key=raw_key, tenant_fields=tenant_fields)
    if key is None:
        _verified_keys.pop(digest, None)
        return None
    verified = _VerifiedKey(
        id=key.pk,
        prefix=key.prefix,
        revoked=key.revoked,
        expiry_date=key.expiry_date,
        tenant_id=key.tenant_id,
        last_used_at=key.last_used_at,
        trusted_until=now + ttl,
    )
    if ttl > 0:
        if len(_verified_keys) >= _VERIFIED_KEYS_MAX:
            _verified_keys.clear()
        _verified_keys[digest] = verified
    return verified, key.tenant


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
        # A view may name the only tenant fields it reads (`tenant_fields`); the others are deferred.
        view = request.parser_context.get("view")
        found = _verify(raw.strip(), getattr(view, "tenant_fields", TENANT_API_FIELDS))
        # Revoked and expired are told apart only once the secret has verified, so they reveal nothing
        # to someone guessing keys.
        if found is None:
            raise exceptions.AuthenticationFailed(_("Invalid API key."), code="authentication_failed")
        verified, tenant = found
        key = verified.as_key(tenant)
        if key.revoked:
            raise APIKeyRevoked()
        if key.has_expired:
            raise APIKeyExpired()
        now = timezone.now()
        touch_interval = settings.API_KEY_TOUCH_INTERVAL
        if key.last_used_at is None or (now - key.last_used_at).total_seconds() >= touch_interval:
            api_key_mark_used(key=key, at=now, interval=touch_interval)
            verified.last_used_at = now  # so that the next requests within the cache time write nothing
        request.tenant = tenant  # type: ignore[attr-defined]
        request._request.tenant = tenant  # type: ignore[attr-defined]  # visible to middleware and logs
        return APIKeyPrincipal(tenant=tenant, key=key), key

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
