"""The draft-count sync engine: one batch of tenants in, one bulk write out.

Every sync goes through `sync_tenants`: a scheduled chunk of 500 tenants, an on-demand job for one tenant,
a CLI run. A batch is handled in three steps:

1. plan: decide per tenant whether WeChat may be called (status, eligibility, 45009 pause, daily quota
   budget, minimum interval) and make sure its token outlives the batch;
2. fetch: draft/count for every planned tenant through one aiohttp fan-out, under the platform-wide rate
   limit; token errors refresh once and retry once, retryable errors retry a bounded number of rounds with
   capped exponential backoff and jitter;
3. write: a constant number of queries whatever the batch size (bulk updates and inserts), in one
   transaction together with marking the chunk done, so that a redelivered chunk changes nothing.

Rules: protocol §6 (errcodes), §8 (quotas), STYLE §6 (what to retry).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import F, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from drafts.models import AttemptOutcome, DraftSnapshot, SnapshotReason, SyncAttempt, SyncChunk, SyncRun, SyncTrigger
from drafts.ratelimit import draft_count_limiter
from tenants.models import Eligibility, Tenant, TenantStatus
from tenants.services import TenantHasNoToken, TenantNotActive, tenant_revoke, tenant_token_refresh
from wxplatform import metrics
from wxplatform.component.services import ComponentNotReady
from wxplatform.wechat.bulk import DraftCountResult, fetch_draft_counts_async
from wxplatform.wechat.errors import (
    INELIGIBLE_CODES,
    REVOKED_CODES,
    QuotaError,
    RetryableError,
    TokenError,
    WeChatError,
)

logger = logging.getLogger(__name__)

# A token that expires within this margin is refreshed before the batch, so that it cannot expire mid-fetch
# (a chunk takes seconds; the beat refresher normally renews tokens 30 minutes ahead).
TOKEN_MARGIN = timedelta(minutes=5)
# Idle keep-alive connections older than this are not reused: WeChat may have closed them meanwhile.
_SESSION_IDLE_SECONDS = 25.0

# The tenant columns the engine reads; the encrypted refresh token is not among them (tenant_token_refresh
# loads it under its own lock), so a batch decrypts one secret per tenant.
SYNC_FIELDS = (
    "id",
    "authorizer_appid",
    "status",
    "eligibility",
    "access_token",
    "access_token_expires_at",
    "token_version",
    "draft_count",
    "draft_count_fetched_at",
    "last_snapshot_at",
    "quota_day",
    "quota_used",
    "paused_until",
)


class SkipReason(models.TextChoices):
    NOT_ACTIVE = "not_active", gettext_lazy("Authorization revoked or to be renewed")
    INELIGIBLE = "ineligible", gettext_lazy("Not eligible for draft/count")
    NO_TOKEN = "no_token", gettext_lazy("No API credentials")
    PAUSED = "paused", gettext_lazy("Daily quota exhausted, paused until it resets")
    QUOTA_BUDGET = "quota_budget", gettext_lazy("Daily quota budget used")
    RECENTLY_SYNCED = "recently_synced", gettext_lazy("Synced moments ago")


# For on-demand syncs these are answered from storage ("cached") rather than skipped.
_SERVED_FROM_STORAGE = frozenset({SkipReason.PAUSED, SkipReason.QUOTA_BUDGET, SkipReason.RECENTLY_SYNCED})


@dataclass(frozen=True)
class TenantResult:
    """What one sync did for one tenant. `message` is WeChat's errmsg for failures, the reason for skips."""

    tenant_id: int
    outcome: AttemptOutcome
    total_count: int | None = None
    errcode: int | None = None
    message: str = ""
    reason: SkipReason | None = None
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


# --- Quota -------------------------------------------------------------------------------------------


def quota_day(now: datetime) -> date:
    """The quota day `now` belongs to: WeChat's daily quotas reset at midnight China time (protocol §8)."""
    return now.astimezone(ZoneInfo(settings.DRAFT_QUOTA_TIMEZONE)).date()


