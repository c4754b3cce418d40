"""Reads for tenants and their API keys."""

from __future__ import annotations

import re

from django.db.models import QuerySet

from tenants.models import Tenant, TenantAPIKey

# djangorestframework-api-key makes "<prefix>.<secret>" from letters and digits; anything else is not a
# key, and is turned away before it reaches the database (which, for one, refuses NUL characters).
_KEY_SHAPE = re.compile(r"[A-Za-z0-9]{1,8}\.[A-Za-z0-9]{1,128}")


def api_key_find(*, raw_key: str) -> TenantAPIKey | None:
    """The key (revoked or not) whose secret is `raw_key`, with its tenant, in one query; None if no key
    matches. The secret is checked by djangorestframework-api-key's own hasher."""
    if not _KEY_SHAPE.fullmatch(raw_key):
        return None
    prefix = raw_key.partition(".")[0]
    try:
        # The tenant's tokens are not needed to answer a merchant, so they are neither loaded nor decrypted.
        key = (
            TenantAPIKey.objects.select_related("tenant")
            .defer("tenant__access_token", "tenant__refresh_token")
            .get(prefix=prefix)
        )
    except TenantAPIKey.DoesNotExist:
        return None
    return key if key.is_valid(raw_key) else None


def api_key_list(*, tenant: Tenant) -> QuerySet[TenantAPIKey]:
    """The tenant's keys, newest first, revoked ones included (for the admin console)."""
    return TenantAPIKey.objects.filter(tenant=tenant).order_by("-created")
