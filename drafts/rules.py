"""The sync's pure rules: the quota day and budget, why a tenant is not called, and what a sync did.

No I/O here (no database writes, no HTTP, no aiohttp): the engine (drafts.sync), the on-demand jobs
(drafts.services), the console and the metrics all decide with these same functions.
Quotas: docs/wechat/quota.md. What to retry: docs/wechat/errors.md.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings

from drafts.models import AttemptOutcome, JobState, SkipReason, SyncTrigger
from tenants.models import Eligibility, Tenant, TenantStatus
from tenants.quota import quota_day_of
from wxplatform.core.backoff import backoff_delay

# For on-demand syncs these are answered from storage ("cached") rather than skipped.
SERVED_FROM_STORAGE = frozenset(
    {
        SkipReason.PAUSED,
        SkipReason.QUOTA_BUDGET,
        SkipReason.RECENTLY_SYNCED,
        SkipReason.WECHAT_DEGRADED,
        SkipReason.RATE_WINDOW,
    }
)
# Outcomes after which an on-demand job has succeeded: it has a count to show.
SUCCESS_OUTCOMES = frozenset({AttemptOutcome.CHANGED, AttemptOutcome.UNCHANGED, AttemptOutcome.CACHED})


@dataclass(frozen=True)
class TenantResult:
    """What one sync did for one tenant. `message` is WeChat's errmsg (or our reason) for failures;
    `reason` says why a skipped or cached tenant was not called."""

    tenant_id: int
    outcome: AttemptOutcome
    total_count: int | None = None
    errcode: int | None = None
    message: str = ""
    reason: SkipReason | None = None
    # WeChat's request id from a failure's errmsg (docs/wechat/errors.md#rid).
    rid: str = ""
    # A retryable error (-1, 45011, transport) that outlasted its attempts: trying later may succeed.
    retryable: bool = False


@dataclass
class SyncReport:
    results: list[TenantResult] = field(default_factory=list)

    def extend(self, other: SyncReport) -> None:
        self.results.extend(other.results)

    @property
    def changed(self) -> int:
        return sum(1 for r in self.results if r.outcome == AttemptOutcome.CHANGED)

    @property
    def unchanged(self) -> int:
        return sum(1 for r in self.results if r.outcome == AttemptOutcome.UNCHANGED)

    @property
    def skipped(self) -> Counter[str]:
        """Skipped and answered-from-storage tenants by reason."""
        return Counter(
            str(r.reason) for r in self.results if r.outcome in (AttemptOutcome.SKIPPED, AttemptOutcome.CACHED)
        )

    @property
    def failed(self) -> Counter[int | None]:
        """Failed tenants by errcode (None: transport failures and errors without a code)."""
        return Counter(r.errcode for r in self.results if r.outcome == AttemptOutcome.FAILED)


def job_state_for(outcome: str) -> JobState:
    """The final state of an on-demand job whose sync ended with `outcome`."""
    return JobState.SUCCEEDED if outcome in SUCCESS_OUTCOMES else JobState.FAILED


# --- Quota -------------------------------------------------------------------------------------------

DAY_SECONDS = 86400.0


def quota_day(now: datetime) -> date:
    """The quota day `now` belongs to: WeChat's daily quotas reset at midnight China time (docs/wechat/quota.md)."""
    return quota_day_of(now)


def quota_reset_at(now: datetime) -> datetime:
    """When the current quota day ends."""
    zone = ZoneInfo(settings.DRAFT_QUOTA_TIMEZONE)
    tomorrow = now.astimezone(zone).date() + timedelta(days=1)
    return datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=zone)


def quota_used_today(tenant: Tenant, today: date) -> int:
    return tenant.quota_used if tenant.quota_day == today else 0


def quota_budget(trigger: str, daily_limit: int | None = None) -> int:
    """draft/count calls per tenant per day that syncs with this trigger may spend: a share of the account's own
    daily_limit as openapi/quota/get reported it, or of DRAFT_QUOTA_DAILY_LIMIT before the first reading
    (docs/wechat/quota.md#default-daily-limits)."""
    scheduled = trigger == SyncTrigger.SCHEDULE
    share = settings.DRAFT_QUOTA_SCHEDULE_SHARE if scheduled else settings.DRAFT_QUOTA_ON_DEMAND_SHARE
    limit = daily_limit if daily_limit is not None else settings.DRAFT_QUOTA_DAILY_LIMIT
    return int(limit * share)


