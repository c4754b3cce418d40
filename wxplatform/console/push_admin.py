"""The push log in the admin: every push to either WeChat URL, filterable, with a replay action.

Rows are written by the push URLs only: nothing can be added or edited here. A replay runs the handler again
on the stored push (its signature verified again), which is idempotent, and is audited.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tenants.models import PushLog, PushOutcome
from tenants.pushes import push_replay
from wxplatform.admin import AuditedAdminMixin, audit_record
from wxplatform.component.admin import PlatformListFilter
from wxplatform.component.services import ComponentUnknown
from wxplatform.console.status import push_kind_label, push_kind_words

# Replays are handled one by one, in the request: keep a batch small.
REPLAY_MAX = 50
# The authorizer filter offers the busiest authorizers of the last day; any other is one click on an appid
# in the list, or the search box, away (a sidebar of every merchant would not scale).
AUTHORIZER_CHOICES = 20
# The outcome recorded in the audit for a push whose platform is no longer configured.
UNKNOWN_PLATFORM = "unknown_platform"
# Kinds offered by the kind filter: WeChat's InfoTypes and MsgTypes are few, a forger's are not.
KIND_CHOICES = 30
# The URLs as the list names them: a column of full names ("Message-and-event URL") would not fit 1366 px.
ENDPOINT_SHORT = {
    "component": gettext_lazy("authorization events"),
    "message": gettext_lazy("messages and events"),
}
# Why a push was refused (tenants/receiving.py), in words; the code stays in brackets.
REFUSALS = {
    "invalid_appid": gettext_lazy("not an AppID"),
    "missing_parameters": gettext_lazy("parameters missing"),
    "bad_signature": gettext_lazy("signature does not verify"),
    "wrong_appid": gettext_lazy("another platform's message"),
    "bad_message": gettext_lazy("cannot be decrypted"),
    "stale_message": gettext_lazy("timestamp too old"),
    "payload_too_large": gettext_lazy("body too large"),
}


class KindFilter(admin.SimpleListFilter):
    """The kinds of push received, in words with WeChat's code in brackets."""

    title = gettext_lazy("kind")
    parameter_name = "kind"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        kinds = (
            PushLog.objects.exclude(kind="")
            .values("kind")
            .annotate(n=Count("id"))
            .order_by("-n", "kind")
            .values_list("kind", flat=True)[:KIND_CHOICES]
        )
        choices = sorted(((kind, push_kind_label(kind)) for kind in kinds), key=lambda choice: choice[1])
        value = self.value()
        if value and value not in dict(choices):
            choices.append((value, push_kind_label(value)))
        return choices

    def queryset(self, request: HttpRequest, queryset: QuerySet[PushLog]) -> QuerySet[PushLog]:
        value = self.value()
        return queryset.filter(kind=value) if value else queryset


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


def _date_and_time(moment: datetime) -> str:
    """The date above the time, in the console's time zone: two short lines leave room for the other columns."""
    local = timezone.localtime(moment)
    return format_html("{}<br>{}", date_format(local, "Y-m-d"), date_format(local, "H:i:s"))


def _breakable(text: str) -> str:
    """The text, escaped, with a line-break opportunity after each underscore: WeChat's codes
    (component_verify_ticket) would otherwise hold a column wider than the screen has room for."""
    return format_html_join(mark_safe("_<wbr>"), "{}", ((part,) for part in text.split("_")))


@admin.register(PushLog)
class PushLogAdmin(AuditedAdminMixin):
    # Eight short columns, so that the list fits a 1366 px screen beside the filters in either language.
    list_display = (
        "received",
        "endpoint_label",
        "authorizer_appid",
        "kind_label",
        "checks",
        "answer",
        "replayed",
    )
    list_filter = ("endpoint", "outcome", KindFilter, "signature_ok", PlatformListFilter, AuthorizerFilter)
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

    @admin.display(description=gettext_lazy("received at"), ordering="received_at")
    def received(self, push: PushLog) -> str:
        return _date_and_time(push.received_at)

    @admin.display(description=gettext_lazy("URL"), ordering="endpoint")
    def endpoint_label(self, push: PushLog) -> str:
        return str(ENDPOINT_SHORT.get(push.endpoint, push.endpoint))

    @admin.display(description=gettext_lazy("kind"), ordering="kind")
    def kind_label(self, push: PushLog) -> str:
        """The words, WeChat's code below them in brackets (on one line the pair would not leave room for the
        other columns)."""
        if not push.kind:
            return "—"
        words, code = push_kind_words(push.kind)
        if not words:
            return _breakable(code)
        return format_html('{}<br><span class="wxp-code">({})</span>', words, _breakable(code))

    @admin.display(description=gettext_lazy("checks"))
    def checks(self, push: PushLog) -> str:
        if push.signature_ok is None:
            return "—"
        if not push.signature_ok:
            return format_html('<span class="wxp-badge wxp-bad">{}</span>', _("bad signature"))
        if not push.decrypted:
            return format_html('<span class="wxp-badge wxp-bad">{}</span>', _("not decrypted"))
        return format_html('<span class="wxp-badge wxp-ok">{}</span>', _("verified"))

    @admin.display(description=gettext_lazy("answer"), ordering="outcome")
    def answer(self, push: PushLog) -> str:
        """'Answered success (200, 1.5 ms)'; a refusal with its reason: 'Rejected (401, 0.8 ms): signature
        does not verify (bad_signature)'."""
        answered = f"{push.get_outcome_display()} ({push.status_code}, {push.duration_ms:.1f} ms)"
        if not push.error_code:
            return answered
        reason = REFUSALS.get(push.error_code)
        code = f"{reason} ({push.error_code})" if reason is not None else push.error_code
        return _breakable(f"{answered}: {code}")

    @admin.display(description=gettext_lazy("last replayed at"), ordering="replayed_at")
    def replayed(self, push: PushLog) -> str:
        return _date_and_time(push.replayed_at) if push.replayed_at else "—"

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
