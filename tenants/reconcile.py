"""Reconciliation: the tenants against WeChat's own record of who authorizes the platform.

Pushes get lost and most account changes send none (docs/wechat/lifecycle.md#what-sends-no-push), so a periodic
pass (docs/wechat/lifecycle.md#reconciliation):

1. walks every page of api_get_authorizer_list (docs/wechat/endpoints.md#api_get_authorizer_list), page by page;
2. reads each listed account's profile again (api_get_authorizer_info) and its draft/count quota
   (openapi/quota/get, with a token that is fresh anyway), with bounded concurrency (a thread pool over the
   client's keep-alive pool);
3. writes each page in one transaction under the rows' locks (the token lock): a missing account becomes a
   tenant as the `authorized` push would have made it; a listed refresh token that differs replaces ours
   (token_version grows); profile changes are recorded and eligibility is recomputed;
4. after a complete pass only: an active tenant that no page listed is checked with api_get_authorizer_info,
   and revoked on 61003 as the `unauthorized` push would have been.

Memory is flat in the number of authorizers (one page at a time, counters only). Safe to run twice at once:
rows are locked and every write is conditional (a token refreshed after the page was listed is newer than the
list's, a revocation after the listing wins). Safe to kill: each page commits on its own, and nothing is
revoked unless every page was seen.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from django.conf import settings
from django.db import DataError, IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from tenants.models import Eligibility, Tenant, TenantProfileChange, TenantStatus
from tenants.quota import DRAFT_COUNT_CGI_PATH
from tenants.services import (
    PROFILE_TEXT_FIELDS,
    eligibility_for,
    profile_raw,
    profile_text,
    tenant_onboard_fill,
    tenant_revoke,
)
from wxplatform.component.clients import component_client
from wxplatform.component.models import Platform
from wxplatform.component.services import component_access_token, component_token_refresh
from wxplatform.core.bulk_update import BulkUpdate
from wxplatform.core.freshness import USABLE_MARGIN, token_is_fresh
from wxplatform.wechat.client import WeChatClient
from wxplatform.wechat.errors import REVOKED_CODES, TokenError, WeChatError
from wxplatform.wechat.types import AuthorizerInfo, AuthorizerListItem, AuthorizerListPage, Quota

logger = logging.getLogger(__name__)

T = TypeVar("T")
K = TypeVar("K")
R = TypeVar("R")

PAGE_SIZE = 500  # WeChat's maximum (docs/wechat/endpoints.md#api_get_authorizer_list)

# Profile fields compared between readings: (tenant field, value from a reading).
# Strings as their columns hold them (cut), so that an over-long value is not a change at every pass.
_PROFILE: tuple[tuple[str, Callable[[AuthorizerInfo], Any]], ...] = (
    *(
        (field, lambda i, field=field, attribute=attribute: profile_text(field, getattr(i, attribute)))
        for field, attribute in PROFILE_TEXT_FIELDS
    ),
    ("account_kind", lambda i: str(i.account_kind)),
    ("service_type_id", lambda i: i.service_type_id),
    ("verify_type_id", lambda i: i.verify_type_id),
    ("account_status", lambda i: i.account_status),
    ("func_ids", lambda i: sorted(set(i.func_ids))),
)
_TOKEN_FIELDS = ["refresh_token", "token_version", "status"]


@dataclass
class ReconcileReport:
    listed: int = 0
    added: int = 0
    revoked: int = 0
    tokens_replaced: int = 0
    profiles_changed: int = 0
    unchanged: int = 0
    failed: Counter[int | None] = field(default_factory=Counter)
    quotas_read: int = 0
    # Listed accounts whose reading the database refused to store (each one logged); the others were stored.
    not_stored: list[str] = field(default_factory=list)
    # False when a page could not be read: then nothing was revoked.
    complete: bool = False

    def merge(self, other: ReconcileReport) -> None:
        """Adds the counts of a part of the pass (one page's write)."""
        self.added += other.added
        self.revoked += other.revoked
        self.tokens_replaced += other.tokens_replaced
        self.profiles_changed += other.profiles_changed
        self.unchanged += other.unchanged
        self.failed.update(other.failed)
        self.quotas_read += other.quotas_read
        self.not_stored += other.not_stored

    def as_dict(self) -> dict[str, Any]:
        return {
            "listed": self.listed,
            "added": self.added,
            "revoked": self.revoked,
            "tokens_replaced": self.tokens_replaced,
            "profiles_changed": self.profiles_changed,
            "unchanged": self.unchanged,
            "failed": sum(self.failed.values()),
            "quotas_read": self.quotas_read,
            "not_stored": len(self.not_stored),
            "complete": self.complete,
        }


@dataclass
class _Read:
    """What was read of one listed account before its page is written."""

    item: AuthorizerListItem
    info: AuthorizerInfo | None = None
    error: WeChatError | None = None
    quota: Quota | None = None


class _ComponentToken:
    """The component token of a run. Threads only read it and report a rejection; the run's own thread
    refreshes it (single-flight in component_token_refresh) and retries: pool threads never touch the database."""

    def __init__(self, component: Platform) -> None:
        self.component = component
        self.value = component_access_token(component)

    def call(self, fn: Callable[[str], T]) -> T:
        token = self.value
        try:
            return fn(token)
        except TokenError:
            self.refresh(token)
            return fn(self.value)

    def refresh(self, stale: str) -> None:
        if self.value == stale:
            self.value = component_token_refresh(self.component, stale_token=stale)


def _map_with_token(
    pool: ThreadPoolExecutor, token: _ComponentToken, fn: Callable[[str, K], R], items: Sequence[K]
) -> list[R | WeChatError]:
    """fn(token, item) for each item on the pool, in order, each result or its WeChatError; items that met a
    rejected token (40001/40014/42001) are tried once more after one refresh."""

    def run(value: str, item: K) -> R | WeChatError:
        try:
            return fn(value, item)
        except WeChatError as exc:
            return exc

    used = token.value
    results = list(pool.map(lambda item: run(used, item), items))
    again = [i for i, result in enumerate(results) if isinstance(result, TokenError)]
    if again:
        token.refresh(used)
        fresh = token.value
        for i, result in zip(again, pool.map(lambda i: run(fresh, items[i]), again), strict=True):
            results[i] = result
    return results


def authorizers_reconcile(
    component: Platform,
    *,
    concurrency: int | None = None,
    read_quota: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
) -> ReconcileReport:
    """One reconciliation pass of one platform's authorizers. `on_progress(done, total)` is told after each
    page. Raises ComponentNotReady or the WeChatError of an authorizer-list page that failed (pages written
    before it stay written)."""
    report = ReconcileReport()
    started = timezone.now()
    client = component_client(component)
    token = _ComponentToken(component)
    workers = max(1, concurrency or settings.RECONCILE_CONCURRENCY)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reconcile") as pool:
        offset = 0
        while True:
            page = token.call(partial(_list_page, client, offset))
            listed_at = timezone.now()
            if page.items:
                _page(
                    component,
                    client,
                    token,
                    pool,
                    page.items,
                    listed_at=listed_at,
                    read_quota=read_quota,
                    report=report,
                )
            offset += len(page.items)
            report.listed = offset
            if on_progress is not None:
                on_progress(offset, page.total_count)
            if not page.items or offset >= page.total_count:
                break
        report.complete = True
        _revoke_unlisted(component, client, token, pool, started=started, report=report)
    logger.info(
        "authorizers reconciled", extra={"component_appid": component.component_appid, "reconcile": report.as_dict()}
    )
    return report


# --- one page ----------------------------------------------------------------------------------------


def _page(
    component: Platform,
    client: WeChatClient,
    token: _ComponentToken,
    pool: ThreadPoolExecutor,
    items: Sequence[AuthorizerListItem],
    *,
    listed_at: datetime,
    read_quota: bool,
    report: ReconcileReport,
) -> None:
    appids = [item.appid for item in items]
    reads = {item.appid: _Read(item=item) for item in items}
    # Profile and quota reads share the pool, so that both are in flight together.
    calls: list[tuple[_Read, str | None]] = [(read, None) for read in reads.values()]
    if read_quota:
        calls += [(reads[appid], access_token) for appid, access_token in _fresh_tokens(component, appids)]

    def call(component_token: str, target: tuple[_Read, str | None]) -> Any:
        read, access_token = target
        if access_token is None:
            return client.api_get_authorizer_info(
                component_access_token=component_token, authorizer_appid=read.item.appid
            )
        try:
            return client.openapi_quota_get(access_token=access_token, cgi_path=DRAFT_COUNT_CGI_PATH)
        except WeChatError as exc:
            # The authorizer's token, not the component's: never a reason to refresh the component token.
            logger.info("quota read failed during reconciliation: errcode %s", exc.errcode)
            return None

    for (read, access_token), got in zip(calls, _map_with_token(pool, token, call, calls), strict=True):
        if access_token is not None:
            read.quota = got if isinstance(got, Quota) else None
        elif isinstance(got, WeChatError):
            read.error = got
        else:
            read.info = got
    now = timezone.now()
    written = ReconcileReport()
    try:
        _write(component, list(reads.values()), listed_at=listed_at, now=now, report=written)
    except _ACCOUNT_ERRORS:
        # One account the database refuses must not cost the page, nor stop the pass: the page again, one
        # account per transaction, so that only that account is left out (and reported).
        written = ReconcileReport()
        for read in reads.values():
            one = ReconcileReport()
            try:
                _write(component, [read], listed_at=listed_at, now=now, report=one)
            except _ACCOUNT_ERRORS as exc:
                written.not_stored.append(read.item.appid)
                logger.error(
                    "reconciliation could not store an account: %s",
                    type(exc).__name__,
                    extra={"component_appid": component.component_appid, "appid": read.item.appid},
                )
            else:
                written.merge(one)
    report.merge(written)


# What the database may refuse for one account's values (a value that does not fit, a constraint): that account
# is left out. Anything else (the database gone, a bug in the statement) stops the pass as before.
_ACCOUNT_ERRORS = (DataError, IntegrityError, ValueError)


def _write(
    component: Platform,
    reads: Sequence[_Read],
    *,
    listed_at: datetime,
    now: datetime,
    report: ReconcileReport,
) -> None:
    """Writes what was read of these accounts in one transaction under the rows' locks."""
    appids = [read.item.appid for read in reads]
    with transaction.atomic():
        # The token lock: the same row lock a token refresh takes, in id order so that runs cannot deadlock.
        existing = {
            t.authorizer_appid: t
            for t in Tenant.objects.select_for_update()
            .filter(component=component, authorizer_appid__in=appids)
            .order_by("pk")
        }
        created: list[Tenant] = []
        changes: list[TenantProfileChange] = []
        quotas: list[tuple[Any, ...]] = []
        for read in reads:
            if read.error is not None or read.info is None:
                # 61003 here: the account left between the list and its profile; the next pass revokes it.
                report.failed[read.error.errcode if read.error else None] += 1
                continue
            tenant = existing.get(read.item.appid)
            listed_token = read.item.refresh_token or read.info.refresh_token
            if tenant is None or _should_reonboard(tenant, listed_at):
                fresh = tenant or Tenant(component=component, authorizer_appid=read.item.appid)
                tenant_onboard_fill(
                    fresh,
                    info=read.info,
                    func_ids=list(read.info.func_ids),
                    access_token=None,
                    expires_in=None,
                    refresh_token=listed_token,
                    now=now,
                )
                if tenant is None:
                    created.append(fresh)
                else:
                    fresh.save()
                report.added += 1
                continue
            fields: set[str] = set()
            touched = _apply_profile(tenant, read.info, now=now, changes=changes, fields=fields)
            replaced = _replace_refresh_token(tenant, listed_token, listed_at=listed_at)
            if replaced:
                fields.update(_TOKEN_FIELDS)
            if fields:
                # Few rows change on a given day: one UPDATE each, of the changed columns only.
                tenant.save(update_fields=[*sorted(fields), "updated_at"])
            report.profiles_changed += touched
            report.tokens_replaced += replaced
            report.unchanged += not (touched or replaced)
            if read.quota is not None:
                quotas.append(
                    _QUOTA_UPDATE.row(
                        id=tenant.pk, daily_limit=read.quota.daily_limit, used=read.quota.used, remain=read.quota.remain
                    )
                )
        if created:
            # A concurrent run may have created the same account a moment ago: theirs stands.
            Tenant.objects.bulk_create(created, ignore_conflicts=True)
        if changes:
            TenantProfileChange.objects.bulk_create(changes)
        _QUOTA_UPDATE.execute(quotas, {"now": connection.ops.adapt_datetimefield_value(now)})
        report.quotas_read += len(quotas)
        Tenant.objects.filter(component=component, authorizer_appid__in=appids).filter(
            Q(listed_at__isnull=True) | Q(listed_at__lt=listed_at)
        ).update(listed_at=listed_at, profile_read_at=now)


# Quota readings of a page in one statement; a newer reading (a concurrent run, a read after 45009) stays.
_QUOTA_UPDATE = BulkUpdate(
    table=Tenant._meta.db_table,
    columns=("id", "daily_limit", "used", "remain"),
    assignments=(
        "quota_daily_limit = CASE WHEN t.quota_read_at IS NULL OR t.quota_read_at < %(now)s "
        "THEN v.daily_limit ELSE t.quota_daily_limit END, "
        "quota_wechat_used = CASE WHEN t.quota_read_at IS NULL OR t.quota_read_at < %(now)s "
        "THEN v.used ELSE t.quota_wechat_used END, "
        "quota_remain = CASE WHEN t.quota_read_at IS NULL OR t.quota_read_at < %(now)s "
        "THEN v.remain ELSE t.quota_remain END, "
        "quota_read_at = CASE WHEN t.quota_read_at IS NULL OR t.quota_read_at < %(now)s "
        "THEN %(now)s ELSE t.quota_read_at END"
    ),
)


def _list_page(client: WeChatClient, offset: int, token: str) -> AuthorizerListPage:
    return client.api_get_authorizer_list(component_access_token=token, offset=offset, count=PAGE_SIZE)


def _fresh_tokens(component: Platform, appids: list[str]) -> list[tuple[str, str]]:
    """(appid, access token) of the page's eligible, active tenants whose stored token is fresh: no token is
    refreshed for a quota reading (the beat refresher keeps them fresh)."""
    return [
        (appid, access_token)
        for appid, access_token, expires_at in Tenant.objects.filter(
            component=component,
            authorizer_appid__in=appids,
            status=TenantStatus.ACTIVE,
            eligibility=Eligibility.ELIGIBLE,
        ).values_list("authorizer_appid", "access_token", "access_token_expires_at")
        if token_is_fresh(access_token, expires_at, margin=USABLE_MARGIN)
    ]


def _should_reonboard(tenant: Tenant, listed_at: datetime) -> bool:
    """A revoked tenant that WeChat lists again authorized once more (a missed `authorized` push), unless it was
    revoked after this page was listed (an `unauthorized` push that came meanwhile wins)."""
    if tenant.status != TenantStatus.REVOKED:
        return False
    return tenant.revoked_at is None or tenant.revoked_at < listed_at


def _replace_refresh_token(tenant: Tenant, listed: str | None, *, listed_at: datetime) -> bool:
    """WeChat's listed refresh token replaces ours when it differs (docs/wechat/tokens.md#recovering-a-refresh-token),
    unless ours was stored after the page was listed (it is then the newer one). An account that needed
    re-authorization (61023) is active again with it."""
    if not listed or listed == tenant.refresh_token:
        return False
    if tenant.token_refreshed_at is not None and tenant.token_refreshed_at >= listed_at:
        return False
    tenant.refresh_token = listed
    tenant.token_version += 1
    if tenant.status == TenantStatus.NEEDS_REAUTH:
        tenant.status = TenantStatus.ACTIVE
    return True


def _apply_profile(
    tenant: Tenant, info: AuthorizerInfo, *, now: datetime, changes: list[TenantProfileChange], fields: set[str]
) -> bool:
    """Copies the reading onto the tenant; records each changed field (not on the first reading, which has
    nothing to compare with); recomputes eligibility. True if anything changed."""
    first_reading = tenant.profile_read_at is None
    touched = False
    for name, read in _PROFILE:
        new = read(info)
        old = getattr(tenant, name)
        if old == new:
            continue
        if not first_reading:
            changes.append(
                TenantProfileChange(tenant=tenant, field=name, old=_shown(name, old), new=_shown(name, new), at=now)
            )
        setattr(tenant, name, new)
        fields.add(name)
        touched = True
    raw = profile_raw(info.raw)
    if tenant.profile_raw != raw:
        tenant.profile_raw = raw
        fields.add("profile_raw")
    eligibility, detail = eligibility_for(
        account_kind=tenant.account_kind, func_ids=list(tenant.func_ids or []), account_status=tenant.account_status
    )
    if (tenant.eligibility, tenant.eligibility_detail) != (eligibility, detail):
        if not first_reading or tenant.eligibility != eligibility:
            changes.append(
                TenantProfileChange(
                    tenant=tenant, field="eligibility", old=tenant.eligibility, new=str(eligibility), at=now
                )
            )
        tenant.eligibility, tenant.eligibility_detail = eligibility, detail
        fields.update(("eligibility", "eligibility_detail"))
        touched = True
    return touched


def _shown(name: str, value: Any) -> str:
    """A value as stored in the change log: WeChat's raw value (the admin renders codes as labels)."""
    if value is None:
        return ""
    if name == "func_ids":
        return ", ".join(str(v) for v in value)
    return str(value)


# --- tenants WeChat no longer lists --------------------------------------------------------------------


def _revoke_unlisted(
    component: Platform,
    client: WeChatClient,
    token: _ComponentToken,
    pool: ThreadPoolExecutor,
    *,
    started: datetime,
    report: ReconcileReport,
) -> None:
    """Active tenants that no page of this complete pass listed, checked one by one: 61003 confirms that the
    account no longer authorizes the platform. A tenant authorized after the pass began is left alone."""
    unlisted = (
        Tenant.objects.filter(component=component, status=TenantStatus.ACTIVE, authorized_at__lt=started)
        .filter(Q(listed_at__isnull=True) | Q(listed_at__lt=started))
        .order_by("pk")
        .values_list("pk", "authorizer_appid")
    )
    last_pk = 0
    while True:
        batch = list(unlisted.filter(pk__gt=last_pk)[:PAGE_SIZE])
        if not batch:
            return
        last_pk = batch[-1][0]
        checked_at = timezone.now()
        appids = [appid for _pk, appid in batch]
        answers = _map_with_token(
            pool,
            token,
            lambda t, appid: client.api_get_authorizer_info(component_access_token=t, authorizer_appid=appid),
            appids,
        )
        for appid, answer in zip(appids, answers, strict=True):
            if not isinstance(answer, WeChatError):
                report.unchanged += 1  # listed again meanwhile, or WeChat's list lagged: left alone
            elif answer.errcode in REVOKED_CODES:
                revoked = tenant_revoke(component_id=component.pk, authorizer_appid=appid, revoked_at=checked_at)
                if revoked is not None and revoked.status == TenantStatus.REVOKED:
                    report.revoked += 1
            else:
                report.failed[answer.errcode] += 1