def component_rate_limit(tenant: Tenant) -> tuple[int, int] | None:
    """(calls, seconds) this platform may make for the account per window, as openapi/quota/get last reported
    component_rate_limit; None when not reported or 0/0 (no limit) (docs/wechat/quota.md#rate-limits)."""
    calls, seconds = tenant.quota_component_rate_calls, tenant.quota_component_rate_seconds
    if not calls or not seconds:
        return None
    return calls, seconds


# --- Polling cadence ---------------------------------------------------------------------------------


def poll_interval(quiet_for: float, *, daily_limit: int | None) -> float:
    """Seconds from one scheduled poll of an account to the next, given how long (seconds) its draft box has
    been quiet: no change seen and no event announcing one (docs/polling.md#the-policy).

    A share (DRAFT_POLL_QUIET_FRACTION, a hundredth by default) of the quiet time, the heuristic HTTP caches
    apply to a response's Last-Modified age: an account quiet for up to a day is polled at the floor, one quiet
    for a week every 1.7 hours. Between DRAFT_POLL_MIN_INTERVAL and DRAFT_POLL_MAX_INTERVAL, and never shorter than
    a day divided by the calls the schedule may spend on the account (its quota_budget), even above the ceiling:
    the quota is the account's, shared with its other tools.
    """
    interval: float = settings.DRAFT_POLL_QUIET_FRACTION * max(quiet_for, 0.0)
    interval = min(max(interval, settings.DRAFT_POLL_MIN_INTERVAL), settings.DRAFT_POLL_MAX_INTERVAL)
    budget = quota_budget(SyncTrigger.SCHEDULE, daily_limit)
    # No budget at all: once a day, when skip_reason will have a new quota day to judge.
    quota_floor = DAY_SECONDS / budget if budget > 0 else DAY_SECONDS
    return max(interval, quota_floor)


def next_poll_at(
    *, base: datetime, fetched_at: datetime, activity_at: datetime | None, daily_limit: int | None
) -> datetime:
    """When the account is due again after a poll at `fetched_at` (planned at `base`, the run's start for a
    scheduled chunk, so that the cadence keeps to the beat's ticks), its last activity being `activity_at`."""
    quiet_for = (fetched_at - activity_at).total_seconds() if activity_at is not None else 0.0
    return base + timedelta(seconds=poll_interval(quiet_for, daily_limit=daily_limit))


# --- Whether to call WeChat --------------------------------------------------------------------------


def skip_reason(tenant: Tenant, *, trigger: str, now: datetime) -> SkipReason | None:
    """Why WeChat must not be asked for this tenant's count now, if it must not."""
    if tenant.status != TenantStatus.ACTIVE:
        return SkipReason.NOT_ACTIVE
    if tenant.eligibility != Eligibility.ELIGIBLE:
        return SkipReason.INELIGIBLE
    if tenant.paused_until is not None and tenant.paused_until > now:
        return SkipReason.PAUSED
    if quota_used_today(tenant, quota_day(now)) >= quota_budget(trigger, tenant.quota_daily_limit):
        return SkipReason.QUOTA_BUDGET
    fetched_at = tenant.draft_count_fetched_at
    # An event says the count changed since: a read moments ago is no answer (events are bounded apart, drafts.events).
    if trigger == SyncTrigger.EVENT:
        return None
    if fetched_at is not None and (now - fetched_at).total_seconds() < settings.DRAFT_SYNC_MIN_INTERVAL:
        return SkipReason.RECENTLY_SYNCED
    return None


def skipped_result(tenant: Tenant, *, trigger: str, reason: SkipReason) -> TenantResult:
    """The answer for a tenant that is not called: on demand, the stored count where the rules allow it."""
    if trigger != SyncTrigger.SCHEDULE and reason in SERVED_FROM_STORAGE:
        return TenantResult(tenant.pk, AttemptOutcome.CACHED, total_count=tenant.draft_count, reason=reason)
    return skipped(tenant.pk, reason)


def skipped(tenant_id: int, reason: SkipReason) -> TenantResult:
    return TenantResult(tenant_id, AttemptOutcome.SKIPPED, reason=reason)


def retry_delay(attempt: int) -> float:
    """Seconds before fetch round `attempt + 1` after retryable errors (-1, 45011, transport)."""
    return backoff_delay(attempt, base=settings.DRAFT_SYNC_BACKOFF_BASE, cap=settings.DRAFT_SYNC_BACKOFF_MAX)
