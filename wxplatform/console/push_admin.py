"""The push log in the admin: every push to either WeChat URL, filterable, with a replay action.

Rows are written by the push URLs only: nothing can be added or edited here. A replay runs the handler again
on the stored push (its signature verified again), which is idempotent, and is audited.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tenants.models import PushLog, PushOutcome
from tenants.pushes import push_replay
from wxplatform.admin import AuditedAdminMixin, audit_record
from wxplatform.component.admin import PlatformListFilter
from wxplatform.component.services import ComponentUnknown

# Replays are handled one by one, in the request: keep a batch small.
REPLAY_MAX = 50
# The authorizer filter offers the busiest authorizers of the last day; any other is one click on an appid
# in the list, or the search box, away (a sidebar of every merchant would not scale).
AUTHORIZER_CHOICES = 20
# The outcome recorded in the audit for a push whose platform is no longer configured.
UNKNOWN_PLATFORM = "unknown_platform"


class AuthorizerFilter(admin.SimpleListFilter):
    title = gettext_lazy("authorizer AppID")
    parameter_name = "authorizer"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        since = timezone.now() - timedelta(days=1)
        rows = (
            PushLog.objects.filter(received_at__gte=since)
            .exclude(authorizer_appid="")
            .values("authorizer_appid")
            .annotate(n=Count("id"))
            .order_by("-n", "authorizer_appid")[:AUTHORIZER_CHOICES]
        )
        choices = [(row["authorizer_appid"], row["authorizer_appid"]) for row in rows]
        value = self.value()
        if value and value not in dict(choices):
            choices.append((value, value))
        return choices

    def queryset(self, request: HttpRequest, queryset: QuerySet[PushLog]) -> QuerySet[PushLog]:
        value = self.value()
        return queryset.filter(authorizer_appid=value) if value else queryset


@admin.register(PushLog)
class PushLogAdmin(AuditedAdminMixin):
    list_display = (
        "received_at",
        "endpoint",
        "authorizer_appid",
        "kind",
        "signature_ok",
        "decrypted",
        "outcome",
        "status_code",
        "error_code",
        "duration_ms",
        "replayed_at",
    )
    list_filter = ("endpoint", "outcome", "kind", "signature_ok", PlatformListFilter, AuthorizerFilter)
    search_fields = ("authorizer_appid", "component_appid", "kind")
    date_hierarchy = "received_at"
    actions = ("replay_selected",)
    list_per_page = 100
    fields = (
        "received_at",
        "endpoint",
        "component_appid",
        "authorizer_appid",
        "kind",
        "signature_ok",
        "decrypted",
        "outcome",
        "status_code",
        "error_code",
        "duration_ms",
        "query",
        "body",
        "body_truncated",
        "replayed_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: PushLog | None = None) -> bool:
        return False

    @admin.action(description=gettext_lazy("Replay selected pushes (run the handler again)"), permissions=["change"])
    def replay_selected(self, request: HttpRequest, queryset: QuerySet[PushLog]) -> None:
        pushes = list(queryset.order_by("received_at", "id")[: REPLAY_MAX + 1])
        if len(pushes) > REPLAY_MAX:
            self.message_user(
                request, _("Select at most %(max)d pushes to replay.") % {"max": REPLAY_MAX}, messages.ERROR
            )
            return
        outcomes: dict[int, str] = {}
        for push in pushes:
            try:
                answer = push_replay(push=push)
            except ComponentUnknown:
                # The platform was configured when the push came and is not any more: nothing can verify it.
                outcomes[push.pk] = UNKNOWN_PLATFORM
                continue
            outcomes[push.pk] = answer.error_code or str(answer.outcome)
        audit_record(
            request=request, action="pushes.replay", target=f"{len(pushes)} pushes", detail={"outcomes": outcomes}
        )
        unknown = sorted({push.component_appid for push in pushes if outcomes[push.pk] == UNKNOWN_PLATFORM})
        refused = sum(1 for outcome in outcomes.values() if outcome not in (*PushOutcome.values, UNKNOWN_PLATFORM))
        done = len(pushes) - refused - sum(1 for outcome in outcomes.values() if outcome == UNKNOWN_PLATFORM)
        self.message_user(
            request,
            _("Pushes replayed: %(done)d; refused again (signature or contents): %(refused)d.")
            % {"done": done, "refused": refused},
            messages.SUCCESS if not refused and not unknown else messages.WARNING,
        )
        if unknown:
            self.message_user(
                request,
                _(
                    "Not replayed: the pushes to platform %(appids)s, which is not configured here any more "
                    "(add it again to replay them)."
                )
                % {"appids": ", ".join(unknown)},
                messages.ERROR,
            )