def quota_reset_at(now: datetime) -> datetime:
    """When the current quota day ends."""
    zone = ZoneInfo(settings.DRAFT_QUOTA_TIMEZONE)
    tomorrow = now.astimezone(zone).date() + timedelta(days=1)
    return datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=zone)


def quota_used_today(tenant: Tenant, today: date) -> int:
    return tenant.quota_used if tenant.quota_day == today else 0


def quota_budget(trigger: str) -> int:
    """draft/count calls per tenant per day that syncs with this trigger may spend."""
    scheduled = trigger == SyncTrigger.SCHEDULE
    share = settings.DRAFT_QUOTA_SCHEDULE_SHARE if scheduled else settings.DRAFT_QUOTA_ON_DEMAND_SHARE
    return int(settings.DRAFT_QUOTA_DAILY_LIMIT * share)


def skip_reason(tenant: Tenant, *, trigger: str, now: datetime) -> SkipReason | None:
    """Why WeChat must not be asked for this tenant's count now, if it must not."""
    if tenant.status != TenantStatus.ACTIVE:
        return SkipReason.NOT_ACTIVE
    if tenant.eligibility != Eligibility.ELIGIBLE:
        return SkipReason.INELIGIBLE
    if tenant.paused_until is not None and tenant.paused_until > now:
        return SkipReason.PAUSED
    if quota_used_today(tenant, quota_day(now)) >= quota_budget(trigger):
        return SkipReason.QUOTA_BUDGET
    fetched_at = tenant.draft_count_fetched_at
    if fetched_at is not None and (now - fetched_at).total_seconds() < settings.DRAFT_SYNC_MIN_INTERVAL:
        return SkipReason.RECENTLY_SYNCED
    return None


def skipped_result(tenant: Tenant, *, trigger: str, reason: SkipReason) -> TenantResult:
    """The answer for a tenant that is not called: on demand, the stored count where the rules allow it."""
    if trigger != SyncTrigger.SCHEDULE and reason in _SERVED_FROM_STORAGE:
        return TenantResult(
            tenant.pk, AttemptOutcome.CACHED, total_count=tenant.draft_count, message=reason, reason=reason
        )
    return _skipped(tenant.pk, reason)


def _skipped(tenant_id: int, reason: SkipReason) -> TenantResult:
    return TenantResult(tenant_id, AttemptOutcome.SKIPPED, message=reason, reason=reason)


