"""Admin pieces shared by the whole console: the audit trail, the read-only audit log, the "support" rules,
and the schedule (django-celery-beat) admin with auditing and clear labels.

Rules every console admin follows (AuditedAdminMixin):
- a user without the change permission (the read-only "support" group) sees no actions and no buttons, and a
  POST of an action is refused with 403 even if crafted by hand;
- every change made through the admin (form saves, deletions, actions, custom buttons) writes an AuditEntry.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.core.exceptions import BadRequest, PermissionDenied
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from wxplatform.core.observability import redact
from wxplatform.core.schedule import LABELS as schedule_labels
from wxplatform.models import AuditEntry

admin.site.site_header = _("WeChat third-party platform console")
admin.site.site_title = _("Platform console")
admin.site.index_title = _("Merchants, draft counts and platform status")
# Breadcrumbs and the landing page lead everywhere; the sidebar would take a quarter of a laptop screen from
# the merchant list.
admin.site.enable_nav_sidebar = False
# The one mark for "no value" on every page, the one the console's own columns and panels write (Django's is "-").
admin.site.empty_value_display = "—"


def audit_record(
    *, request: HttpRequest, action: str, target: str = "", detail: dict[str, Any] | None = None
) -> AuditEntry:
    """Records who did what to which object. `detail` must hold no secrets (ids, counts, names only)."""
    user = request.user if request.user.is_authenticated else None
    return AuditEntry.objects.create(
        actor=user,
        actor_label=(user.get_username() if user is not None else "anonymous")[:150],
        action=action[:64],
        target=target[:255],
        detail=detail or {},
    )


def _label(obj: Model) -> str:
    return f"{obj._meta.label_lower}:{obj.pk} {obj}"


class AuditedAdminMixin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Refuses every write to users without the change permission, and audits every write."""

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # Actions without declared permissions (third-party admins) would otherwise be offered to viewers.
        if not self.has_change_permission(request):
            return {}
        return super().get_actions(request)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        # The action form is hidden from viewers; a hand-made POST must fail loudly, not as "no action".
        if request.method == "POST" and not self.has_change_permission(request):
            raise PermissionDenied
        return super().changelist_view(request, extra_context)

    def log_addition(self, request: HttpRequest, obj: Model, message: Any) -> Any:
        audit_record(request=request, action="admin.add", target=_label(obj), detail={"change": message})
        return super().log_addition(request, obj, message)

    def log_change(self, request: HttpRequest, obj: Model, message: Any) -> Any:
        # The message lists the changed fields' names, never their values.
        audit_record(request=request, action="admin.change", target=_label(obj), detail={"change": message})
        return super().log_change(request, obj, message)

    def log_deletions(self, request: HttpRequest, queryset: QuerySet[Model]) -> Any:
        # Iterating fills the queryset's cache, so the LogEntry rows below see the same objects.
        for obj in queryset:
            audit_record(request=request, action="admin.delete", target=_label(obj))
        return super().log_deletions(request, queryset)


class ReadOnlyAdmin(AuditedAdminMixin):
    """Records that only the system writes: listed and shown, never added, edited or deleted here."""

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


# What each recorded action means, for staff; an unknown code is shown as it is.
ACTION_LABELS = {
    "admin.add": _("Added in the console"),
    "admin.change": _("Changed in the console"),
    "admin.delete": _("Deleted in the console"),
    "tenant.sync": _("Synced the account's draft count"),
    "tenant.refresh_token": _("Refreshed the account's access token"),
    "tenant.revoke": _("Marked the account revoked"),
    "tenants.sync_selected": _("Synced the selected accounts"),
    "tenants.refresh_tokens_selected": _("Refreshed the selected accounts' tokens"),
    "api_key.create": _("Issued an API key"),
    "api_key.rotate": _("Rotated an API key"),
    "api_key.revoke": _("Revoked an API key"),
    "service_key.create": _("Issued a service key"),
    "service_key.revoke": _("Revoked service keys"),
    "schedule.enable_tasks": _("Enabled periodic tasks"),
    "schedule.disable_tasks": _("Disabled periodic tasks"),
    "schedule.toggle_tasks": _("Toggled periodic tasks"),
    "schedule.run_tasks": _("Ran periodic tasks now"),
    "tenant.clear_quota": _("Cleared the account's draft/count quota"),
    "tenant.explain_rid": _("Looked up a WeChat rid"),
    "pushes.replay": _("Replayed WeChat pushes"),
    "webhook.test": _("Sent a test webhook event"),
    "webhook.enable": _("Enabled a webhook"),
    "webhook.disable": _("Disabled a webhook"),
}
# Targets that name a count rather than an object ("2 tenants", written by the bulk actions), in words.
_COUNTED_TARGET = re.compile(r"(\d+) (tenants|pushes)")


def target_label(target: str) -> str:
    """'2 tenants' → '2 merchant accounts' in the reader's language; any other target as it is."""
    counted = _COUNTED_TARGET.fullmatch(target)
    if counted is None:
        return str(_("periodic tasks")) if target == "periodic tasks" else target
    n = int(counted.group(1))
    if counted.group(2) == "tenants":
        return ngettext("%(n)d merchant account", "%(n)d merchant accounts", n) % {"n": n}
    return ngettext("%(n)d push", "%(n)d pushes", n) % {"n": n}


