"""Reads of draft counts for the merchant API. None of them calls WeChat: they answer from storage."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from drafts.models import DraftSnapshot, SyncJob
from tenants.models import Eligibility, Tenant, TenantStatus


class Unavailable(enum.StrEnum):
    """Why a tenant's draft count cannot be read or synced, most fundamental reason first."""

    TENANT_REVOKED = "tenant_revoked"
    TENANT_NEEDS_REAUTHORIZATION = "tenant_needs_reauthorization"
    TENANT_INELIGIBLE = "tenant_ineligible"
    NOT_FETCHED = "draft_count_not_fetched"


def draft_count_blocker(*, tenant: Tenant) -> Unavailable | None:
    """Why no draft count can be fetched for this tenant now (its authorization or account), if anything."""
    if tenant.status == TenantStatus.REVOKED:
        return Unavailable.TENANT_REVOKED
    if tenant.status == TenantStatus.NEEDS_REAUTH:
        return Unavailable.TENANT_NEEDS_REAUTHORIZATION
    if tenant.eligibility != Eligibility.ELIGIBLE:
        return Unavailable.TENANT_INELIGIBLE
    return None


# Every tenant field that draft_count_blocker() and draft_count_current() read, so that a caller may load
# only these.
DRAFT_COUNT_TENANT_FIELDS = (
    "status",
    "eligibility",
    "eligibility_detail",
    "draft_count",
    "draft_count_fetched_at",
    "last_sync_attempt_at",
    "last_error_code",
    "last_error_at",
    "paused_until",
)


@dataclass(frozen=True)
class DraftCountReading:
    total_count: int
    fetched_at: datetime
    stale: bool
    # When the value becomes (or became) stale: the moment the answer last changed, for Last-Modified.
    stale_at: datetime
    last_attempt_at: datetime | None
    last_error_code: int | None
    last_error_at: datetime | None
    paused_until: datetime | None

    @property
    def changed_at(self) -> datetime:
        return self.stale_at if self.stale else self.fetched_at


class DraftCountUnavailable(Exception):
    def __init__(self, reason: Unavailable) -> None:
        self.reason = reason
        super().__init__(reason.value)


def draft_count_current(*, tenant: Tenant, now: datetime | None = None) -> DraftCountReading:
    """The stored draft count, from the tenant's quick-read fields (no query). Raises DraftCountUnavailable
    when the tenant cannot have one now, or none has been fetched yet."""
    blocker = draft_count_blocker(tenant=tenant)
    if blocker is not None:
        raise DraftCountUnavailable(blocker)
    if tenant.draft_count is None or tenant.draft_count_fetched_at is None:
        raise DraftCountUnavailable(Unavailable.NOT_FETCHED)
    now = now or timezone.now()
    stale_at = tenant.draft_count_fetched_at + timedelta(seconds=settings.API_DRAFT_COUNT_STALE_AFTER)
    return DraftCountReading(
        total_count=tenant.draft_count,
        fetched_at=tenant.draft_count_fetched_at,
        stale=now >= stale_at,
        stale_at=stale_at,
        last_attempt_at=tenant.last_sync_attempt_at,
        last_error_code=tenant.last_error_code,
        last_error_at=tenant.last_error_at,
        paused_until=tenant.paused_until if tenant.paused_until and tenant.paused_until > now else None,
    )


def draft_snapshot_list(
    *, tenant: Tenant, since: datetime | None = None, until: datetime | None = None
) -> QuerySet[DraftSnapshot]:
    """The tenant's snapshots fetched in [since, until), newest first."""
    snapshots = DraftSnapshot.objects.filter(tenant=tenant)
    if since is not None:
        snapshots = snapshots.filter(fetched_at__gte=since)
    if until is not None:
        snapshots = snapshots.filter(fetched_at__lt=until)
    return snapshots.order_by("-fetched_at")


def sync_job_get(*, tenant: Tenant, job_id: uuid.UUID) -> SyncJob | None:
    """The tenant's own job; another tenant's job is as absent as a job that never existed."""
    try:
        return SyncJob.objects.get(tenant=tenant, pk=job_id)
    except SyncJob.DoesNotExist:
        return None
