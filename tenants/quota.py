"""Each account's own draft/count quota, as WeChat reports it, its clear_quota resets, and rid look-ups.

An account's daily_limit is its own (1000 is only where new accounts start, docs/wechat/quota.md#default-daily-limits):
openapi/quota/get with the account's token tells it (docs/wechat/endpoints.md#openapi_quota_get). It is read during
reconciliation and after a 45009. clear_quota spends one of the account's 10 monthly resets; WeChat does not
say how many are left, so this service counts the ones it made (docs/wechat/endpoints.md#clear_quota).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone

from tenants.models import Tenant
from tenants.services import TenantHasNoToken, TenantNotActive, tenant_access_token, tenant_token_refresh
from wxplatform.component.clients import wechat_client
from wxplatform.component.services import ComponentNotReady
from wxplatform.core.observability import MASK, redact
from wxplatform.wechat.errors import ClearQuotaLimitError, TokenError, WeChatError
from wxplatform.wechat.types import Quota, RidInfo

T = TypeVar("T")

logger = logging.getLogger(__name__)

DRAFT_COUNT_CGI_PATH = "/cgi-bin/draft/count"
# WeChat's monthly budget of clears per account, shared with the merchant's own console
# (docs/wechat/quota.md#clear_quota-budget).
MONTHLY_CLEARS = 10
QUOTA_FIELDS = (
    "quota_daily_limit",
    "quota_wechat_used",
    "quota_remain",
    "quota_read_at",
    "quota_used_at_read",
    "quota_rate_calls",
    "quota_rate_seconds",
    "quota_component_rate_calls",
    "quota_component_rate_seconds",
    "updated_at",
)


def quota_month(now: datetime) -> str:
    """The month the clear budget counts in, in the quota's time zone (docs/wechat/quota.md#reset-time)."""
    return now.astimezone(ZoneInfo(settings.DRAFT_QUOTA_TIMEZONE)).strftime("%Y-%m")


def clears_used(tenant: Tenant, *, now: datetime | None = None) -> int:
    """clear_quota calls this service made for the account this month."""
    month = quota_month(now or timezone.now())
    return tenant.quota_clears if tenant.quota_clears_month == month else 0


def quota_day_of(now: datetime) -> date:
    """The quota day `now` belongs to: WeChat's daily counts restart at midnight in DRAFT_QUOTA_TIMEZONE
    (docs/wechat/quota.md#reset-time)."""
    return now.astimezone(ZoneInfo(settings.DRAFT_QUOTA_TIMEZONE)).date()


def quota_day_start(now: datetime) -> datetime:
    """When the quota day of `now` began."""
    day = quota_day_of(now)
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(settings.DRAFT_QUOTA_TIMEZONE))


def tenant_quota_store(*, tenant_id: int, quota: Quota, read_at: datetime) -> None:
    """Stores a reading unless a newer one is stored already (a conditional update, no lock), with the sync's
    own calls of the day at that moment (0 when its counter is of an earlier day)."""
    rates: dict[str, int | None] = {}
    for prefix, limit in (("quota_rate", quota.rate_limit), ("quota_component_rate", quota.component_rate_limit)):
        # A reading without the block (the legacy answer) keeps nothing stale: the limit is then unknown.
        rates[f"{prefix}_calls"] = limit.call_count if limit is not None else None
        rates[f"{prefix}_seconds"] = limit.refresh_second if limit is not None else None
    Tenant.objects.filter(pk=tenant_id).exclude(quota_read_at__gt=read_at).update(
        quota_daily_limit=quota.daily_limit,
        quota_wechat_used=quota.used,
        quota_remain=quota.remain,
        quota_read_at=read_at,
        quota_used_at_read=Case(When(quota_day=quota_day_of(read_at), then=F("quota_used")), default=Value(0)),
        updated_at=read_at,
        **rates,
    )


def with_tenant_token(tenant: Tenant, call: Callable[[str], T]) -> T:
    """`call(token)` with the tenant's authorizer token; a token error (40001/40014/42001) refreshes once and
    retries once (docs/wechat/errors.md#retry-policy). Raises TenantNotActive, TenantHasNoToken or a WeChatError."""
    token, version = tenant_access_token(tenant=tenant)
    try:
        return call(token)
    except TokenError:
        token, _version = tenant_token_refresh(tenant_id=tenant.pk, stale_version=version)
        return call(token)