class ActionFilter(admin.SimpleListFilter):
    """The recorded actions in words; the code in the list's tooltip."""

    title = _("what")
    parameter_name = "action"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        codes = AuditEntry.objects.order_by().values_list("action", flat=True).distinct()
        return sorted(((code, str(ACTION_LABELS.get(code, code))) for code in codes), key=lambda c: c[1])

    def queryset(self, request: HttpRequest, queryset: QuerySet[AuditEntry]) -> QuerySet[AuditEntry]:
        value = self.value()
        return queryset.filter(action=value) if value else queryset


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "actor_label", "action_label", "target_words")
    list_filter = (ActionFilter,)
    search_fields = ("actor_label", "action", "target")
    date_hierarchy = "created_at"
    fields = ("created_at", "actor", "actor_label", "action", "target", "detail_redacted")
    readonly_fields = fields

    @admin.display(description=_("what"), ordering="action")
    def action_label(self, obj: AuditEntry) -> str:
        label = ACTION_LABELS.get(obj.action)
        return format_html('<span title="{}">{}</span>', obj.action, label) if label else obj.action

    @admin.display(description=_("target"), ordering="target")
    def target_words(self, obj: AuditEntry) -> str:
        return target_label(obj.target)

    @admin.display(description=_("detail"))
    def detail_redacted(self, obj: AuditEntry) -> str:
        return format_html("<pre>{}</pre>", json.dumps(redact(obj.detail), ensure_ascii=False, indent=2))


# --- Schedules (django-celery-beat) ------------------------------------------------------------------
# The sync schedule is a PeriodicTask edited here; beat's own admin is kept, with auditing and the
# viewer rules added, and a title that says what the list is for.
from django_celery_beat import admin as beat_admin  # noqa: E402 - registers beat's admins first
from django_celery_beat.models import (  # noqa: E402
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)


class _TaskFilter(admin.AllValuesFieldListFilter):
    """Beat's `task` field is labelled 'Task Name' without gettext; the filter gets a translated title."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.title = _("task")


def _audited_action(name: str) -> Callable[..., None]:
    base = getattr(beat_admin.PeriodicTaskAdmin, name)

    def action(self: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:  # type: ignore[type-arg]
        names = list(queryset.values_list("name", flat=True))
        base(self, request, queryset)
        audit_record(request=request, action=f"schedule.{name}", target="periodic tasks", detail={"names": names})

    action.__name__ = name
    return admin.action(description=base.short_description, permissions=["change"])(action)


# django-celery-beat ships no type information, so its admin is Any to mypy.
class ScheduleAdmin(AuditedAdminMixin, beat_admin.PeriodicTaskAdmin):  # type: ignore[misc]
    enable_tasks = _audited_action("enable_tasks")
    disable_tasks = _audited_action("disable_tasks")
    toggle_tasks = _audited_action("toggle_tasks")
    run_tasks = _audited_action("run_tasks")

    list_display = ("translated_name", "enabled", "schedule", "start_time", "last_run_at", "one_off")
    list_filter = ["enabled", "one_off", ("task", _TaskFilter), "start_time", "last_run_at"]

    @admin.display(description=_("schedule"))
    def schedule(self, obj: PeriodicTask) -> str:
        # Beat's own column is a property named "scheduler", whose header cannot be translated.
        return str(obj.scheduler)

    @admin.display(description=_("name"), ordering="name")
    def translated_name(self, obj: PeriodicTask) -> str:
        # The entries of the schedule table have names the catalogue knows; a name staff gave an entry is shown
        # as they wrote it.
        return str(schedule_labels.get(obj.name, obj.name))

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "title": _("Schedules, including the draft-count sync"),
            "subtitle": None,
        }
        return super().changelist_view(request, extra_context)


admin.site.unregister(PeriodicTask)
admin.site.register(PeriodicTask, ScheduleAdmin)
for _model in (IntervalSchedule, CrontabSchedule, SolarSchedule, ClockedSchedule):
    _base = type(admin.site.get_model_admin(_model))
    admin.site.unregister(_model)
    admin.site.register(_model, type(_base.__name__, (AuditedAdminMixin, _base), {}))


# --- Crafted list filters ----------------------------------------------------------------------------

# The date hierarchy's parameters (`<field>__year`, `__month`, `__day`) and the range each may take: Django
# builds a datetime from them, so 99999999999 raised OverflowError (a 500) instead of matching nothing.
_DATE_PARTS = {"__year": (1, 9999), "__month": (1, 12), "__day": (1, 31)}


class AdminQueryGuardMiddleware:
    """Answers 400 to admin URLs whose query holds a NUL character (PostgreSQL refuses it in any text, so
    `?status__exact=%00` was a 500) or a date part out of range."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/admin/") and not _query_is_sane(request):
            raise BadRequest("invalid filter value")
        return self.get_response(request)


def _query_is_sane(request: HttpRequest) -> bool:
    for name, values in request.GET.lists():
        if "\x00" in name or any("\x00" in value for value in values):
            return False
        for suffix, (low, high) in _DATE_PARTS.items():
            if name.endswith(suffix):
                if not all(value.isascii() and value.isdigit() and low <= int(value) <= high for value in values):
                    return False
    return True
