"""Whose calls spent an account's draft/count quota: this platform's or others' (docs/wechat/quota.md#attribution).

WeChat's `used` (openapi/quota/get) counts every caller of the account's quota: this platform, other third
parties and the merchant's own tools. This platform's own calls of a quota day are the sync's counter
(Tenant.quota_used, as it stood when the reading was taken: quota_used_at_read) and the calls the provider's
other services made through the gateway (GatewayUsage rows of the day for /cgi-bin/draft/count). What is left
of `used` is what others used.

Everything here is read from storage; nothing calls WeChat. The readings come from openapi/quota/get
(tenants.quota.tenant_quota_read: after a 45009, during reconciliation, from the console).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from django.conf import settings
from django.db.models import Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from tenants.models import Tenant
from tenants.quota import DRAFT_COUNT_CGI_PATH, MONTHLY_CLEARS, clears_used, quota_day_of, quota_day_start
from tenants.selectors import merchant_tenants
from wxplatform.authority.models import GatewayUsage

# Every tenant field the attribution reads (besides its platform's appid), so that a caller may load only these.
QUOTA_TENANT_FIELDS = (
    "component",
    "authorizer_appid",
    "quota_day",
    "quota_used",
    "quota_daily_limit",
    "quota_wechat_used",
    "quota_remain",
    "quota_read_at",
    "quota_used_at_read",
    "quota_clears",
    "quota_clears_month",
)
ATTRIBUTION_FIELDS = ("id", "component__component_appid", *QUOTA_TENANT_FIELDS[1:])


@dataclass(frozen=True)
class QuotaAttribution:
    """An account's draft/count quota as WeChat last counted it, split between this platform and others.

    `used`, `remain` and `used_by_others` are those of the last reading (`read_at`) and are None when no reading
    was taken this quota day: WeChat's counts restarted at midnight (DRAFT_QUOTA_TIMEZONE) and are unknown
    until the next one. `used_by_us` is this platform's calls of the reading's quota day (of today, without
    one); `daily_limit` is the last one read, an account's limit does not reset."""

    api: str
    daily_limit: int | None
    used: int | None
    remain: int | None
    used_by_us: int
    used_by_others: int | None
    read_at: datetime | None
    clears_left: int

    @property
    def others_share(self) -> float | None:
        """The share of the daily limit others used (None while unknown)."""
        if self.used_by_others is None or not self.daily_limit:
            return None
        return self.used_by_others / self.daily_limit


def _gateway_calls(tenants: Sequence[Tenant], day: date) -> dict[tuple[str, str], int]:
    """draft/count calls made through the gateway on `day`, per (component appid, authorizer appid), summed over
    every service key: one query for the whole list."""
    if not tenants:
        return {}
    rows = (
        GatewayUsage.objects.filter(
            day=day, path=DRAFT_COUNT_CGI_PATH, authorizer_appid__in={t.authorizer_appid for t in tenants}
        )
        .values("component_appid", "authorizer_appid")
        .annotate(calls=Sum("calls"))
        .order_by()
    )
    return {(row["component_appid"], row["authorizer_appid"]): row["calls"] for row in rows}


def quota_attributions(tenants: Iterable[Tenant], *, now: datetime | None = None) -> dict[int, QuotaAttribution]:
    """The attribution of each tenant (loaded with ATTRIBUTION_FIELDS), by tenant id, in two queries at most."""
    now = now or timezone.now()
    today = quota_day_of(now)
    tenants = list(tenants)
    gateway = _gateway_calls(tenants, today)
    answers: dict[int, QuotaAttribution] = {}
    for tenant in tenants:
        through_gateway = gateway.get((tenant.component.component_appid, tenant.authorizer_appid), 0)
        read_at = tenant.quota_read_at
        read_today = read_at is not None and quota_day_of(read_at) == today
        used = remain = others = None
        if read_today:
            ours = (tenant.quota_used_at_read or 0) + through_gateway
            used, remain = tenant.quota_wechat_used, tenant.quota_remain
            # Clamped: gateway calls made after the reading are not in its `used` yet.
            others = max(0, used - ours) if used is not None else None
        else:
            ours = (tenant.quota_used if tenant.quota_day == today else 0) + through_gateway
        answers[tenant.pk] = QuotaAttribution(
            api=DRAFT_COUNT_CGI_PATH,
            daily_limit=tenant.quota_daily_limit,
            used=used,
            remain=remain,
            used_by_us=ours,
            used_by_others=others,
            read_at=read_at,
            clears_left=max(0, MONTHLY_CLEARS - clears_used(tenant, now=now)),
        )
    return answers


def quota_attribution(*, tenant: Tenant, now: datetime | None = None) -> QuotaAttribution:
    return quota_attributions([tenant], now=now)[tenant.pk]


def others_over_share(attribution: QuotaAttribution) -> bool:
    """Whether others used more than DRAFT_QUOTA_OTHERS_ALERT_SHARE of the account's daily limit today."""
    share = attribution.others_share
    return share is not None and share > settings.DRAFT_QUOTA_OTHERS_ALERT_SHARE


def attributions_with_others_today(*, now: datetime | None = None) -> dict[int, QuotaAttribution]:
    """The attribution of every merchant account whose quota was read this quota day and whose reading counted
    more calls than the sync had made (the status page, the metrics): the only ones others may have used. Two
    queries; an account without other users costs nothing."""
    now = now or timezone.now()
    tenants = (
        merchant_tenants()
        .filter(quota_read_at__gte=quota_day_start(now), quota_wechat_used__gt=Coalesce("quota_used_at_read", 0))
        .select_related("component")
        .only(*ATTRIBUTION_FIELDS)
    )
    return {pk: a for pk, a in quota_attributions(tenants, now=now).items() if a.used_by_others}


def others_over_share_list(*, now: datetime | None = None) -> list[tuple[Tenant, QuotaAttribution]]:
    """Accounts whose quota others used over DRAFT_QUOTA_OTHERS_ALERT_SHARE of today, largest share first."""
    attributions = attributions_with_others_today(now=now)
    over = [pk for pk, a in attributions.items() if others_over_share(a)]
    tenants = Tenant.objects.filter(pk__in=over).only("nickname", "authorizer_appid")
    pairs = [(t, attributions[t.pk]) for t in tenants]
    return sorted(pairs, key=lambda pair: (-(pair[1].others_share or 0), pair[0].pk))
