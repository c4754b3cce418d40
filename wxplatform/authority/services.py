"""The token authority: the provider's other services get the component and authorizer access tokens from here
instead of refreshing them at WeChat themselves.

Each api_component_token or api_authorizer_token call may invalidate the previous token once WeChat's 5-minute
overlap has passed (docs/wechat/tokens.md), so exactly one deployment may call them: this one. A hand-out
answers from storage; a token within its refresh margin is refreshed first, single-flight through the same row
lock as the syncs (component_token_and_expiry, tenant_token_refresh), never once per caller. Every request of
an authenticated key is counted and leaves a TokenHandout row; neither holds the token.

What is handed out for an account: a token usable for any API the authorization grants. An account that lacks
permission set 11/100, or is not an Official Account, is ineligible for draft counts only: its token is valid
for the other APIs and is handed out. Refused (403, with a code), because there is no usable token: a revoked
authorization, one that must be renewed, one without API credentials, an account WeChat reports deregistered,
banned or frozen, and WeChat's full-release test accounts (their token belongs to the release test).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar, cast

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _

from tenants.models import Eligibility, Tenant, TenantStatus
from tenants.services import TenantHasNoToken, TenantNotActive, tenant_token_fresh, tenant_token_refresh
from wxplatform.authority.models import HandoutKind, HandoutOutcome, ServiceKey, TokenHandout
from wxplatform.component.models import Platform
from wxplatform.component.services import (
    ComponentInactive,
    ComponentNotReady,
    ComponentUnknown,
    component_get,
    component_token_with_expiry,
)
from wxplatform.core import metrics
from wxplatform.core.errcodes import errcode_label
from wxplatform.core.freshness import AUTHORIZER_REFRESH_MARGIN
from wxplatform.core.keys import key_revoke
from wxplatform.core.pruning import delete_in_batches
from wxplatform.wechat.errors import REVOKED_CODES, AccountStateError, RefreshTokenError, WeChatError

logger = logging.getLogger(__name__)

Resolved = TypeVar("Resolved")


@dataclass(frozen=True)
class HandOut:
    access_token: str = field(repr=False)
    expires_at: datetime


class HandoutRefused(Exception):
    """No token for this request: `outcome` says which kind of refusal (the view's HTTP status), `code` is
    the stable error code, `message` is for people."""

    def __init__(self, outcome: HandoutOutcome, code: str, message: str) -> None:
        self.outcome = outcome
        self.code = code
        self.message = message
        super().__init__(f"{outcome}: {code}")


# --- Keys --------------------------------------------------------------------------------------------


def service_key_issue(
    *,
    name: str,
    component: Platform | None = None,
    expiry_date: datetime | None = None,
    allowed_paths: list[str] | None = None,
) -> tuple[ServiceKey, str]:
    """A new service key, for one platform or (None) every platform, allowed `allowed_paths` through the WeChat
    gateway. The raw key is returned once, never stored."""
    paths = allowed_paths_clean(allowed_paths or [])
    key, raw = ServiceKey.objects.create_key(
        name=name, component=component, expiry_date=expiry_date, allowed_paths=paths
    )
    return cast(ServiceKey, key), raw


class InvalidPathPattern(ValueError):
    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        super().__init__(
            _("%(pattern)r is not a WeChat path pattern (it starts with /; letters, digits, _ - . / and *).")
            % {"pattern": pattern[:140]}
        )


_PATH_PATTERN = re.compile(r"^/[A-Za-z0-9_\-./*]{0,127}$")


def allowed_paths_clean(patterns: list[str]) -> list[str]:
    """The patterns, stripped, without blanks and duplicates, in order; InvalidPathPattern for a malformed one."""
    cleaned: list[str] = []
    for raw in patterns:
        pattern = raw.strip()
        if not pattern:
            continue
        if not _PATH_PATTERN.match(pattern) or ".." in pattern:
            raise InvalidPathPattern(pattern)
        if pattern not in cleaned:
            cleaned.append(pattern)
    return cleaned


def service_key_allow_paths(*, key: ServiceKey, patterns: list[str]) -> None:
    """Sets the WeChat paths the key may call through the gateway (takes effect on its next request)."""
    key.allowed_paths = allowed_paths_clean(patterns)
    key.save(update_fields=["allowed_paths"])


def service_key_revoke(*, key: ServiceKey) -> bool:
    """Revokes the key for good; False if it was already revoked (wxplatform.core.keys.key_revoke)."""
    return key_revoke(key)


# --- Hand-outs ---------------------------------------------------------------------------------------


def key_platform(key: ServiceKey, component_appid: str) -> Platform:
    """The platform named in the URL, if the key may fetch its tokens."""
    _check_scope(key, component_appid)
    try:
        platform = component_get(component_appid)
    except ComponentUnknown:
        raise HandoutRefused(HandoutOutcome.NOT_FOUND, "platform_not_found", _("No such platform.")) from None
    if not platform.active:
        raise _inactive()
    return platform


# What a hand-out or a gateway call reads of the account (_check_usable, the freshness test, the version). The
# other fields, the refresh token among them, are neither loaded nor decrypted; a refusal that reads one loads
# it then, by a query of its own, and the tests that count a call's queries keep this list complete.
_ACCOUNT_FIELDS = (
    "component",
    "authorizer_appid",
    "status",
    "is_test_account",
    "eligibility",
    "eligibility_detail",
    "access_token",
    "access_token_expires_at",
    "token_version",
    "component__component_appid",
    "component__active",
)


def key_account(key: ServiceKey, component_appid: str, authorizer_appid: str) -> Tenant | None:
    """The account with this appid on the platform named in the URL (None when there is none), if the key may
    use that platform (refused as by key_platform). One query when the account exists: the account with its
    platform's appid and switch; the platform is looked up on its own (key_platform) only when no account
    matches, so that an unknown or switched-off platform is told apart from an unknown account."""
    _check_scope(key, component_appid)
    try:
        tenant = (
            Tenant.objects.select_related("component")
            .only(*_ACCOUNT_FIELDS)
            .get(component__component_appid=component_appid, authorizer_appid=authorizer_appid)
        )
    except Tenant.DoesNotExist:
        key_platform(key, component_appid)
        return None
    if not tenant.component.active:
        raise _inactive()
    return tenant


def _check_scope(key: ServiceKey, component_appid: str) -> None:
    if key.component is not None and key.component.component_appid != component_appid:
        raise HandoutRefused(
            HandoutOutcome.FORBIDDEN,
            "service_key_out_of_scope",
            _("This service key may fetch the tokens of platform %(appid)s only.")
            % {"appid": key.component.component_appid},
        )


def _inactive() -> HandoutRefused:
    return HandoutRefused(
        HandoutOutcome.FORBIDDEN, "platform_inactive", _("This platform is switched off; it hands out no tokens.")
    )


def _record(
    *,
    key: ServiceKey,
    kind: HandoutKind,
    component_appid: str,
    authorizer_appid: str,
    known_platform: bool,
    outcome: HandoutOutcome,
    error_code: str = "",
) -> None:
    TokenHandout.objects.create(
        key=key,
        kind=kind,
        component_appid=component_appid[:64],
        authorizer_appid=authorizer_appid[:64],
        outcome=outcome,
        error_code=error_code,
        at=timezone.now(),
    )
    # Labels stay bounded: an appid that names no platform here is counted as "unknown".
    metrics.record_token_handout(kind, component_appid if known_platform else "unknown", outcome)


def _handout(
    *,
    key: ServiceKey,
    kind: HandoutKind,
    component_appid: str,
    authorizer_appid: str = "",
    resolve: Callable[[], Resolved],
    fetch: Callable[[Resolved], HandOut],
) -> HandOut:
    """`resolve` finds what the URL names (refusing an unknown or forbidden platform), `fetch` its token."""
    known = False
    try:
        resolved = resolve()
        known = True
        handed = fetch(resolved)
    except HandoutRefused as refused:
        _record(
            key=key,
            kind=kind,
            component_appid=component_appid,
            authorizer_appid=authorizer_appid,
            known_platform=known,
            outcome=refused.outcome,
            error_code=refused.code,
        )
        raise
    _record(
        key=key,
        kind=kind,
        component_appid=component_appid,
        authorizer_appid=authorizer_appid,
        known_platform=True,
        outcome=HandoutOutcome.ISSUED,
    )
    logger.info(
        "token handed out",
        extra={"kind": str(kind), "component_appid": component_appid, "appid": authorizer_appid, "service": key.name},
    )
    return handed


def authority_component_token(*, key: ServiceKey, component_appid: str) -> HandOut:
    """The platform's component access token, valid for at least COMPONENT_REFRESH_MARGIN."""
    return _handout(
        key=key,
        kind=HandoutKind.COMPONENT,
        component_appid=component_appid,
        resolve=lambda: key_platform(key, component_appid),
        fetch=component_token_for,
    )


def authority_authorizer_token(*, key: ServiceKey, component_appid: str, authorizer_appid: str) -> HandOut:
    """An authorized account's access token, valid for at least AUTHORIZER_REFRESH_MARGIN."""
    return _handout(
        key=key,
        kind=HandoutKind.AUTHORIZER,
        component_appid=component_appid,
        authorizer_appid=authorizer_appid,
        resolve=lambda: key_account(key, component_appid, authorizer_appid),
        fetch=lambda tenant: usable_authorizer_token(tenant)[1],
    )


def usable_authorizer_token(tenant: Tenant | None) -> tuple[Tenant, HandOut, int]:
    """The account's access token (and its version), refreshed first when within its margin; HandoutRefused
    when there is no account (None, from key_account) or it has no usable token (see the module's docstring)."""
    if tenant is None:
        raise HandoutRefused(
            HandoutOutcome.NOT_FOUND, "tenant_not_found", _("No account with this AppID authorized the platform.")
        )
    _check_usable(tenant)
    if tenant_token_fresh(tenant, margin=AUTHORIZER_REFRESH_MARGIN):
        assert tenant.access_token_expires_at is not None
        handed = HandOut(access_token=tenant.access_token, expires_at=tenant.access_token_expires_at)
        return tenant, handed, tenant.token_version
    return tenant, *authorizer_token_refresh(tenant, stale_version=None)


def authorizer_token_refresh(tenant: Tenant, *, stale_version: int | None) -> tuple[HandOut, int]:
    """Refreshes the account's token, single-flight under its row lock: the first caller refreshes, the others
    find it fresh (or, with `stale_version`, find a newer version than the one that failed)."""
    try:
        tenant_token_refresh(tenant_id=tenant.pk, stale_version=stale_version, margin=AUTHORIZER_REFRESH_MARGIN)
    except (TenantNotActive, RefreshTokenError):
        tenant.refresh_from_db(fields=["status"])
        _check_usable(tenant)
        raise _state_refusal(TenantStatus.NEEDS_REAUTH) from None
    except TenantHasNoToken:
        raise _no_token() from None
    except AccountStateError as exc:
        if exc.errcode in REVOKED_CODES:
            raise _state_refusal(TenantStatus.REVOKED) from None
        raise HandoutRefused(
            HandoutOutcome.FORBIDDEN,
            "tenant_refused_by_wechat",
            _("WeChat refuses a token for this account (errcode %(code)s).") % {"code": errcode_label(exc.errcode)},
        ) from None
    except ComponentInactive:
        raise _inactive() from None
    except ComponentNotReady as exc:
        raise _not_ready(exc) from None
    except WeChatError as exc:
        raise _unavailable(exc) from None
    # Token, expiry and version read together, as stored by whichever caller refreshed.
    tenant.refresh_from_db(fields=["access_token", "access_token_expires_at", "token_version"])
    assert tenant.access_token_expires_at is not None
    handed = HandOut(access_token=tenant.access_token, expires_at=tenant.access_token_expires_at)
    return handed, tenant.token_version


def component_token_for(platform: Platform) -> HandOut:
    """The platform's component token, refreshed first when within its margin; HandoutRefused otherwise."""
    try:
        token, expires_at = component_token_with_expiry(platform)
    except ComponentInactive:
        raise _inactive() from None
    except ComponentNotReady as exc:
        raise _not_ready(exc) from None
    except WeChatError as exc:
        raise _unavailable(exc) from None
    return HandOut(access_token=token, expires_at=expires_at)


def _check_usable(tenant: Tenant) -> None:
    """Refuses an account that has no usable token (see the module's docstring for what is handed out)."""
    if tenant.status != TenantStatus.ACTIVE:
        raise _state_refusal(tenant.status)
    if tenant.is_test_account:
        raise HandoutRefused(
            HandoutOutcome.FORBIDDEN,
            "tenant_test_account",
            _("This is one of WeChat's full-release test accounts; its token is not handed out."),
        )
    if tenant.eligibility == Eligibility.ACCOUNT_STATUS:
        raise HandoutRefused(
            HandoutOutcome.FORBIDDEN,
            "tenant_ineligible",
            _("WeChat reports the account as deregistered, banned or frozen: %(reason)s")
            % {"reason": tenant.eligibility_detail or Eligibility(tenant.eligibility).label},
        )
    # The access token first: the refresh token is read (and decrypted) only when there is no access token.
    if not tenant.access_token and not tenant.refresh_token:
        raise _no_token()


def _state_refusal(status: str) -> HandoutRefused:
    if status == TenantStatus.REVOKED:
        return HandoutRefused(
            HandoutOutcome.FORBIDDEN,
            "tenant_revoked",
            _("The account revoked its authorization of this platform; there is no token."),
        )
    return HandoutRefused(
        HandoutOutcome.FORBIDDEN,
        "tenant_needs_reauthorization",
        _("The account's authorization is no longer valid; the account must authorize this platform again."),
    )


def _no_token() -> HandoutRefused:
    return HandoutRefused(
        HandoutOutcome.FORBIDDEN,
        "tenant_has_no_token",
        _("The authorization gave no API credentials for this account."),
    )


def _not_ready(exc: ComponentNotReady) -> HandoutRefused:
    return HandoutRefused(
        HandoutOutcome.UNAVAILABLE,
        "component_not_ready",
        _("The platform cannot obtain a component access token now: %(reason)s") % {"reason": exc.reason},
    )


def _unavailable(exc: WeChatError) -> HandoutRefused:
    detail = f"errcode {errcode_label(exc.errcode)}" if exc.errcode is not None else type(exc).__name__
    return HandoutRefused(
        HandoutOutcome.UNAVAILABLE,
        "token_unavailable",
        _("WeChat did not give a token just now (%(detail)s); try again shortly.") % {"detail": detail},
    )


# --- Housekeeping ------------------------------------------------------------------------------------


def token_handout_prune() -> int:
    """Deletes hand-out rows older than TOKEN_HANDOUT_RETENTION_DAYS, in batches."""
    cutoff = timezone.now() - timedelta(days=settings.TOKEN_HANDOUT_RETENTION_DAYS)
    return delete_in_batches(TokenHandout.objects.filter(at__lt=cutoff))