def tenant_quota_read(*, tenant: Tenant) -> Quota:
    """Reads the account's draft/count quota from WeChat and stores it. Raises what with_tenant_token raises."""
    client = wechat_client()
    quota = with_tenant_token(
        tenant, lambda token: client.openapi_quota_get(access_token=token, cgi_path=DRAFT_COUNT_CGI_PATH)
    )
    tenant_quota_store(tenant_id=tenant.pk, quota=quota, read_at=timezone.now())
    return quota


@dataclass(frozen=True)
class ClearOutcome:
    cleared: bool
    clears_used: int
    quota: Quota | None = None


def tenant_quota_clear(*, tenant: Tenant) -> ClearOutcome:
    """clear_quota for the account with its own token: its daily counts restart, which lifts a 45009 pause.

    The clear is counted only when WeChat accepted it; 48006 (the month's clears are spent) is returned as
    cleared=False. Other failures raise. The quota is read again afterwards when possible.
    """
    client = wechat_client()
    try:
        with_tenant_token(tenant, lambda token: client.clear_quota(access_token=token, appid=tenant.authorizer_appid))
    except ClearQuotaLimitError:
        logger.info("clear_quota refused (48006)", extra={"appid": tenant.authorizer_appid})
        return ClearOutcome(cleared=False, clears_used=clears_used(tenant))
    used = _count_clear(tenant_id=tenant.pk)
    quota: Quota | None = None
    try:
        quota = tenant_quota_read(tenant=tenant)
    except (TenantNotActive, TenantHasNoToken, ComponentNotReady, WeChatError) as exc:
        # The clear happened; a failed re-read only leaves the previous reading.
        logger.warning("quota read after clear_quota failed: %s", type(exc).__name__)
    return ClearOutcome(cleared=True, clears_used=used, quota=quota)


@transaction.atomic
def _count_clear(*, tenant_id: int) -> int:
    now = timezone.now()
    month = quota_month(now)
    tenant = Tenant.objects.select_for_update().only("quota_clears", "quota_clears_month").get(pk=tenant_id)
    tenant.quota_clears = (tenant.quota_clears if tenant.quota_clears_month == month else 0) + 1
    tenant.quota_clears_month = month
    # The account's counts restart now: our own count too, and a 45009 pause is over.
    Tenant.objects.filter(pk=tenant_id).update(
        quota_clears=tenant.quota_clears,
        quota_clears_month=month,
        quota_used=0,
        paused_until=None,
        updated_at=now,
    )
    return tenant.quota_clears


# --- rids ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RidExplanation:
    """openapi/rid/get's answer with every token and secret masked: safe to show to staff."""

    rid: str
    invoke_time: datetime | None
    cost_in_ms: int | None
    request_url: str
    request_body: str
    response_body: str
    client_ip: str


def tenant_rid_explain(*, tenant: Tenant, rid: str) -> RidExplanation:
    """What WeChat saw of a failed call made with this tenant's token (openapi/rid/get, within 7 days,
    docs/wechat/endpoints.md#openapi_rid_get). Raises TenantNotActive, TenantHasNoToken or a WeChatError
    (76001 not found or too old, 76002 malformed, 76003 not this account's)."""
    client = wechat_client()
    used: list[str] = []

    def call(token: str) -> RidInfo:
        used.append(token)
        return client.openapi_rid_get(access_token=token, rid=rid)

    info = with_tenant_token(tenant, call)

    def clean(text: str) -> str:
        # WeChat's credential patterns, and the account's token itself wherever else it appears.
        cleaned: str = redact(text)
        for token in used:
            cleaned = cleaned.replace(token, MASK)
        return cleaned

    invoked = datetime.fromtimestamp(info.invoke_time, tz=timezone.get_current_timezone()) if info.invoke_time else None
    return RidExplanation(
        rid=rid,
        invoke_time=invoked,
        cost_in_ms=info.cost_in_ms,
        request_url=clean(info.request_url),
        request_body=clean(info.request_body),
        response_body=clean(info.response_body),
        client_ip=info.client_ip,
    )
