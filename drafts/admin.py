"""Sync bookkeeping in the admin, read-only: written by the sync services, looked at by staff."""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from drafts.models import DraftSnapshot, SyncAttempt, SyncJob, SyncRun
from wxplatform.admin import ReadOnlyAdmin


@admin.register(SyncAttempt)
class SyncAttemptAdmin(ReadOnlyAdmin):
    list_display = ("at", "tenant", "trigger", "outcome", "errcode", "total_count", "message", "skip_reason")
    list_filter = ("outcome", "trigger", "errcode")
    search_fields = ("tenant__authorizer_appid", "tenant__nickname")
    list_select_related = ("tenant",)
    date_hierarchy = "at"
    # A tenant dropdown would load every tenant; the id field is enough on a read-only page.
    raw_id_fields = ("tenant",)


@admin.register(SyncJob)
class SyncJobAdmin(ReadOnlyAdmin):
    list_display = ("requested_at", "tenant", "trigger", "state", "outcome", "total_count", "errcode")
    list_filter = ("state", "trigger", "outcome")
    search_fields = ("tenant__authorizer_appid", "tenant__nickname")
    list_select_related = ("tenant",)
    raw_id_fields = ("tenant",)


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
