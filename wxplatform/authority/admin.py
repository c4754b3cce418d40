"""Service keys (issue: the key is shown once, on the response to the POST that made it; revoke) and the
read-only audit of token hand-outs. The hashed key is never rendered."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from wxplatform.admin import AuditedAdminMixin, ReadOnlyAdmin, audit_record
from wxplatform.authority.models import GatewayUsage, ServiceKey, TokenHandout
from wxplatform.authority.services import (
    InvalidPathPattern,
    allowed_paths_clean,
    service_key_issue,
    service_key_revoke,
)

_ADD_FIELDS = ("name", "component", "expiry_date", "allowed_paths")
_SHOWN_FIELDS = ("name", "prefix", "component", "created", "last_used_at", "expiry_date", "revoked")
# What can change after issue: the WeChat paths the key may call through the gateway.
_EDITABLE_FIELDS = ("allowed_paths",)


class AllowedPathsField(forms.CharField):
    """The key's gateway patterns as lines of a text area; stored as a list."""

    widget = forms.Textarea(attrs={"rows": 4, "cols": 60, "placeholder": "/cgi-bin/draft/*"})

    def prepare_value(self, value: Any) -> Any:
        return "\n".join(value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        if isinstance(value, list):
            return value
        try:
            return allowed_paths_clean(str(value or "").splitlines())
        except InvalidPathPattern as exc:
            raise forms.ValidationError(str(exc)) from None


class ServiceKeyForm(forms.ModelForm):  # type: ignore[type-arg]
    allowed_paths = AllowedPathsField(
        required=False,
        label=_("WeChat paths allowed through the gateway"),
        help_text=_('One pattern per line, such as /cgi-bin/draft/* ("*" matches any characters). Empty: none.'),
    )

    class Meta:
        model = ServiceKey
        fields = _ADD_FIELDS


@admin.register(ServiceKey)
class ServiceKeyAdmin(AuditedAdminMixin):
    form = ServiceKeyForm
    list_display = ("name", "prefix", "scope", "created", "last_used_at", "expiry_date", "revoked")
    list_filter = ("revoked", "component")
    search_fields = ("name", "prefix")
    ordering = ("-created",)
    actions = ["revoke_selected"]

    def get_fields(self, request: HttpRequest, obj: ServiceKey | None = None) -> tuple[str, ...]:
        return _ADD_FIELDS if obj is None else (*_SHOWN_FIELDS, *_EDITABLE_FIELDS)

    def get_readonly_fields(self, request: HttpRequest, obj: ServiceKey | None = None) -> tuple[str, ...]:
        # A key is issued, then revoked (the action): its name, scope and expiry are what it was issued with. Its
        # gateway paths may change (audited as every admin change).
        if obj is None:
            return ()
        if obj.revoked or not self.has_change_permission(request, obj):
            return (*_SHOWN_FIELDS, *_EDITABLE_FIELDS)
        return _SHOWN_FIELDS

    def has_delete_permission(self, request: HttpRequest, obj: ServiceKey | None = None) -> bool:
        return False  # revoked, never deleted: the hand-out audit refers to it

    @admin.display(description=_("platforms"))
    def scope(self, obj: ServiceKey) -> str:
        return obj.component.component_appid if obj.component is not None else str(_("all platforms"))

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """POST: issue the key through the service and show it on this response only (never in a message or
        the session; not cached). A GET, or a form with errors, is Django's usual add page."""
        if request.method == "POST" and self.has_add_permission(request):
            form = self.get_form(request, None, fields=_ADD_FIELDS)(request.POST)
            if form.is_valid():
                key, raw = service_key_issue(
                    name=form.cleaned_data["name"],
                    component=form.cleaned_data["component"],
                    expiry_date=form.cleaned_data["expiry_date"],
                    allowed_paths=form.cleaned_data["allowed_paths"],
                )
                audit_record(
                    request=request,
                    action="service_key.create",
                    target=f"authority.servicekey:{key.prefix}",
                    detail={"prefix": key.prefix, "name": key.name, "scope": self.scope(key)},
                )
                context = {
                    **self.admin_site.each_context(request),
                    "title": _("New service key"),
                    "opts": self.opts,
                    "key": key,
                    "raw_key": raw,
                }
                response = TemplateResponse(request, "admin/authority/servicekey/key_created.html", context)
                response["Cache-Control"] = "no-store"
                return response
        return super().add_view(request, form_url, extra_context)

    @admin.action(description=_("Revoke the selected service keys"), permissions=["change"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ServiceKey]) -> None:
        revoked = [key.prefix for key in queryset if service_key_revoke(key=key)]
        audit_record(request=request, action="service_key.revoke", detail={"prefixes": revoked})
        self.message_user(
            request,
            ngettext("%(count)d service key revoked.", "%(count)d service keys revoked.", len(revoked))
            % {"count": len(revoked)},
            messages.SUCCESS,
        )


@admin.register(TokenHandout)
class TokenHandoutAdmin(ReadOnlyAdmin):
    list_display = ("at", "key", "kind", "component_appid", "authorizer_appid", "outcome", "error_code")
    list_filter = ("kind", "outcome", "component_appid", "key")
    search_fields = ("authorizer_appid", "key__name", "key__prefix")
    date_hierarchy = "at"
    list_select_related = ("key",)
    fields = ("at", "key", "kind", "component_appid", "authorizer_appid", "outcome", "error_code")
    readonly_fields = fields


@admin.register(GatewayUsage)
class GatewayUsageAdmin(ReadOnlyAdmin):
    """Calls through the WeChat gateway, a row per day, key, account and path."""

    list_display = ("day", "key", "component_appid", "authorizer_appid", "path", "calls", "failures")
    list_filter = ("day", "key", "component_appid")
    search_fields = ("authorizer_appid", "path", "key__name", "key__prefix")
    date_hierarchy = "day"
    list_select_related = ("key",)
    fields = list_display
    readonly_fields = fields
