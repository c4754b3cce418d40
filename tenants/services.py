"""Writes for tenants: authorization, revocation, authorizer tokens and API keys.

Token rules (docs/wechat/tokens.md, docs/wechat/endpoints.md#api_authorizer_token):
- the database row is the source of truth; a refresh locks the tenant row, checks again, and only then calls
  WeChat, so that one process refreshes however many meet an expired token at once;
- every stored token bumps `token_version`, and a returned refresh token is always persisted;
- 61023 (refresh token invalid): recover it from api_get_authorizer_list, else the merchant must re-authorize.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar, cast

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from tenants.models import (
    ACCOUNT_STATUS_LABELS,
    ACCOUNT_STATUS_WARNED,
    BLOCKING_ACCOUNT_STATUSES,
    DRAFT_PERMISSION_SETS,
    AccountKind,
    AuthorizationCode,
    AuthorizerMessage,
    Eligibility,
    EventType,
    OutboxEvent,
    PushLog,
    Tenant,
    TenantAPIKey,
    TenantStatus,
    code_label,
)
from wxplatform.component.clients import component_client, wechat_client
from wxplatform.component.consumer import AuthorityRefused, authority_authorizer_token, authority_configured
from wxplatform.component.models import Platform
from wxplatform.component.services import component_get, with_component_token
from wxplatform.core import metrics
from wxplatform.core.freshness import AUTHORIZER_REFRESH_MARGIN, USABLE_MARGIN, token_is_fresh
from wxplatform.core.keys import key_revoke
from wxplatform.core.pruning import delete_in_batches
from wxplatform.wechat.client import WeChatClient
from wxplatform.wechat.errors import (
    REVOKED_CODES,
    AccountStateError,
    AuthorizationCodeError,
    ConfigurationError,
    RefreshTokenError,
    TransportError,
    WeChatError,
)
from wxplatform.wechat.types import AuthorizerInfo, AuthorizerListPage, AuthorizerToken

logger = logging.getLogger(__name__)

T = TypeVar("T")

_AUTHORIZER_LIST_PAGE = 500


class TenantNotActive(Exception):
    """The tenant is revoked or needs re-authorization: no token can be obtained for it."""

    def __init__(self, tenant: Tenant) -> None:
        self.status = tenant.status
        super().__init__(f"tenant {tenant.authorizer_appid} is {tenant.status}")


class TenantHasNoToken(Exception):
    """The authorization gave no API credentials (the account has no API permission)."""


# --- Eligibility -------------------------------------------------------------------------------------


def eligibility_for(
    *, account_kind: str, func_ids: list[int], account_status: int | None = None
) -> tuple[Eligibility, str]:
    """Whether draft/count may be called for an account of this kind, status and permission sets
    (docs/wechat/lifecycle.md#authorizer-profile). A warned account (18) stays eligible, with a warning."""
    if account_kind not in (AccountKind.SUBSCRIPTION, AccountKind.SERVICE):
        return Eligibility.WRONG_KIND, _("Only subscription accounts and service accounts have a draft box.")
    if account_status in BLOCKING_ACCOUNT_STATUSES:
        return Eligibility.ACCOUNT_STATUS, _("WeChat reports the account as %(status)s.") % {
            "status": code_label(ACCOUNT_STATUS_LABELS, account_status)
        }
    if not DRAFT_PERMISSION_SETS.intersection(func_ids):
        return Eligibility.MISSING_PERMISSION, _("Missing permission set: 11 (material management) or 100.")
    if account_status == ACCOUNT_STATUS_WARNED:
        return Eligibility.ELIGIBLE, _("WeChat reports the account as %(status)s; it may still be called.") % {
            "status": code_label(ACCOUNT_STATUS_LABELS, account_status)
        }
    return Eligibility.ELIGIBLE, ""


# --- Outbox (events for the merchant's webhooks) ----------------------------------------------------
# Every state change a merchant can subscribe to writes its event here, inside the transaction that makes the
# change (the callers below are all atomic). Events are written whether or not the tenant has a webhook: these
# changes are rare, and the webhooks app, which this layer cannot import, drops events nobody subscribed to.


def outbox_event(*, tenant_id: int, type: str, data: dict[str, object]) -> OutboxEvent:
    """An unsaved outbox row (for bulk_create by the caller's transaction)."""
    return OutboxEvent(tenant_id=tenant_id, type=type, payload=data)


def eligibility_event(*, tenant: Tenant, previous: str, reason: str) -> OutboxEvent:
    data: dict[str, object] = {
        "appid": tenant.authorizer_appid,
        "eligibility": tenant.eligibility,
        "previous_eligibility": previous,
        "reason": reason or str(Eligibility(tenant.eligibility).label),
    }
    return outbox_event(tenant_id=tenant.pk, type=EventType.TENANT_ELIGIBILITY_CHANGED, data=data)


def _emit_status_changed(tenant: Tenant, previous: str) -> None:
    if previous == tenant.status:
        return
    data: dict[str, object] = {"appid": tenant.authorizer_appid, "status": tenant.status, "previous_status": previous}
    outbox_event(tenant_id=tenant.pk, type=EventType.TENANT_STATUS_CHANGED, data=data).save(force_insert=True)


# --- Authorization -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuthorizeResult:
    tenant: Tenant
    created: bool
    # The callback's session claimed the code (see authorization_code_receive): it may see the first key.
    claimed: bool = False


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def authorization_code_receive(
    *, component: Platform, code: str, authorizer_appid: str = "", pushed: bool = False, claim: str = ""
) -> AuthorizationCode:
    """Records a code so that it is exchanged once.

    `pushed`: it came in a verified push, so the sweep may retry it (tasks take ids, not secrets).
    `claim`: the hash of the callback's session value (tenants.views); the first claim of a code wins, and
    only the claiming session is shown the first API key. A code that neither a push nor a session vouched
    for is kept no longer than its exchange.
    """
    row, created = AuthorizationCode.objects.get_or_create(
        component=component,
        code_hash=_code_hash(code),
        defaults={
            "code": code,
            "authorizer_appid": authorizer_appid,
            "pushed": pushed,
            "claim_hash": claim,
        },
    )
    if not created and pushed and not row.pushed:
        AuthorizationCode.objects.filter(pk=row.pk).update(pushed=True)
    if not created and claim and not row.claim_hash:
        # Conditional: of two sessions bringing the same code at once, one claims it.
        AuthorizationCode.objects.filter(pk=row.pk, claim_hash="").update(claim_hash=claim)
    return row


def tenant_authorize(*, component: Platform, authorization_code: str, claim: str = "") -> AuthorizeResult:
    """Exchanges an authorization code and creates or updates the tenant.

    The callback and the `authorized` push carry the same code, in either order, possibly at the same time:
    the code's row is locked while it is exchanged, so WeChat is asked once and the outcome is the same.
    Any WeChat error rolls everything back: no half-written tenant. A code WeChat refuses (61009/61010) is
    marked used, so that nothing asks again; after any other failure a code that no push vouched for is
    forgotten, so that junk sent to the callback leaves no row behind.
    """
    row_id = authorization_code_receive(component=component, code=authorization_code, claim=claim).pk
    try:
        return _code_exchange(row_id=row_id, authorization_code=authorization_code, claim=claim)
    except AuthorizationCodeError:
        _code_forget(row_id=row_id, unusable=True)
        raise
    except Exception:
        _code_forget(row_id=row_id, unusable=False)
        raise


@transaction.atomic
def _code_forget(*, row_id: int, unusable: bool) -> None:
    row = AuthorizationCode.objects.select_for_update().filter(pk=row_id).first()
    if row is None or row.tenant_id is not None:
        return
    if not row.pushed and not row.claim_hash:
        row.delete()
    elif unusable:
        row.code = ""
        row.processed_at = timezone.now()
        row.save(update_fields=["code", "processed_at"])


def _code_exchange(*, row_id: int, authorization_code: str, claim: str) -> AuthorizeResult:
    with transaction.atomic():
        row = AuthorizationCode.objects.select_for_update().get(pk=row_id)
        claimed = bool(claim) and row.claim_hash == claim
        if row.tenant_id is not None:
            return AuthorizeResult(tenant=Tenant.objects.get(pk=row.tenant_id), created=False, claimed=claimed)
        if row.processed_at is not None:
            raise AuthorizationCodeError(61010, "authorization code already refused")
        # The code is exchanged with the platform that received it (the row is that platform's): WeChat issues
        # a code for one platform and refuses it to any other, which then changes only the other's row.
        component = Platform.objects.get(pk=row.component_id)
        client = component_client(component)
        auth = with_component_token(
            component,
            lambda token: client.api_query_auth(component_access_token=token, authorization_code=authorization_code),
        )
        info = with_component_token(
            component,
            lambda token: client.api_get_authorizer_info(
                component_access_token=token, authorizer_appid=auth.authorizer_appid
            ),
        )
        tenant, created = _tenant_upsert(
            component=component,
            appid=auth.authorizer_appid,
            info=info,
            func_ids=list(auth.func_ids),
            access_token=auth.access_token,
            expires_in=auth.expires_in,
            refresh_token=auth.refresh_token,
        )
        row.tenant = tenant
        row.authorizer_appid = tenant.authorizer_appid
        row.code = ""
        row.processed_at = timezone.now()
        row.save(update_fields=["tenant", "authorizer_appid", "code", "processed_at"])
    logger.info(
        "tenant authorized",
        extra={"component_appid": component.component_appid, "appid": tenant.authorizer_appid, "new_tenant": created},
    )
    return AuthorizeResult(tenant=tenant, created=created, claimed=claimed)


def tenant_authorize_pending(*, authorization_code_id: int) -> AuthorizeResult | None:
    """Exchanges a code recorded from a push (see authorization_code_receive); None if already done."""
    row = AuthorizationCode.objects.select_related("component").filter(pk=authorization_code_id).first()
    if row is None or not row.code:
        return None
    return tenant_authorize(component=row.component, authorization_code=row.code)


def _tenant_upsert(
    *,
    component: Platform,
    appid: str,
    info: AuthorizerInfo,
    func_ids: list[int],
    access_token: str | None,
    expires_in: int | None,
    refresh_token: str | None,
) -> tuple[Tenant, bool]:
    now = timezone.now()
    tenant = Tenant.objects.select_for_update().filter(component=component, authorizer_appid=appid).first()
    created = tenant is None
    if tenant is None:
        tenant = Tenant(component=component, authorizer_appid=appid)
    previous_status, previous_eligibility = tenant.status, tenant.eligibility
    tenant_onboard_fill(
        tenant,
        info=info,
        func_ids=func_ids,
        access_token=access_token,
        expires_in=expires_in,
        refresh_token=refresh_token,
        now=now,
    )
    tenant.save()
    if not created:
        # A new tenant can have no webhook yet; an existing one hears that it is active again or that its
        # permission sets changed what it may do.
        _emit_status_changed(tenant, previous_status)
        if previous_eligibility != tenant.eligibility:
            eligibility_event(tenant=tenant, previous=previous_eligibility, reason=tenant.eligibility_detail).save(
                force_insert=True
            )
    return tenant, created


# The profile strings of api_get_authorizer_info as stored: (tenant field, AuthorizerInfo attribute).
PROFILE_TEXT_FIELDS = (
    ("nickname", "nick_name"),
    ("head_img", "head_img"),
    ("original_id", "user_name"),
    ("alias", "alias"),
    ("principal_name", "principal_name"),
)


def profile_text(field: str, value: str | None) -> str:
    """A profile string from WeChat as its column can hold it: cut to the column's length, NUL bytes dropped
    (PostgreSQL refuses them). WeChat sets no length we could rely on (docs/wechat/lifecycle.md#authorizer-profile),
    and one value that does not fit must not fail an authorization or a reconciliation: the full value stays in
    `profile_raw`."""
    text = (value or "").replace("\x00", "")
    max_length: int | None = getattr(Tenant._meta.get_field(field), "max_length", None)
    return text[:max_length] if max_length is not None else text


def profile_raw(value: object) -> object:
    """authorizer_info as WeChat sent it, storable in a jsonb column (which refuses \\u0000 in any string)."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {profile_raw(k): profile_raw(v) for k, v in value.items()}
    if isinstance(value, list):
        return [profile_raw(v) for v in value]
    return value


def tenant_onboard_fill(
    tenant: Tenant,
    *,
    info: AuthorizerInfo,
    func_ids: list[int],
    access_token: str | None,
    expires_in: int | None,
    refresh_token: str | None,
    now: datetime,
) -> None:
    """Sets what an authorization gives a tenant (profile, grant, eligibility, tokens), without saving: the
    `authorized` push and reconciliation (a missed push) onboard an account the same way."""
    kind = AccountKind(str(info.account_kind))
    eligibility, detail = eligibility_for(account_kind=kind, func_ids=func_ids, account_status=info.account_status)
    tenant.account_status = info.account_status
    tenant.profile_raw = profile_raw(info.raw)
    tenant.profile_read_at = now
    tenant.listed_at = now
    for field, attribute in PROFILE_TEXT_FIELDS:
        setattr(tenant, field, profile_text(field, getattr(info, attribute)))
    tenant.account_kind = kind
    tenant.service_type_id = info.service_type_id
    tenant.verify_type_id = info.verify_type_id
    tenant.func_ids = sorted(set(func_ids))
    tenant.is_test_account = tenant.authorizer_appid in settings.WECHAT_RELEASE_TEST_APPIDS
    tenant.eligibility, tenant.eligibility_detail = eligibility, detail
    tenant.status = TenantStatus.ACTIVE
    tenant.authorized_at = now
    tenant.revoked_at = None
    # Re-authorization invalidates the previous refresh token (docs/wechat/endpoints.md#api_query_auth): always take the
    # new one.
    tenant.access_token = access_token or ""
    tenant.access_token_expires_at = now + timedelta(seconds=expires_in) if access_token and expires_in else None
    tenant.refresh_token = refresh_token or ""
    tenant.token_version += 1
    tenant.token_refreshed_at = now if access_token else None
    tenant.paused_until = None


@transaction.atomic
def tenant_revoke(*, component_id: int, authorizer_appid: str, revoked_at: datetime | None = None) -> Tenant | None:
    """The merchant revoked the authorization of one platform (or WeChat says so): purge tokens, stop syncs,
    keep history. The same account's authorization of another platform is another tenant, untouched.

    `revoked_at` is when WeChat says it happened; a revocation older than the latest authorization (a
    replayed or late `unauthorized` push) changes nothing.
    """
    tenant = (
        Tenant.objects.select_for_update().filter(component_id=component_id, authorizer_appid=authorizer_appid).first()
    )
    if tenant is None:
        return None
    # WeChat's CreateTime has whole seconds: only a revocation from an earlier second is older.
    if revoked_at is not None and tenant.authorized_at is not None:
        if revoked_at < tenant.authorized_at.replace(microsecond=0):
            return tenant
    previous = tenant.status
    _purge_tokens(tenant, status=TenantStatus.REVOKED)
    tenant.revoked_at = timezone.now()
    tenant.save(update_fields=[*_PURGED_FIELDS, "revoked_at"])
    _api_keys_limit_to_history(tenant, now=tenant.revoked_at)
    _emit_status_changed(tenant, previous)
    logger.info("tenant revoked", extra={"appid": tenant.authorizer_appid})
    return tenant


@transaction.atomic
def tenant_test_accounts_delete(*, component: Platform) -> int:
    """Deletes the platform's WeChat test accounts (WECHAT_RELEASE_TEST_APPIDS) with everything they own, and
    the codes still waiting for them (a pushed code the sweep would otherwise exchange into a test account
    later). For a rehearsal of the full-release test (the sandbox's release_check), whose account is nobody's
    merchant: the merchant list is left as it was. Returns the number of accounts deleted."""
    appids = settings.WECHAT_RELEASE_TEST_APPIDS
    AuthorizationCode.objects.filter(component=component, authorizer_appid__in=appids).delete()
    _total, by_model = Tenant.objects.filter(component=component, is_test_account=True).delete()
    return by_model.get(Tenant._meta.label, 0)


def _api_keys_limit_to_history(tenant: Tenant, *, now: datetime) -> None:
    """The keys of a revoked authorization read the history only, and expire after the grace period; a
    later authorization (perhaps by a new owner of the account) never revives them and gets a key of its own."""
    expiry = now + timedelta(days=settings.API_KEY_REVOKED_GRACE_DAYS)
    keys = TenantAPIKey.objects.filter(tenant=tenant, revoked=False, history_only=False)
    keys.filter(Q(expiry_date__isnull=True) | Q(expiry_date__gt=expiry)).update(expiry_date=expiry)
    keys.update(history_only=True)


# What _purge_tokens changes, for update_fields.
_PURGED_FIELDS = ("status", "access_token", "access_token_expires_at", "refresh_token", "token_version", "updated_at")


def _purge_tokens(tenant: Tenant, *, status: str) -> None:
    tenant.status = status
    tenant.access_token = ""
    tenant.access_token_expires_at = None
    tenant.refresh_token = ""
    tenant.token_version += 1


# --- Authorizer tokens -------------------------------------------------------------------------------


def tenant_token_fresh(tenant: Tenant, *, margin: timedelta, now: datetime | None = None) -> bool:
    """Whether the tenant's stored token outlives `margin` (the one "fresh enough, else refresh" test)."""
    return token_is_fresh(tenant.access_token, tenant.access_token_expires_at, margin=margin, now=now)


def tenant_access_token(*, tenant: Tenant) -> tuple[str, int]:
    """A usable authorizer access token and its version, refreshing it first if it is about to expire."""
    if tenant.status != TenantStatus.ACTIVE:
        raise TenantNotActive(tenant)
    if tenant_token_fresh(tenant, margin=USABLE_MARGIN):
        return tenant.access_token, tenant.token_version
    return tenant_token_refresh(tenant_id=tenant.pk, stale_version=tenant.token_version)


@dataclass(frozen=True)
class _RefreshOutcome:
    token: str | None = None
    version: int = 0
    error: Exception | None = None


def tenant_token_refresh(
    *, tenant_id: int, stale_version: int | None = None, margin: timedelta = AUTHORIZER_REFRESH_MARGIN
) -> tuple[str, int]:
    """Refreshes a tenant's authorizer access token, single-flight across processes and hosts.

    `stale_version`: the token version the caller saw fail or expire; if the stored token is newer (another
    process refreshed meanwhile) and still usable, it is returned without calling WeChat.
    Raises TenantNotActive, TenantHasNoToken or a WeChatError.
    """
    outcome = _token_refresh_locked(tenant_id=tenant_id, stale_version=stale_version, margin=margin)
    if outcome.error is not None:
        raise outcome.error
    assert outcome.token is not None
    return outcome.token, outcome.version


@transaction.atomic
def _token_refresh_locked(*, tenant_id: int, stale_version: int | None, margin: timedelta) -> _RefreshOutcome:
    with metrics.lock_wait("tenant_token"):
        # Only the tenant's row is locked: refreshes of one platform's accounts must not queue on its row.
        tenant = Tenant.objects.select_related("component").select_for_update(of=("self",)).get(pk=tenant_id)
    if tenant.status != TenantStatus.ACTIVE:
        return _RefreshOutcome(error=TenantNotActive(tenant))
    # Check again under the lock. A caller holding a stale version saw that token fail or expire: only a
    # newer stored token (another process refreshed while we waited) spares the call to WeChat.
    if stale_version is not None:
        if tenant.token_version != stale_version and tenant_token_fresh(tenant, margin=USABLE_MARGIN):
            return _RefreshOutcome(token=tenant.access_token, version=tenant.token_version)
    elif tenant_token_fresh(tenant, margin=margin):
        return _RefreshOutcome(token=tenant.access_token, version=tenant.token_version)
    # A consumer of the token authority needs no refresh token of its own (the authority holds them).
    if not tenant.refresh_token and not authority_configured():
        return _RefreshOutcome(error=TenantHasNoToken(tenant.authorizer_appid))
    try:
        result = _authorizer_token(tenant.component, tenant.authorizer_appid, tenant.refresh_token)
    except RefreshTokenError as exc:
        recovered = _recover_refresh_token(tenant.component, tenant.authorizer_appid, tenant.refresh_token)
        if recovered is None:
            _mark_needs_reauth(tenant, exc)
            return _RefreshOutcome(error=exc)
        tenant.refresh_token = recovered
        try:
            result = _authorizer_token(tenant.component, tenant.authorizer_appid, recovered)
        except RefreshTokenError as again:
            _mark_needs_reauth(tenant, again)
            return _RefreshOutcome(error=again)
        except WeChatError as other:
            _record_refresh_failure(tenant, other)
            return _RefreshOutcome(error=other)
    except AccountStateError as exc:
        _record_refresh_failure(tenant, exc)
        if exc.errcode in REVOKED_CODES:
            tenant_revoke(component_id=tenant.component_id, authorizer_appid=tenant.authorizer_appid)
        return _RefreshOutcome(error=exc)
    except WeChatError as exc:
        _record_refresh_failure(tenant, exc)
        return _RefreshOutcome(error=exc)
    now = timezone.now()
    tenant.access_token = result.access_token
    tenant.access_token_expires_at = now + timedelta(seconds=result.expires_in)
    if result.refresh_token:
        tenant.refresh_token = result.refresh_token
    tenant.token_version += 1
    tenant.token_refreshed_at = now
    tenant.save(
        update_fields=[
            "access_token",
            "access_token_expires_at",
            "refresh_token",
            "token_version",
            "token_refreshed_at",
            "updated_at",
        ]
    )
    return _RefreshOutcome(token=tenant.access_token, version=tenant.token_version)


def _authorizer_token(component: Platform, appid: str, refresh_token: str) -> AuthorizerToken:
    if authority_configured():
        return _authorizer_token_from_authority(component, appid)
    client = component_client(component)
    return with_component_token(
        component,
        lambda token: client.api_authorizer_token(
            component_access_token=token, authorizer_appid=appid, authorizer_refresh_token=refresh_token
        ),
    )


def _authorizer_token_from_authority(component: Platform, appid: str) -> AuthorizerToken:
    """Consumer mode (wxplatform.component.consumer): the token authority's answer as if WeChat had given it, so
    that the caller stores it, or records the failure, as it would a refresh. The authority's refusals map to
    the errors WeChat gives for the same state: revoked there is 61003 here (the account is revoked here too),
    needs re-authorization there is 61023 (needs re-authorization here), anything else is recorded only."""
    try:
        handed = authority_authorizer_token(component.component_appid, appid)
    except AuthorityRefused as exc:
        message = f"token authority: {exc.code}"
        if exc.status >= 500:
            raise TransportError(message, status=exc.status) from None
        if exc.code == "tenant_revoked":
            raise AccountStateError(61003, message) from None
        if exc.code == "tenant_needs_reauthorization":
            raise RefreshTokenError(61023, message) from None
        if exc.status == 401 or exc.code in ("service_key_out_of_scope", "platform_not_found"):
            raise ConfigurationError(None, message) from None
        raise AccountStateError(None, message) from None
    expires_in = int((handed.expires_at - timezone.now()).total_seconds())
    return AuthorizerToken(access_token=handed.access_token, expires_in=max(0, expires_in), refresh_token=None)


def _recover_refresh_token(component: Platform, appid: str, current: str) -> str | None:
    """The account's refresh token as listed by api_get_authorizer_list, if it differs from ours. Never in
    consumer mode: the token authority holds the refresh tokens."""
    if authority_configured():
        return None
    client = component_client(component)
    try:
        offset = 0
        while True:
            page = with_component_token(component, partial(_authorizer_list_page, client, offset))
            for item in page.items:
                if item.appid == appid:
                    return item.refresh_token if item.refresh_token and item.refresh_token != current else None
            offset += len(page.items)
            if not page.items or offset >= page.total_count:
                return None
    except WeChatError as exc:
        logger.warning("refresh token recovery failed: errcode %s", exc.errcode)
        return None


def _authorizer_list_page(client: WeChatClient, offset: int, token: str) -> AuthorizerListPage:
    return client.api_get_authorizer_list(component_access_token=token, offset=offset, count=_AUTHORIZER_LIST_PAGE)


_ERROR_FIELDS = ("last_error_code", "last_error_message", "last_error_at", "last_error_rid")


def _set_error(tenant: Tenant, exc: WeChatError) -> None:
    tenant.last_error_code = exc.errcode
    tenant.last_error_message = exc.errmsg[:500]
    tenant.last_error_at = timezone.now()
    # The rid lets staff ask WeChat what it saw (openapi/rid/get, docs/wechat/errors.md#rid).
    tenant.last_error_rid = exc.rid


def _record_refresh_failure(tenant: Tenant, exc: WeChatError) -> None:
    """A failed refresh is the tenant's last error, with its rid, until a sync succeeds."""
    _set_error(tenant, exc)
    tenant.save(update_fields=[*_ERROR_FIELDS, "updated_at"])


def _mark_needs_reauth(tenant: Tenant, exc: WeChatError) -> None:
    previous = tenant.status
    _purge_tokens(tenant, status=TenantStatus.NEEDS_REAUTH)
    _set_error(tenant, exc)
    tenant.save(update_fields=[*_PURGED_FIELDS, *_ERROR_FIELDS])
    _emit_status_changed(tenant, previous)
    logger.warning("tenant needs re-authorization", extra={"appid": tenant.authorizer_appid})


def tenants_with_expiring_tokens(*, within: timedelta) -> list[int]:
    """Ids of active tenants whose token expires within `within` (for the beat refresher). WeChat's release-test
    accounts are left out: the test uses the token it just obtained, and an account the test left authorized
    must not cost a refresh every two hours."""
    horizon = timezone.now() + within
    return list(
        Tenant.objects.filter(
            status=TenantStatus.ACTIVE,
            access_token_expires_at__lt=horizon,
            is_test_account=False,
            component__active=True,
        )
        .exclude(refresh_token="")
        .order_by("access_token_expires_at")
        .values_list("pk", flat=True)
    )


# --- The full-release test's API text message (docs/wechat/message-url.md#message-cases) ---------


def authorizer_message_answer(*, message_id: int) -> bool:
    """Answers a QUERY_AUTH_CODE message: exchanges its code (api_query_auth) and sends `<code>_from_api`
    to the sender with the authorizer token that code gave (message/custom/send). False if already done.

    The exchange is idempotent (tenant_authorize keeps the code's row); the message is marked answered only
    after the send, so a worker lost between the two may send it twice, never zero times."""
    message = AuthorizerMessage.objects.filter(pk=message_id, answered_at__isnull=True).first()
    if message is None or not message.query_auth_code:
        return False
    code = message.query_auth_code
    result = tenant_authorize(component=component_get(message.component_appid), authorization_code=code)
    token, _version = tenant_access_token(tenant=result.tenant)
    wechat_client().message_custom_send(access_token=token, touser=message.from_user, text=f"{code}_from_api")
    AuthorizerMessage.objects.filter(pk=message.pk, answered_at__isnull=True).update(
        answered_at=timezone.now(), query_auth_code=""
    )
    return True


# --- API keys ----------------------------------------------------------------------------------------


def api_key_issue(*, tenant: Tenant, name: str) -> tuple[TenantAPIKey, str]:
    """A new API key for the tenant. The raw key is returned once and never stored."""
    key, raw = TenantAPIKey.objects.create_key(name=name, tenant=tenant)
    return cast(TenantAPIKey, key), raw


@transaction.atomic
def api_key_issue_first(*, tenant: Tenant) -> str | None:
    """The tenant's first API key, if it has none yet (shown once on the authorization callback page)."""
    locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
    # Keys of an earlier, revoked authorization do not count: this authorization gets its own first key.
    if TenantAPIKey.objects.filter(tenant=locked, history_only=False).exists():
        return None
    _key, raw = api_key_issue(tenant=locked, name=_("First key"))
    return raw


@transaction.atomic
def api_key_replace(*, tenant: Tenant, name: str) -> tuple[TenantAPIKey, str]:
    """Deletes the tenant's keys named `name` and issues one in their place, for a key a tool issues afresh on
    every start (make run's demo key). Deleted, not revoked: such a key is nobody's credential to audit, and a
    revoked row per start would only pile up. The raw key is returned once (it is stored hashed, so a restart
    cannot show the previous one again: it issues a new one)."""
    locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
    TenantAPIKey.objects.filter(tenant=locked, name=name).delete()
    return api_key_issue(tenant=locked, name=name)


class APIKeyAlreadyRevoked(Exception):
    """The key was revoked already (perhaps by a concurrent rotation): nothing was issued."""


def api_key_revoke(*, key: TenantAPIKey) -> bool:
    """Revokes the key for good; False if it was already revoked (wxplatform.core.keys.key_revoke)."""
    return key_revoke(key)


@transaction.atomic
def api_key_rotate(*, key: TenantAPIKey, name: str | None = None) -> tuple[TenantAPIKey, str]:
    """Issues a new key for the same tenant (same name unless given) and revokes the old one, atomically:
    a client never ends up with neither key working, and a key is rotated once even if asked twice."""
    locked = TenantAPIKey.objects.select_for_update().get(pk=key.pk)
    if locked.revoked:
        raise APIKeyAlreadyRevoked(locked.prefix)
    new_key, raw = api_key_issue(tenant=locked.tenant, name=name or locked.name)
    api_key_revoke(key=locked)
    key.revoked = True
    return new_key, raw


# --- Push log --------------------------------------------------------------------------------------


def push_log_prune() -> int:
    """Deletes logged pushes older than PUSH_LOG_RETENTION_DAYS, and the message keys kept to spot WeChat's
    retries (which come within a minute), in batches."""
    cutoff = timezone.now() - timedelta(days=settings.PUSH_LOG_RETENTION_DAYS)
    return delete_in_batches(PushLog.objects.filter(received_at__lt=cutoff)) + delete_in_batches(
        AuthorizerMessage.objects.filter(received_at__lt=cutoff)
    )