def backoff_delay(attempt: int) -> float:
    """Seconds to wait before retry number `attempt` (1-based): capped exponential, half of it jitter."""
    ceiling: float = min(settings.DRAFT_SYNC_BACKOFF_MAX, settings.DRAFT_SYNC_BACKOFF_BASE * 2 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def syncable_tenants() -> QuerySet[Tenant]:
    """Tenants WeChat may be asked about (revoked, needs-reauth and ineligible ones never are)."""
    return Tenant.objects.filter(status=TenantStatus.ACTIVE, eligibility=Eligibility.ELIGIBLE)


# --- Fetching ----------------------------------------------------------------------------------------


class _Fetcher:
    """An event loop and a keep-alive aiohttp session, kept for the life of a worker process so that chunk
    after chunk reuses its connections to WeChat. It holds no tenant state; tokens pass through."""

    def __init__(self, base_url: str, concurrency: int, connect_timeout: float, read_timeout: float) -> None:
        self.base_url = base_url
        self.concurrency = concurrency
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.loop = asyncio.new_event_loop()
        self.session: aiohttp.ClientSession | None = None
        self.last_used = 0.0

    def fetch(self, items: Sequence[tuple[int, str]]) -> list[DraftCountResult[int]]:
        return self.loop.run_until_complete(self._fetch(items))

    def close(self) -> None:
        if self.session is not None:
            self.loop.run_until_complete(self.session.close())
            self.session = None
        self.loop.close()

    async def _fetch(self, items: Sequence[tuple[int, str]]) -> list[DraftCountResult[int]]:
        now = time.monotonic()
        if self.session is not None and now - self.last_used > _SESSION_IDLE_SECONDS:
            await self.session.close()
            self.session = None
        if self.session is None:
            connector = aiohttp.TCPConnector(limit=self.concurrency, keepalive_timeout=_SESSION_IDLE_SECONDS)
            self.session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
        try:
            return await fetch_draft_counts_async(
                self.base_url,
                items,
                concurrency=self.concurrency,
                connect_timeout=self.connect_timeout,
                read_timeout=self.read_timeout,
                session=self.session,
                on_call=metrics.observe_wechat_call,
            )
        finally:
            self.last_used = time.monotonic()


# One per process and configuration. Keyed by pid: a prefork child must not use an event loop or sockets
# inherited from its parent.
_fetchers: dict[tuple[int, str, int, float, float], _Fetcher] = {}


def _fetcher() -> _Fetcher:
    key = (
        os.getpid(),
        settings.WECHAT_API_BASE,
        settings.DRAFT_SYNC_CONCURRENCY,
        settings.WECHAT_CONNECT_TIMEOUT,
        settings.WECHAT_READ_TIMEOUT,
    )
    fetcher = _fetchers.get(key)
    if fetcher is None:
        fetcher = _fetchers[key] = _Fetcher(*key[1:])
    return fetcher


def close_fetchers() -> None:
    """Closes this process's HTTP sessions (at exit, and between tests that change settings)."""
    pid = os.getpid()
    for key, fetcher in list(_fetchers.items()):
        del _fetchers[key]
        if key[0] == pid:
            fetcher.close()


atexit.register(close_fetchers)


def _fetch(items: Sequence[tuple[int, str]]) -> list[DraftCountResult[int]]:
    metrics.observe_rate_limit_wait(draft_count_limiter().acquire(len(items)))
    return _fetcher().fetch(items)


# --- The engine --------------------------------------------------------------------------------------


@dataclass
class _Work:
    """One tenant's progress through a batch."""

    tenant: Tenant
    token: str = ""
    version: int = 0
    calls: int = 0
    token_retried: bool = False
    result: TenantResult | None = None
    fetched_at: datetime | None = None
    snapshot: SnapshotReason | None = None
    paused_until: datetime | None = None
    rejected: str = ""
    revoke: bool = False


def sync_tenants(tenants: Sequence[Tenant], *, trigger: str, chunk: SyncChunk | None = None) -> SyncReport | None:
    """Syncs these tenants (loaded with SYNC_FIELDS) and writes the outcome; None if `chunk` turned out to be
    done already (a redelivered task that raced the first delivery)."""
    now = timezone.now()
    works = [_Work(tenant=t) for t in tenants]
    pending = _plan(works, trigger=trigger, now=now)
    _fetch_rounds(pending, trigger=trigger)
    report = SyncReport([w.result for w in works if w.result is not None])
    if not _write(works, trigger=trigger, chunk=chunk):
        return None
    metrics.record_sync_results(trigger, (r.outcome for r in report.results))
    return report


def _plan(works: list[_Work], *, trigger: str, now: datetime) -> list[_Work]:
    pending: list[_Work] = []
    for work in works:
        tenant = work.tenant
        reason = skip_reason(tenant, trigger=trigger, now=now)
        if reason is not None:
            work.result = skipped_result(tenant, trigger=trigger, reason=reason)
            continue
        expires_at = tenant.access_token_expires_at
        if tenant.access_token and expires_at is not None and expires_at - now > TOKEN_MARGIN:
            work.token, work.version = tenant.access_token, tenant.token_version
        # Rare (the beat refresher runs ahead of expiry), so refreshed one by one under each tenant's lock.
        elif not _refresh(work, stale_version=None):
            continue
        pending.append(work)
    return pending


def _refresh(work: _Work, *, stale_version: int | None) -> bool:
    """Gets a fresh token for the tenant (single-flight, tenants.services); False, with the result set, if none."""
    tenant = work.tenant
    try:
        work.token, work.version = tenant_token_refresh(
            tenant_id=tenant.pk, stale_version=stale_version, margin=TOKEN_MARGIN
        )
    except TenantNotActive:
        work.result = _skipped(tenant.pk, SkipReason.NOT_ACTIVE)
        return False
    except TenantHasNoToken:
        work.result = _skipped(tenant.pk, SkipReason.NO_TOKEN)
        return False
    except ComponentNotReady as exc:
        work.result = TenantResult(tenant.pk, AttemptOutcome.FAILED, errcode=exc.errcode, message=exc.reason)
        return False
    except WeChatError as exc:
        work.result = _failure(work, exc)
        return False
    return True


def _fetch_rounds(pending: list[_Work], *, trigger: str) -> None:
    budget = quota_budget(trigger)
    today = quota_day(timezone.now())
    attempt = 0
    backoff = False
    while pending:
        attempt += 1
        if backoff:
            time.sleep(backoff_delay(attempt - 1))
        results = _fetch([(index, work.token) for index, work in enumerate(pending)])
        fetched_at = timezone.now()
        retry: list[_Work] = []
        backoff = False
        for outcome in results:
            work = pending[outcome.key]
            work.calls += 1
            if outcome.error is None:
                assert outcome.total_count is not None
                _success(work, outcome.total_count, fetched_at)
                continue
            error = outcome.error
            used = quota_used_today(work.tenant, today) + work.calls
            if isinstance(error, TokenError) and not work.token_retried and used < budget:
                # 40001/40014/42001: refresh once (someone else may already have), retry once.
                work.token_retried = True
                if _refresh(work, stale_version=work.version):
                    retry.append(work)
            elif isinstance(error, RetryableError) and attempt < settings.DRAFT_SYNC_MAX_ATTEMPTS and used < budget:
                retry.append(work)
                backoff = True
            else:
                work.result = _failure(work, error)
        pending = retry


def _success(work: _Work, total_count: int, fetched_at: datetime) -> None:
    tenant = work.tenant
    changed = tenant.draft_count != total_count
    heartbeat = timedelta(hours=settings.DRAFT_SNAPSHOT_HEARTBEAT_HOURS)
    if changed:
        work.snapshot = SnapshotReason.CHANGED
    elif tenant.last_snapshot_at is None or fetched_at - tenant.last_snapshot_at >= heartbeat:
        work.snapshot = SnapshotReason.HEARTBEAT
    work.fetched_at = fetched_at
    outcome = AttemptOutcome.CHANGED if changed else AttemptOutcome.UNCHANGED
    work.result = TenantResult(tenant.pk, outcome, total_count=total_count)


def _failure(work: _Work, error: WeChatError) -> TenantResult:
    """Records what the error means for the tenant (pause, ineligible, revoked) and returns the result."""
    code = error.errcode
    if isinstance(error, QuotaError):
        # 45009: no more calls for this account until its quota resets (protocol §6, §8).
        work.paused_until = quota_reset_at(timezone.now())
    elif code in INELIGIBLE_CODES:
        work.rejected = _rejection_detail(code)
    elif code in REVOKED_CODES:
        work.revoke = True
    return TenantResult(
        work.tenant.pk,
        AttemptOutcome.FAILED,
        errcode=code,
        message=error.errmsg[:500],
        retryable=error.retryable,
    )


def _rejection_detail(code: int | None) -> str:
    if code == 61007:
        return _("WeChat refused draft/count (61007): permission set 11 was not granted to this platform.")
    return _("WeChat refused draft/count (%(code)s): this account may not use the draft APIs.") % {"code": code}


# --- Writing -----------------------------------------------------------------------------------------


def attempt_for(result: TenantResult, *, trigger: str, at: datetime) -> SyncAttempt:
    return SyncAttempt(
        tenant_id=result.tenant_id,
        at=at,
        trigger=trigger,
        outcome=result.outcome,
        errcode=result.errcode,
        message=result.message[:500],
        total_count=result.total_count,
    )


# Tenant rows of a batch are written with one UPDATE ... FROM (VALUES ...) per kind of outcome: one statement
# whatever the batch size, cheap to build and to execute (an ORM bulk_update of 500 rows would compile
# thousands of CASE branches). The VALUES columns are column1, column2, ... on PostgreSQL and SQLite alike.
# Identifiers come from the model's metadata; every value is a query parameter.
_QUOTA = "quota_used = CASE WHEN t.quota_day = %s THEN t.quota_used + v.{calls} ELSE v.{calls} END, quota_day = %s"
_SUCCESS_SET = (
    # Never replace a newer fetch (an on-demand job that finished first) with this older one.
    "draft_count = CASE WHEN {newer} THEN v.column2 ELSE t.draft_count END, "
    "draft_count_fetched_at = CASE WHEN {newer} THEN v.column3 ELSE t.draft_count_fetched_at END, "
    "last_snapshot_at = CASE WHEN v.column4 THEN v.column3 ELSE t.last_snapshot_at END, "
    "last_sync_attempt_at = v.column3, " + _QUOTA.format(calls="column5")
).format(newer="(t.draft_count_fetched_at IS NULL OR t.draft_count_fetched_at < v.column3)")
_FAILURE_SET = (
    # The last good count stays: only the error fields, the quota and the consequences change.
    "last_sync_attempt_at = %s, last_error_at = %s, "
    "last_error_code = CASE WHEN v.column3 THEN v.column2 ELSE NULL END, "
    "last_error_message = v.column4, "
    "paused_until = CASE WHEN v.column6 THEN v.column7 ELSE t.paused_until END, "
    "eligibility = CASE WHEN v.column8 THEN %s ELSE t.eligibility END, "
    "eligibility_detail = CASE WHEN v.column8 THEN v.column9 ELSE t.eligibility_detail END, "
    + _QUOTA.format(calls="column5")
)


def _update_tenants(assignments: str, set_params: Sequence[Any], rows: Sequence[Sequence[Any]]) -> None:
    if not rows:
        return
    width = len(rows[0])
    row_sql = "(" + ", ".join(["%s"] * width) + ")"
    sql = (
        f"UPDATE {connection.ops.quote_name(Tenant._meta.db_table)} AS t SET {assignments} "  # noqa: S608
        f"FROM (VALUES {', '.join([row_sql] * len(rows))}) AS v WHERE t.id = v.column1"
    )
    with connection.cursor() as cursor:
        params: list[Any] = [*set_params, *(value for row in rows for value in row)]
        cursor.execute(sql, params)


def _write(works: Sequence[_Work], *, trigger: str, chunk: SyncChunk | None) -> bool:
    """Writes a batch's outcome in a constant number of queries. False if the chunk was already done."""
    now = timezone.now()
    today = quota_day(now)
    ops = connection.ops
    at_now, day = ops.adapt_datetimefield_value(now), ops.adapt_datefield_value(today)
    succeeded: list[_Work] = []
    failed: list[tuple[object, ...]] = []
    attempts: list[SyncAttempt] = []
    revoked: list[str] = []
    for work in works:
        result = work.result
        if result is None:
            continue
        tenant = work.tenant
        if result.outcome in (AttemptOutcome.CHANGED, AttemptOutcome.UNCHANGED):
            assert work.fetched_at is not None and result.total_count is not None
            succeeded.append(work)
        elif result.outcome == AttemptOutcome.FAILED:
            # NULLs are kept out of VALUES (their column type could not be inferred): flags say what applies.
            paused_until = ops.adapt_datetimefield_value(work.paused_until) if work.paused_until else at_now
            failed.append(
                (
                    tenant.pk,
                    result.errcode or 0,
                    result.errcode is not None,
                    result.message[:500],
                    work.calls,
                    work.paused_until is not None,
                    paused_until,
                    bool(work.rejected),
                    work.rejected[:255],
                )
            )
            if work.revoke:
                revoked.append(tenant.authorizer_appid)
        # Routine scheduled fetches are told by the tenant row and the snapshots; failures, skips and
        # every on-demand sync are kept as attempts.
        if trigger != SyncTrigger.SCHEDULE or result.outcome in (AttemptOutcome.FAILED, AttemptOutcome.SKIPPED):
            attempts.append(attempt_for(result, trigger=trigger, at=work.fetched_at or now))
    with transaction.atomic():
        if chunk is not None:
            # Locked and checked again: a redelivery racing the first delivery writes nothing twice.
            if not SyncChunk.objects.select_for_update().filter(pk=chunk.pk, done_at__isnull=True).exists():
                return False
        _lock_and_recheck_snapshots(works, succeeded)
        rows: list[tuple[object, ...]] = []
        snapshots: list[DraftSnapshot] = []
        for w in succeeded:
            assert w.fetched_at is not None and w.result is not None and w.result.total_count is not None
            fetched_at = ops.adapt_datetimefield_value(w.fetched_at)
            rows.append((w.tenant.pk, w.result.total_count, fetched_at, w.snapshot is not None, w.calls))
            if w.snapshot is not None:
                snapshots.append(
                    DraftSnapshot(
                        tenant_id=w.tenant.pk,
                        total_count=w.result.total_count,
                        fetched_at=w.fetched_at,
                        reason=w.snapshot,
                    )
                )
        _update_tenants(_SUCCESS_SET, [day, day], rows)
        _update_tenants(_FAILURE_SET, [at_now, at_now, Eligibility.REJECTED.value, day, day], failed)
        if snapshots:
            # (tenant, fetched_at) is unique: writing the same fetch twice is a no-op.
            DraftSnapshot.objects.bulk_create(snapshots, ignore_conflicts=True)
        if attempts:
            SyncAttempt.objects.bulk_create(attempts)
        for appid in revoked:
            # 61003: the account no longer authorizes the platform (rare: one locked update each).
            tenant_revoke(authorizer_appid=appid)
        if chunk is not None:
            _chunk_done(chunk, works, now)
    return True


def _lock_and_recheck_snapshots(works: Sequence[_Work], succeeded: Sequence[_Work]) -> None:
    """Locks the batch's tenant rows (in id order, so that concurrent batches cannot deadlock) and decides the
    snapshots again against the rows as they are now: another sync of the same tenant (an on-demand job while
    its chunk runs) may have written since this batch read them, and the same value must not be recorded twice.
    A fetch older than the stored one records no snapshot; its row update is a no-op for the count anyway."""
    written = (AttemptOutcome.CHANGED, AttemptOutcome.UNCHANGED, AttemptOutcome.FAILED)
    ids = sorted({w.tenant.pk for w in works if w.result is not None and w.result.outcome in written})
    if not ids:
        return
    current = {
        pk: (count, fetched_at, snapshot_at)
        for pk, count, fetched_at, snapshot_at in Tenant.objects.select_for_update()
        .filter(pk__in=ids)
        .order_by("pk")
        .values_list("pk", "draft_count", "draft_count_fetched_at", "last_snapshot_at")
    }
    heartbeat = timedelta(hours=settings.DRAFT_SNAPSHOT_HEARTBEAT_HOURS)
    for work in succeeded:
        assert work.fetched_at is not None and work.result is not None
        row = current.get(work.tenant.pk)
        work.snapshot = None
        if row is None:
            continue  # deleted meanwhile
        count, fetched_at, snapshot_at = row
        if fetched_at is not None and fetched_at >= work.fetched_at:
            continue
        if count != work.result.total_count:
            work.snapshot = SnapshotReason.CHANGED
        elif snapshot_at is None or work.fetched_at - snapshot_at >= heartbeat:
            work.snapshot = SnapshotReason.HEARTBEAT


def _chunk_done(chunk: SyncChunk, works: Sequence[_Work], now: datetime) -> None:
    report = SyncReport([w.result for w in works if w.result is not None])
    SyncChunk.objects.filter(pk=chunk.pk).update(done_at=now)
    SyncRun.objects.filter(pk=chunk.run_id).update(
        chunks_done=F("chunks_done") + 1,
        synced=F("synced") + report.changed,
        unchanged=F("unchanged") + report.unchanged,
        skipped=F("skipped") + sum(report.skipped.values()),
        failed=F("failed") + sum(report.failed.values()),
    )
    SyncRun.objects.filter(pk=chunk.run_id, chunks_done__gte=F("chunks_total"), finished_at__isnull=True).update(
        finished_at=now
    )
