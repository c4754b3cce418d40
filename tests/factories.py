"""Plain ORM factories for tests (the `tenant` / `other_tenant` fixtures built with them are in
tests/fixtures/tenants.py).

    tenant = make_tenant(status=TenantStatus.REVOKED)     # any Tenant field can be overridden
    key, raw = make_api_key(tenant)                       # raw: the "prefix.secret" a client sends

Every tenant is an eligible, active Official Account with tokens, of the default platform, unless told otherwise.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from drafts.models import DraftSnapshot, SnapshotReason
from tenants.models import AccountKind, Eligibility, Tenant, TenantAPIKey, TenantStatus
from wxplatform.authority.models import ServiceKey
from wxplatform.component.services import default_component


def make_tenant(**overrides: Any) -> Tenant:
    suffix = secrets.token_hex(8)
    fields: dict[str, Any] = {
        "authorizer_appid": f"wx{suffix}",
        "nickname": f"Account {suffix[:6]}",
        "original_id": f"gh_{suffix[:12]}",
        "account_kind": AccountKind.SUBSCRIPTION,
        "func_ids": [1, 11, 15],
        "status": TenantStatus.ACTIVE,
        "eligibility": Eligibility.ELIGIBLE,
        "access_token": f"access-{secrets.token_urlsafe(24)}",
        "access_token_expires_at": timezone.now() + timedelta(hours=2),
        "refresh_token": f"refresh-{secrets.token_urlsafe(24)}",
        "token_version": 1,
        "authorized_at": timezone.now(),
    }
    fields.update(overrides)
    if "component" not in fields and "component_id" not in fields:
        fields["component"] = default_component()
    return Tenant.objects.create(**fields)


def make_api_key(tenant: Tenant, *, name: str = "test key", **overrides: Any) -> tuple[TenantAPIKey, str]:
    """A key issued the way the library issues it; returns the row and the raw key (shown once)."""
    key, raw = TenantAPIKey.objects.create_key(tenant=tenant, name=name, **overrides)
    return key, raw


def api_headers(raw_key: str) -> dict[str, str]:
    """Django test-client keyword arguments that authenticate with `raw_key`."""
    return {"HTTP_AUTHORIZATION": f"Api-Key {raw_key}"}


def make_service_key(*, name: str = "test service", **overrides: Any) -> tuple[ServiceKey, str]:
    """A token-authority key issued the way the library issues it: the row and the raw key."""
    key, raw = ServiceKey.objects.create_key(name=name, **overrides)
    return key, raw


def service_headers(raw_key: str) -> dict[str, str]:
    """Django test-client keyword arguments that authenticate with a service key."""
    return {"HTTP_AUTHORIZATION": f"Service-Key {raw_key}"}


def make_snapshot(tenant: Tenant, *, total_count: int, fetched_at: datetime, **overrides: Any) -> DraftSnapshot:
    fields: dict[str, Any] = {"reason": SnapshotReason.CHANGED, **overrides}
    return DraftSnapshot.objects.create(tenant=tenant, total_count=total_count, fetched_at=fetched_at, **fields)
