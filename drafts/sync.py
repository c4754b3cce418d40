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

The rules it applies (quota budget, skip reasons, results) are in drafts.rules; the HTTP session and the
rate limit in drafts.fetching. Errcodes: docs/wechat/errors.md; quotas: docs/wechat/quota.md; what to retry:
docs/wechat/errors.md#retry-policy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from drafts.fetching import draft_counts_fetch
from drafts.models import (
    AttemptOutcome,
    DraftSnapshot,
    SkipReason,
    SnapshotReason,
    SyncAttempt,
    SyncChunk,
    SyncRun,
    SyncTrigger,
)
from drafts.rules import (
    SyncReport,
    TenantResult,
    component_rate_limit,
    next_poll_at,
    quota_budget,
    quota_day,
    quota_reset_at,
    quota_used_today,
    retry_delay,
    skip_reason,
    skipped,
    skipped_result,
)
from tenants.models import Eligibility, EventType, OutboxEvent, Tenant
from tenants.services import (
    TenantHasNoToken,
    TenantNotActive,
    eligibility_event,
    outbox_event,
    tenant_revoke,
    tenant_token_fresh,
    tenant_token_refresh,
)
from tenants.tasks import read_quota
from webhooks.selectors import subscribed_tenants
from webhooks.tasks import deliver_soon as webhooks_deliver_soon
from wxplatform.component.services import ComponentNotReady
from wxplatform.core import degradation, metrics
from wxplatform.core.bulk_update import BulkUpdate
from wxplatform.core.freshness import BATCH_TOKEN_MARGIN
from wxplatform.core.queueing import enqueue
from wxplatform.core.throttling import windows_take
from wxplatform.core.times import machine_time
from wxplatform.wechat.client import call_outcome
from wxplatform.wechat.errors import (
    INELIGIBLE_CODES,
    REVOKED_CODES,
    QuotaError,
    RetryableError,
    TokenError,
    WeChatError,
)

logger = logging.getLogger(__name__)

# The Redis counters of each account's component_rate_limit windows.
RATE_WINDOW_SCOPE = "wechat-component-rate"

# The tenant columns the engine reads; the encrypted refresh token is not among them (tenant_token_refresh
# loads it under its own lock), so a batch decrypts one secret per tenant.
SYNC_FIELDS = (
    "id",
    "component_id",
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
    "quota_daily_limit",
    "quota_component_rate_calls",
    "quota_component_rate_seconds",
    "paused_until",
    "next_poll_at",
    "draft_activity_at",
)


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
    # The stored count this fetch replaces, as read under the row lock in _write (for draft_count.changed).
    previous_count: int | None = None
    # The error of the last call, while a retry is planned.
    last_error: WeChatError | None = None
    # The last draft-box activity, as read under the row lock in _write (for the next poll's time).
    activity_at: datetime | None = None


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
    for work in works:
        if work.paused_until is not None:
            # 45009: ask WeChat what this account's own limit and use really are.
            enqueue(read_quota, work.tenant.pk)
    metrics.record_sync_results(trigger, (r.outcome for r in report.results))
    return report


def _plan(works: list[_Work], *, trigger: str, now: datetime) -> list[_Work]:
    pending: list[_Work] = []
    # A platform WeChat is degraded for gets a few probe calls per batch; its other accounts wait, quota unspent.
    degraded = degradation.states({w.tenant.component_id for w in works})
    probes = dict.fromkeys(degraded, degradation.probes_allowed())
    for work in works:
        tenant = work.tenant
        reason = skip_reason(tenant, trigger=trigger, now=now)
        if reason is None and tenant.component_id in degraded:
            if probes[tenant.component_id] > 0:
                probes[tenant.component_id] -= 1
            else:
                reason = SkipReason.WECHAT_DEGRADED
        if reason is not None:
            work.result = skipped_result(tenant, trigger=trigger, reason=reason)
            continue
        pending.append(work)
    # One shared budget per account and component_rate_limit window, across every worker (one Redis round trip).
    pending = _within_rate_windows(pending, trigger=trigger)
    planned, pending = pending, []
    for work in planned:
        tenant = work.tenant
        if tenant_token_fresh(tenant, margin=BATCH_TOKEN_MARGIN, now=now):
            work.token, work.version = tenant.access_token, tenant.token_version
        # Rare (the beat refresher runs ahead of expiry), so refreshed one by one under each tenant's lock.
        elif not _refresh(work, stale_version=None):
            continue
        pending.append(work)
    return pending


