"""Reads for tenants and their API keys."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import F, Q, QuerySet
from django.urls import reverse
from django.utils.translation import gettext as _

from tenants.models import Eligibility, Tenant, TenantAPIKey, TenantStatus
from wxplatform.component.services import is_default
from wxplatform.core.keys import key_find

# WeChat's errcodes for a draft API refused (docs/wechat/permissions.md#missing-permission-errors).
NOT_GRANTED_CODE = 61007
ACCOUNT_LACKS_API_CODE = 48001

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
    """Why the tenant is (in)eligible, as shown to staff and merchants: what to do about a refused draft box,
    else the recorded detail, else the label."""
    return draft_refusal_message(tenant) or tenant.eligibility_detail or str(Eligibility(tenant.eligibility).label)


class DraftRefusal(enum.StrEnum):
    """Why WeChat refuses (or would refuse) this platform the account's draft box, by who can change it
    (docs/wechat/permissions.md#missing-permission-errors)."""

    # 61007, or set 11/100 missing from func_info: the platform was not granted the set; authorizing again fixes it.
    NOT_GRANTED = "not_granted"
    # 48001, or not an Official Account / Service Account: the account itself lacks the API; authorizing again
    # changes nothing.
    ACCOUNT_LACKS_API = "account_lacks_api"


def draft_refusal(tenant: Tenant) -> DraftRefusal | None:
    """NOT_GRANTED or ACCOUNT_LACKS_API for an ineligible tenant whose reason is one of them, else None."""
    if tenant.eligibility == Eligibility.MISSING_PERMISSION:
        return DraftRefusal.NOT_GRANTED
    if tenant.eligibility == Eligibility.WRONG_KIND:
        return DraftRefusal.ACCOUNT_LACKS_API
    if tenant.eligibility == Eligibility.REJECTED:
        # The errcode WeChat rejected the account with is the last error recorded, and in its detail.
        code = tenant.last_error_code
        if code == NOT_GRANTED_CODE or (code is None and f"({NOT_GRANTED_CODE})" in tenant.eligibility_detail):
            return DraftRefusal.NOT_GRANTED
        if code == ACCOUNT_LACKS_API_CODE or f"({ACCOUNT_LACKS_API_CODE})" in tenant.eligibility_detail:
            return DraftRefusal.ACCOUNT_LACKS_API
    return None


def reauthorize_url(tenant: Tenant) -> str:
    """The authorization page that grants this platform its permission sets again: the default platform's, or
    another platform's with ?component= (README "Several platforms")."""
    url = settings.PUBLIC_BASE_URL + reverse("tenants:authorize")
    component = tenant.component
    return url if is_default(component) else f"{url}?{urlencode({'component': component.component_appid})}"


def draft_refusal_message(tenant: Tenant) -> str | None:
    """What the merchant can do about a refused draft box, in the request's language; None if not refused so."""
    refusal = draft_refusal(tenant)
    if refusal == DraftRefusal.NOT_GRANTED:
        return _(
            "This platform was not granted permission set 11 (material management), which the draft APIs need "
            "(WeChat errcode 61007). The account's administrator must authorize this platform again at %(url)s "
            "and keep material management ticked."
        ) % {"url": reauthorize_url(tenant)}
    if refusal == DraftRefusal.ACCOUNT_LACKS_API:
        return _(
            "WeChat does not let this account itself use the draft APIs (WeChat errcode 48001): they are for "
            "Official Accounts (formerly subscription accounts) and Service Accounts, and WeChat refuses accounts "
            "whose WeChat verification has lapsed. Check the account's type and verification on the WeChat Official "
            "Accounts Platform (mp.weixin.qq.com); authorizing this platform again does not change it."
        )
    return None
