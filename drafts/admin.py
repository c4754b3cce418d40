"""Sync bookkeeping in the admin, read-only: written by the sync services, looked at by staff."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from drafts.models import AttemptOutcome, DraftSnapshot, JobState, SyncAttempt, SyncJob, SyncRun
from wxplatform.admin import ReadOnlyAdmin

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


@admin.register(SyncAttempt)
class SyncAttemptAdmin(ReadOnlyAdmin):
    list_display = ("at", "tenant", "trigger", "outcome", "errcode", "total_count", "message", "skip_reason")
    list_filter = ("outcome", "trigger", "errcode")
    search_fields = ("tenant__authorizer_appid", "tenant__nickname")
    list_select_related = ("tenant",)
    date_hierarchy = "at"
    # A tenant dropdown would load every tenant; the id field is enough on a read-only page.
    raw_id_fields = ("tenant",)


class JobStateFilter(admin.SimpleListFilter):
    """The job's state as staff read it: a job the rules did not run on purpose is "skipped", not "failed"."""

    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, StrOrPromise]]:
        return [
            (JobState.PENDING, JobState.PENDING.label),
            (JobState.RUNNING, JobState.RUNNING.label),
            (JobState.SUCCEEDED, JobState.SUCCEEDED.label),
            (AttemptOutcome.SKIPPED, AttemptOutcome.SKIPPED.label),
            (JobState.FAILED, JobState.FAILED.label),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[SyncJob]) -> QuerySet[SyncJob]:
        value = self.value()
        if value == AttemptOutcome.SKIPPED:
            return queryset.filter(outcome=AttemptOutcome.SKIPPED)
        if value == JobState.FAILED:
            return queryset.filter(state=JobState.FAILED).exclude(outcome=AttemptOutcome.SKIPPED)
        if value:
            return queryset.filter(state=value)
        return queryset


@admin.register(SyncJob)
class SyncJobAdmin(ReadOnlyAdmin):
    list_display = ("requested_at", "tenant", "trigger", "state_label", "outcome", "total_count", "errcode", "why")
    list_filter = (JobStateFilter, "trigger", "outcome")
    search_fields = ("tenant__authorizer_appid", "tenant__nickname")
    list_select_related = ("tenant",)
    raw_id_fields = ("tenant",)

    @admin.display(description=_("state"), ordering="state")
    def state_label(self, job: SyncJob) -> str:
        # The merchant API keeps WeChat-free refusals as "failed" jobs (its contract); here a job that the
        # rules skipped on purpose (revoked, ineligible, quota budget, WeChat degraded) is not a failure.
        if job.outcome == AttemptOutcome.SKIPPED:
            return str(AttemptOutcome.SKIPPED.label)
        return job.get_state_display()

    @admin.display(description=_("why"))
    def why(self, job: SyncJob) -> str:
        """Why WeChat was not called, in words; else WeChat's message of a failure."""
        if job.skip_reason:
            return job.get_skip_reason_display()
        return job.message or "—"


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    list_display = (
        "started_at",
        "trigger",
        "finished_at",
        "chunks",
        "changed",
        "unchanged",
        "skipped",
        "failed",
    )
    list_filter = ("trigger",)

    @admin.display(description=_("chunks done / total"))
    def chunks(self, run: SyncRun) -> str:
        return f"{run.chunks_done} / {run.chunks_total}"


@admin.register(DraftSnapshot)
class DraftSnapshotAdmin(ReadOnlyAdmin):
    list_display = ("fetched_at", "tenant", "total_count", "reason")
    list_filter = ("reason",)
    search_fields = ("tenant__authorizer_appid", "tenant__nickname")
    list_select_related = ("tenant",)
    raw_id_fields = ("tenant",)
    date_hierarchy = "fetched_at"