def _within_rate_windows(works: list[_Work], *, trigger: str) -> list[_Work]:
    """The works whose next call fits the account's component_rate_limit window (docs/wechat/quota.md#rate-limits),
    counting that call; the others get a skip (RATE_WINDOW) or, when retrying, the failure of their last error.
    Accounts whose limit is unknown or 0/0 are not counted."""
    limited = [(w, limit) for w in works if (limit := component_rate_limit(w.tenant)) is not None]
    budgets = [(f"{w.tenant.component_id}:{w.tenant.authorizer_appid}", calls, secs) for w, (calls, secs) in limited]
    fits = windows_take(RATE_WINDOW_SCOPE, budgets)
    refused = {id(w) for (w, _limit), ok in zip(limited, fits, strict=True) if not ok}
    for work in works:
        if id(work) in refused:
            if work.last_error is None:
                work.result = skipped_result(work.tenant, trigger=trigger, reason=SkipReason.RATE_WINDOW)
            else:
                work.result = _failure(work, work.last_error)
    return [w for w in works if id(w) not in refused]


def _refresh(work: _Work, *, stale_version: int | None) -> bool:
    """Gets a fresh token for the tenant (single-flight, tenants.services); False, with the result set, if none."""
    tenant = work.tenant
    try:
        work.token, work.version = tenant_token_refresh(
            tenant_id=tenant.pk, stale_version=stale_version, margin=BATCH_TOKEN_MARGIN
        )
    except TenantNotActive:
        work.result = skipped(tenant.pk, SkipReason.NOT_ACTIVE)
        return False
    except TenantHasNoToken:
        work.result = skipped(tenant.pk, SkipReason.NO_TOKEN)
        return False
    except ComponentNotReady as exc:
        work.result = TenantResult(tenant.pk, AttemptOutcome.FAILED, errcode=exc.errcode, message=exc.reason)
        return False
    except WeChatError as exc:
        work.result = _failure(work, exc)
        return False
    return True


def _observe(pending: list[_Work], results: Sequence[Any]) -> set[int]:
    """Tells the degradation detector how this round's calls ended, per platform; the platforms degraded now."""
    by_component: dict[int, list[tuple[int, str]]] = {}
    for outcome in results:
        tenant = pending[outcome.key].tenant
        by_component.setdefault(tenant.component_id, []).append((tenant.pk, call_outcome(outcome.error)))
    return {cid for cid, pairs in by_component.items() if degradation.observe(cid, pairs) is not None}


def _fetch_rounds(pending: list[_Work], *, trigger: str) -> None:
    today = quota_day(timezone.now())
    attempt = 0
    backoff = False
    while pending:
        attempt += 1
        if backoff:
            time.sleep(retry_delay(attempt - 1))
        results = draft_counts_fetch([(index, work.token) for index, work in enumerate(pending)])
        fetched_at = timezone.now()
        # Retries are for one account's bad luck; when WeChat is degraded for the platform they would only spend
        # quota and time account by account.
        degraded = _observe(pending, results)
        retry: list[_Work] = []
        backoff = False
        for outcome in results:
            work = pending[outcome.key]
            work.calls += 1
            if outcome.error is None:
                assert outcome.total_count is not None
                _success(work, outcome.total_count, fetched_at)
                continue
            error = work.last_error = outcome.error
            used = quota_used_today(work.tenant, today) + work.calls
            budget = quota_budget(trigger, work.tenant.quota_daily_limit)
            if isinstance(error, TokenError) and not work.token_retried and used < budget:
                # 40001/40014/42001: refresh once (someone else may already have), retry once.
                work.token_retried = True
                if _refresh(work, stale_version=work.version):
                    retry.append(work)
            elif (
                isinstance(error, RetryableError)
                and attempt < settings.DRAFT_SYNC_MAX_ATTEMPTS
                and used < budget
                and work.tenant.component_id not in degraded
            ):
                retry.append(work)
                backoff = True
            else:
                work.result = _failure(work, error)
        # A retry is one more call in the account's window.
        pending = _within_rate_windows(retry, trigger=trigger)


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
        # 45009: no more calls for this account until its quota resets (docs/wechat/quota.md).
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
        rid=error.rid,
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
        rid=result.rid,
        skip_reason=result.reason or "",
        total_count=result.total_count,
    )


# Quota bookkeeping shared by both updates: calls made today are added, or restart on a new quota day.
_QUOTA = (
    "quota_used = CASE WHEN t.quota_day = %(day)s THEN t.quota_used + v.calls ELSE v.calls END, quota_day = %(day)s"
)
_NEWER = "(t.draft_count_fetched_at IS NULL OR t.draft_count_fetched_at < v.fetched_at)"

