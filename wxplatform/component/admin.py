"""The platform's own credential row, read-only. The verify ticket and the component token are never shown:
only their timestamps and whether they are present."""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from wxplatform.admin import ReadOnlyAdmin
from wxplatform.component.models import ComponentCredential


@admin.register(ComponentCredential)
class ComponentCredentialAdmin(ReadOnlyAdmin):
    list_display = ("component_appid", "has_ticket", "ticket_received_at", "access_token_expires_at", "problem")
    # An explicit list: the encrypted columns (verify_ticket, access_token) must never be rendered.
    fields = (
        "component_appid",
        "has_ticket",
        "ticket_received_at",
        "ticket_created_at",
        "has_token",
        "access_token_expires_at",
        "token_refreshed_at",
        "problem_code",
        "problem",
        "problem_at",
        "push_ticket_requested_at",
        "last_push_at",
        "last_push_info_type",
    )
    readonly_fields = fields

    @admin.display(description=_("ticket present"), boolean=True)
    def has_ticket(self, obj: ComponentCredential) -> bool:
        return bool(obj.verify_ticket)

    @admin.display(description=_("token present"), boolean=True)
    def has_token(self, obj: ComponentCredential) -> bool:
        return bool(obj.access_token)
