"""Reads for tenants and their API keys."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import F, Q, QuerySet

from tenants.models import Eligibility, Tenant, TenantAPIKey, TenantStatus
from wxplatform.core.keys import key_find

# Every field of a key, and of its tenant every field but the tokens and the platform unless fewer are asked
# for: a merchant is never answered with the tokens, so they are neither loaded nor decrypted, and the API names
# no platform (a key belongs to one tenant, which belongs to one platform).
_KEY_FIELDS = tuple(field.name for field in TenantAPIKey._meta.concrete_fields)
TENANT_API_FIELDS = tuple(
    field.name
    for field in Tenant._meta.concrete_fields
    if field.name not in {"access_token", "refresh_token", "component"}
)


def api_key_find(*, raw_key: str, tenant_fields: Iterable[str] = TENANT_API_FIELDS) -> TenantAPIKey | None:
    """The key (revoked or not) whose secret is `raw_key`, with its tenant, in one query; None if no key
    matches. The secret is checked by djangorestframework-api-key's own hasher.

    Of the tenant only `tenant_fields` are loaded. Reading another one still works, at the cost of a query
    of its own: the tests that count each endpoint's queries are what keep a view's list complete."""
    tenant_only = (f"tenant__{name}" for name in tenant_fields)
    return key_find(TenantAPIKey.objects.select_related("tenant").only(*_KEY_FIELDS, *tenant_only), raw_key=raw_key)


def api_key_list(*, tenant: Tenant) -> QuerySet[TenantAPIKey]:
    """The tenant's keys, newest first, revoked ones included (for the admin console)."""
    return TenantAPIKey.objects.filter(tenant=tenant).order_by("-created")


# --- The named tests every reader of tenants shares -------------------------------------------------


def syncable_tenants() -> QuerySet[Tenant]:
    """Tenants WeChat may be asked about: active and eligible (revoked, needs-reauth and ineligible ones
    never are, nor WeChat's release-test accounts, nor the accounts of a platform switched off). The sync's
    chunks, the stale-count gauge and the console all count from this."""
    return Tenant.objects.filter(
        status=TenantStatus.ACTIVE, eligibility=Eligibility.ELIGIBLE, is_test_account=False, component__active=True
    )


def merchant_tenants() -> QuerySet[Tenant]:
    """Every tenant but WeChat's release-test accounts: what quota and tenant metrics count."""
    return Tenant.objects.filter(is_test_account=False)


def failing_condition() -> Q:
    """A tenant is failing while its last error (sync or token refresh) is newer than its last successful
    sync, or it never had one: nothing has succeeded since the error."""
    return Q(last_error_at__isnull=False) & (
        Q(draft_count_fetched_at__isnull=True) | Q(last_error_at__gt=F("draft_count_fetched_at"))
    )


def failing_tenants() -> QuerySet[Tenant]:
    return Tenant.objects.filter(failing_condition())


def eligibility_reason(tenant: Tenant) -> str:
    """Why the tenant is (in)eligible, as shown to staff and merchants: the recorded detail, else the label."""
    return tenant.eligibility_detail or str(Eligibility(tenant.eligibility).label)