_SUCCEEDED = BulkUpdate(
    table=Tenant._meta.db_table,
    columns=("id", "total_count", "fetched_at", "snapshot", "changed", "next_poll_at", "calls"),
    assignments=(
        # Never replace a newer fetch (an on-demand job that finished first) with this older one.
        f"draft_count = CASE WHEN {_NEWER} THEN v.total_count ELSE t.draft_count END, "
        f"draft_count_fetched_at = CASE WHEN {_NEWER} THEN v.fetched_at ELSE t.draft_count_fetched_at END, "
        # The cadence (docs/polling.md#writing-the-next-poll): a change restarts the quiet time and the next poll
        # follows from it. A read outside the schedule (on demand, after an event) may bring the next poll
        # forward but never push it back, so that the account keeps to the beat's ticks.
        f"next_poll_at = CASE WHEN NOT {_NEWER} THEN t.next_poll_at WHEN %(scheduled)s THEN v.next_poll_at "
        "WHEN v.next_poll_at < t.next_poll_at THEN v.next_poll_at ELSE t.next_poll_at END, "
        "draft_activity_at = CASE WHEN v.changed THEN v.fetched_at "
        "ELSE COALESCE(t.draft_activity_at, v.fetched_at) END, "
        "last_snapshot_at = CASE WHEN v.snapshot THEN v.fetched_at ELSE t.last_snapshot_at END, "
        "last_sync_attempt_at = v.fetched_at, " + _QUOTA
    ),
)
# NULLs are kept out of VALUES (PostgreSQL could not infer their column's type): flags say what applies.
_FAILED = BulkUpdate(
    table=Tenant._meta.db_table,
    columns=(
        "id",
        "errcode",
        "has_errcode",
        "message",
        "rid",
        "calls",
        "paused",
        "paused_until",
        "rejected",
        "rejection",
    ),
    assignments=(
        # The last good count stays: only the error fields, the quota and the consequences change.
        "last_sync_attempt_at = %(now)s, last_error_at = %(now)s, "
        "last_error_code = CASE WHEN v.has_errcode THEN v.errcode ELSE NULL END, "
        "last_error_message = v.message, last_error_rid = v.rid, "
        "paused_until = CASE WHEN v.paused THEN v.paused_until ELSE t.paused_until END, "
        "eligibility = CASE WHEN v.rejected THEN %(rejected)s ELSE t.eligibility END, "
        "eligibility_detail = CASE WHEN v.rejected THEN v.rejection ELSE t.eligibility_detail END, " + _QUOTA
    ),
)


def _write(works: Sequence[_Work], *, trigger: str, chunk: SyncChunk | None) -> bool:
    """Writes a batch's outcome in a constant number of queries. False if the chunk was already done."""
    now = timezone.now()
    today = quota_day(now)
    ops = connection.ops
    at_now, day = ops.adapt_datetimefield_value(now), ops.adapt_datefield_value(today)
    succeeded: list[_Work] = []
    failed: list[tuple[Any, ...]] = []
    attempts: list[SyncAttempt] = []
    revoked: list[tuple[int, str]] = []
    failed_works: list[_Work] = []
    for work in works:
        result = work.result
        if result is None:
            continue
        tenant = work.tenant
        if result.outcome in (AttemptOutcome.CHANGED, AttemptOutcome.UNCHANGED):
            assert work.fetched_at is not None and result.total_count is not None
            succeeded.append(work)
        elif result.outcome == AttemptOutcome.FAILED:
            failed.append(
                _FAILED.row(
                    id=tenant.pk,
                    errcode=result.errcode or 0,
                    has_errcode=result.errcode is not None,
                    message=result.message[:500],
                    rid=result.rid,
                    calls=work.calls,
                    paused=work.paused_until is not None,
                    paused_until=ops.adapt_datetimefield_value(work.paused_until) if work.paused_until else at_now,
                    rejected=bool(work.rejected),
                    rejection=work.rejected[:255],
                )
            )
            failed_works.append(work)
            if work.revoke:
                revoked.append((tenant.component_id, tenant.authorizer_appid))
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
        rows: list[tuple[Any, ...]] = []
        snapshots: list[DraftSnapshot] = []
        # A scheduled chunk's cadence counts from the run's start, so that an account due every 15 minutes is
        # due again at the beat 15 minutes on rather than just after it.
        planned_at = chunk.run.started_at if chunk is not None else None
        for w in succeeded:
            assert w.fetched_at is not None and w.result is not None and w.result.total_count is not None
            changed = w.snapshot == SnapshotReason.CHANGED
            due = next_poll_at(
                base=planned_at or w.fetched_at,
                fetched_at=w.fetched_at,
                activity_at=w.fetched_at if changed else (w.activity_at or w.fetched_at),
                daily_limit=w.tenant.quota_daily_limit,
            )
            rows.append(
                _SUCCEEDED.row(
                    id=w.tenant.pk,
                    total_count=w.result.total_count,
                    fetched_at=ops.adapt_datetimefield_value(w.fetched_at),
                    snapshot=w.snapshot is not None,
                    changed=changed,
                    next_poll_at=ops.adapt_datetimefield_value(due),
                    calls=w.calls,
                )
            )
            if w.snapshot is not None:
                snapshots.append(
                    DraftSnapshot(
                        tenant_id=w.tenant.pk,
                        total_count=w.result.total_count,
                        fetched_at=w.fetched_at,
                        reason=w.snapshot,
                    )
                )
        _SUCCEEDED.execute(rows, {"day": day, "scheduled": trigger == SyncTrigger.SCHEDULE})
        _FAILED.execute(failed, {"day": day, "now": at_now, "rejected": Eligibility.REJECTED.value})
        if snapshots:
            # (tenant, fetched_at) is unique: writing the same fetch twice is a no-op.
            DraftSnapshot.objects.bulk_create(snapshots, ignore_conflicts=True)
        if attempts:
            SyncAttempt.objects.bulk_create(attempts)
        _write_events(succeeded, failed_works)
        for component_id, appid in revoked:
            # 61003: the account no longer authorizes the platform (rare: one locked update each).
            tenant_revoke(component_id=component_id, authorizer_appid=appid)
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
        pk: (count, fetched_at, snapshot_at, activity_at)
        for pk, count, fetched_at, snapshot_at, activity_at in Tenant.objects.select_for_update()
        .filter(pk__in=ids)
        .order_by("pk")
        .values_list("pk", "draft_count", "draft_count_fetched_at", "last_snapshot_at", "draft_activity_at")
    }
    heartbeat = timedelta(hours=settings.DRAFT_SNAPSHOT_HEARTBEAT_HOURS)
    for work in succeeded:
        assert work.fetched_at is not None and work.result is not None
        row = current.get(work.tenant.pk)
        work.snapshot = None
        if row is None:
            continue  # deleted meanwhile
        count, fetched_at, snapshot_at, work.activity_at = row
        if fetched_at is not None and fetched_at >= work.fetched_at:
            continue
        work.previous_count = count
        if count != work.result.total_count:
            work.snapshot = SnapshotReason.CHANGED
        elif snapshot_at is None or work.fetched_at - snapshot_at >= heartbeat:
            work.snapshot = SnapshotReason.HEARTBEAT


