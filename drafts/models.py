"""Draft-count history and the bookkeeping of syncs."""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tenants.models import Tenant


class SnapshotReason(models.TextChoices):
    CHANGED = "changed", _("Value changed")
    HEARTBEAT = "heartbeat", _("Heartbeat")


class DraftSnapshot(models.Model):
    """One row per fetch that changed the value, plus a heartbeat every few hours, so that the history is
    complete (an unchanged stretch is bounded by two rows) but stays small."""

    # No index of its own: the unique (tenant, fetched_at) index serves every lookup by tenant, in either order.
    tenant = models.ForeignKey(
        Tenant,
        verbose_name=_("merchant account"),
        on_delete=models.CASCADE,
        related_name="draft_snapshots",
        db_index=False,
    )
    total_count = models.IntegerField(_("draft count"))
    fetched_at = models.DateTimeField(_("fetched at"))
    reason = models.CharField(_("reason"), max_length=16, choices=SnapshotReason.choices)

    class Meta:
        verbose_name = _("draft count snapshot")
        verbose_name_plural = _("draft count snapshots")
        ordering: ClassVar[list[str]] = ["-fetched_at"]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            # A redelivered chunk writes the same (tenant, fetched_at) again; this makes that a no-op.
            models.UniqueConstraint(fields=["tenant", "fetched_at"], name="snapshot_unique_per_fetch")
        ]

    def __str__(self) -> str:
        return f"{self.total_count} @ {self.fetched_at:%Y-%m-%d %H:%M}"


class SkipReason(models.TextChoices):
    """Why a sync did not call WeChat for a tenant (kept with attempts and jobs, apart from WeChat's errmsg)."""

    NOT_ACTIVE = "not_active", _("Authorization revoked or to be renewed")
    INELIGIBLE = "ineligible", _("Not eligible for draft/count")
    NO_TOKEN = "no_token", _("No API credentials")
    PAUSED = "paused", _("Daily quota exhausted, paused until it resets")
    QUOTA_BUDGET = "quota_budget", _("Daily quota budget used")
    RECENTLY_SYNCED = "recently_synced", _("Synced moments ago")
    WECHAT_DEGRADED = "wechat_degraded", _("WeChat degraded for the platform, backing off")
    RATE_WINDOW = "rate_window", _("The account's third-party call rate limit is reached for now")


class SyncTrigger(models.TextChoices):
    SCHEDULE = "schedule", _("Schedule")
    ADMIN = "admin", _("Admin")
    CLI = "cli", _("Command line")
    API = "api", _("Merchant API")
    AUTHORIZATION = "authorization", _("First sync after authorization")
    EVENT = "event", _("WeChat event")


class AttemptOutcome(models.TextChoices):
    CHANGED = "changed", _("Synced, changed")
    UNCHANGED = "unchanged", _("Synced, unchanged")
    CACHED = "cached", _("Answered from storage")
    SKIPPED = "skipped", _("Skipped")
    FAILED = "failed", _("Failed")


class SyncAttempt(models.Model):
    """A sync attempt worth remembering: failures, skips and on-demand syncs (routine unchanged scheduled
    fetches only update the tenant row). Pruned after SYNC_ATTEMPT_RETENTION_DAYS."""

    tenant = models.ForeignKey(
        Tenant, verbose_name=_("merchant account"), on_delete=models.CASCADE, related_name="sync_attempts"
    )
    at = models.DateTimeField(_("at"), db_index=True)
    trigger = models.CharField(_("trigger"), max_length=16, choices=SyncTrigger.choices)
    outcome = models.CharField(_("outcome"), max_length=16, choices=AttemptOutcome.choices)
    errcode = models.IntegerField(_("errcode"), null=True, blank=True)
    message = models.CharField(_("message"), max_length=500, blank=True)
    # WeChat's request id from the errmsg of a failed call (docs/wechat/errors.md#rid).
    rid = models.CharField(_("rid"), max_length=64, blank=True)
    skip_reason = models.CharField(_("why not called"), max_length=32, choices=SkipReason.choices, blank=True)
    total_count = models.IntegerField(_("draft count"), null=True, blank=True)

    class Meta:
        verbose_name = _("sync attempt")
        verbose_name_plural = _("sync attempts")
        ordering: ClassVar[list[str]] = ["-at"]
        indexes: ClassVar[list[models.Index]] = [models.Index(fields=["tenant", "-at"], name="attempt_tenant_time_idx")]

    def __str__(self) -> str:
        return f"{self.outcome} @ {self.at:%Y-%m-%d %H:%M:%S}"


