"""Webhooks in the console: every tenant's endpoints and deliveries, with "send test event", enable and
disable as audited actions (through the services). The signing secret is never a field here: staff cannot
see it, merchants get it once from the API."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from webhooks.models import Delivery, DeliveryAttempt, Endpoint
from webhooks.services import endpoint_update, webhook_test_send
from webhooks.tasks import deliver_soon
from wxplatform.admin import AuditedAdminMixin, ReadOnlyAdmin, audit_record

ENDPOINT_FIELDS = (
    "tenant",
    "url",
    "events",
    "enabled",
    "disabled_reason",
    "disabled_at",
    "failing_since",
    "created_at",
    "updated_at",
)


def _target(endpoint: Endpoint) -> str:
    return f"webhooks.endpoint:{endpoint.pk} {endpoint.tenant.authorizer_appid}"


@admin.register(Endpoint)
class EndpointAdmin(AuditedAdminMixin):
    list_display = ("url", "tenant", "events_list", "enabled", "disabled_reason", "failing_since", "created_at")
    list_filter = ("enabled",)
    search_fields = ("tenant__authorizer_appid", "tenant__nickname", "url")
    list_select_related = ("tenant",)
    raw_id_fields = ("tenant",)
    # Read-only page: merchants own their endpoints (API); staff act through the actions below.
    fields = ENDPOINT_FIELDS
    readonly_fields = ENDPOINT_FIELDS
    actions = ("send_test_event", "disable_selected", "enable_selected")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Endpoint]:
        queryset: QuerySet[Endpoint] = super().get_queryset(request).defer("secret")
        return queryset

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description=gettext_lazy("events"))
    def events_list(self, obj: Endpoint) -> str:
        return ", ".join(obj.events)

    @admin.action(description=gettext_lazy("Send a test event"), permissions=["change"])
    def send_test_event(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        sent = 0
        for endpoint in queryset.select_related("tenant"):
            event = webhook_test_send(endpoint=endpoint)
            audit_record(
                request=request, action="webhook.test", target=_target(endpoint), detail={"event": str(event.pk)}
            )
            sent += 1
        deliver_soon()
        self.message_user(
            request,
            ngettext(
                "A test event is on its way to %(count)d endpoint.",
                "A test event is on its way to %(count)d endpoints.",
                sent,
            )
            % {"count": sent},
            messages.SUCCESS,
        )

    @admin.action(description=gettext_lazy("Disable the selected endpoints"), permissions=["change"])
    def disable_selected(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        self._set_enabled(request, queryset, enabled=False)

    @admin.action(
        description=gettext_lazy("Enable the selected endpoints (their deliveries resume)"), permissions=["change"]
    )
    def enable_selected(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        self._set_enabled(request, queryset, enabled=True)

    def _set_enabled(self, request: HttpRequest, queryset: QuerySet[Endpoint], *, enabled: bool) -> None:
        changed = 0
        for endpoint in queryset.select_related("tenant").filter(enabled=not enabled):
            endpoint_update(endpoint=endpoint, enabled=enabled)
            audit_record(
                request=request, action="webhook.enable" if enabled else "webhook.disable", target=_target(endpoint)
            )
            changed += 1
        if enabled:
            deliver_soon()
        self.message_user(request, _("Endpoints changed: %(count)d.") % {"count": changed}, messages.SUCCESS)


class DeliveryAttemptInline(admin.TabularInline):  # type: ignore[type-arg]
    model = DeliveryAttempt
    fields = ("at", "status_code", "duration_ms", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "tenant",
        "endpoint",
        "event_type",
        "state",
        "attempts",
        "last_status_code",
        "last_error",
        "next_attempt_at",
    )
    list_filter = ("state",)
    search_fields = ("tenant__authorizer_appid", "tenant__nickname", "endpoint__url")
    list_select_related = ("tenant", "endpoint", "event")
    raw_id_fields = ("tenant", "endpoint", "event")
    fields = (
        "tenant",
        "endpoint",
        "event_type",
        "event_body",
        "state",
        "attempts",
        "next_attempt_at",
        "last_attempt_at",
        "last_status_code",
        "last_error",
        "created_at",
        "finished_at",
    )
    readonly_fields = fields
    inlines = (DeliveryAttemptInline,)

    @admin.display(description=gettext_lazy("event type"))
    def event_type(self, obj: Delivery) -> str:
        return obj.event.type

    @admin.display(description=gettext_lazy("data"))
    def event_body(self, obj: Delivery) -> SafeString:
        return format_html("<pre>{}</pre>", json.dumps(obj.event.payload, ensure_ascii=False, indent=2))