def _write_events(succeeded: Sequence[_Work], failed: Sequence[_Work]) -> None:
    """The batch's webhook events, in its own transaction (the outbox): a changed count (decided under the row
    lock, like its snapshot) and a rejection by WeChat, each only for tenants with an endpoint subscribed to it,
    found with one query. Revocations write their own event in tenant_revoke."""
    changed = [w for w in succeeded if w.snapshot == SnapshotReason.CHANGED]
    rejected = [w for w in failed if w.rejected and w.tenant.eligibility != Eligibility.REJECTED]
    if not changed and not rejected:
        return
    subscribed = subscribed_tenants(tenant_ids=[w.tenant.pk for w in (*changed, *rejected)])
    events: list[OutboxEvent] = []
    for w in changed:
        if EventType.DRAFT_COUNT_CHANGED not in subscribed.get(w.tenant.pk, ()):
            continue
        assert w.result is not None and w.fetched_at is not None
        data: dict[str, object] = {
            "appid": w.tenant.authorizer_appid,
            "total_count": w.result.total_count,
            "previous_total_count": w.previous_count,
            "fetched_at": machine_time(w.fetched_at),
        }
        events.append(outbox_event(tenant_id=w.tenant.pk, type=EventType.DRAFT_COUNT_CHANGED, data=data))
    for w in rejected:
        if EventType.TENANT_ELIGIBILITY_CHANGED not in subscribed.get(w.tenant.pk, ()):
            continue
        previous = w.tenant.eligibility
        w.tenant.eligibility = Eligibility.REJECTED
        events.append(eligibility_event(tenant=w.tenant, previous=previous, reason=w.rejected))
    if events:
        OutboxEvent.objects.bulk_create(events)
        webhooks_deliver_soon()


def _chunk_done(chunk: SyncChunk, works: Sequence[_Work], now: datetime) -> None:
    report = SyncReport([w.result for w in works if w.result is not None])
    SyncChunk.objects.filter(pk=chunk.pk).update(done_at=now)
    SyncRun.objects.filter(pk=chunk.run_id).update(
        chunks_done=F("chunks_done") + 1,
        changed=F("changed") + report.changed,
        unchanged=F("unchanged") + report.unchanged,
        skipped=F("skipped") + sum(report.skipped.values()),
        failed=F("failed") + sum(report.failed.values()),
    )
    SyncRun.objects.filter(pk=chunk.run_id, chunks_done__gte=F("chunks_total"), finished_at__isnull=True).update(
        finished_at=now
    )