class JobState(models.TextChoices):
    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")


class SyncJob(models.Model):
    """An on-demand sync of one tenant (API, admin, CLI). Concurrent requests share the open job."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(
        Tenant, verbose_name=_("merchant account"), on_delete=models.CASCADE, related_name="sync_jobs"
    )
    trigger = models.CharField(_("trigger"), max_length=16, choices=SyncTrigger.choices)
    state = models.CharField(_("state"), max_length=16, choices=JobState.choices, default=JobState.PENDING)
    # A default rather than auto_now_add, so that a job answered at once can be given one instant for all three.
    requested_at = models.DateTimeField(_("requested at"), default=timezone.now)
    # When its task was last handed to the broker; None while it never was (the broker was down).
    queued_at = models.DateTimeField(_("last queued at"), null=True, blank=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    outcome = models.CharField(_("outcome"), max_length=16, choices=AttemptOutcome.choices, blank=True)
    total_count = models.IntegerField(_("draft count"), null=True, blank=True)
    errcode = models.IntegerField(_("errcode"), null=True, blank=True)
    message = models.CharField(_("message"), max_length=500, blank=True)
    skip_reason = models.CharField(_("why not called"), max_length=32, choices=SkipReason.choices, blank=True)

    class Meta:
        verbose_name = _("sync job")
        verbose_name_plural = _("sync jobs")
        ordering: ClassVar[list[str]] = ["-requested_at"]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            # At most one open job per tenant: the database itself coalesces concurrent requests.
            models.UniqueConstraint(
                fields=["tenant"],
                condition=models.Q(state__in=["pending", "running"]),
                name="syncjob_one_open_per_tenant",
            )
        ]

    def __str__(self) -> str:
        return f"sync job {self.pk} ({self.state})"


class SyncRun(models.Model):
    """A fan-out over all eligible tenants, split into chunks of consecutive tenant ids."""

    trigger = models.CharField(_("trigger"), max_length=16, choices=SyncTrigger.choices)
    started_at = models.DateTimeField(_("started at"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    changed = models.PositiveIntegerField(_("changed"), default=0)
    unchanged = models.PositiveIntegerField(_("unchanged"), default=0)
    skipped = models.PositiveIntegerField(_("skipped"), default=0)
    failed = models.PositiveIntegerField(_("failed"), default=0)
    # When the sweep last queued the run's next chunks again (draft_count_runs_sweep): a stall counts from the
    # later of this and the last finished chunk, so a run whose workers are all gone gets one batch of
    # messages per stall, not one a minute.
    requeued_at = models.DateTimeField(_("chunks queued again at"), null=True, blank=True)

    class Meta:
        verbose_name = _("sync run")
        verbose_name_plural = _("sync runs")
        ordering: ClassVar[list[str]] = ["-started_at"]

    def __str__(self) -> str:
        return f"sync run {self.pk} ({self.chunks_done}/{self.chunks_total} chunks)"


class SyncChunk(models.Model):
    """One chunk of a run; `done_at` makes a redelivered chunk task a no-op."""

    run = models.ForeignKey(SyncRun, verbose_name=_("sync run"), on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    first_tenant_id = models.BigIntegerField()
    last_tenant_id = models.BigIntegerField()
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["run", "index"], name="syncchunk_unique_index")
        ]

    def __str__(self) -> str:
        return f"chunk {self.index} of run {self.run_id}"
