"""The third-party platforms in the admin: staff with the permission add a platform and change its name, its
active flag and its secrets; everyone who may view sees its state and the URLs to enter at WeChat.

Secrets are write-only: a password field that starts empty and is never filled back (an empty one on a change
keeps the stored value), so no page ever holds one, masked or not. The verify ticket and the component token
are never shown either, only whether they are present and when they expire. The default platform
(WECHAT_COMPONENT_*) takes its credentials and its active flag from the settings: here it only gets a name
(wxplatform.component.services.component_update says why).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from wxplatform.admin import AuditedAdminMixin
from wxplatform.component.models import Platform
from wxplatform.component.services import DefaultComponentLocked, component_add, component_update, is_default
from wxplatform.component.validation import (
    validate_aes_key,
    validate_appsecret,
    validate_component_appid,
    validate_not_default,
    validate_token,
)
from wxplatform.core.errcodes import errcode_label

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

# Form field -> model field; the form fields are not model fields, so the stored value is never an initial value.
SECRET_FIELDS = {"new_appsecret": "appsecret", "new_token": "token", "new_aes_key": "aes_key"}
STATE_FIELDS = (
    "is_default",
    "tenant_count",
    "has_ticket",
    "ticket_received_at",
    "ticket_created_at",
    "has_token",
    "access_token_expires_at",
    "token_refreshed_at",
    "problem_label",
    "problem_at",
    "push_ticket_requested_at",
    "last_push_at",
    "last_push_info_type",
)


def _secret_field(label: StrOrPromise, validator: Any) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=False,
        validators=[validator],
        # render_value=False: neither the stored value nor a refused one is ever written into the page.
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=gettext_lazy("Leave empty to keep the stored value."),
    )


class ComponentForm(forms.ModelForm):  # type: ignore[type-arg]
    new_appsecret = _secret_field(gettext_lazy("AppSecret"), validate_appsecret)
    new_token = _secret_field(gettext_lazy("message verification token"), validate_token)
    new_aes_key = _secret_field(gettext_lazy("EncodingAESKey"), validate_aes_key)

    class Meta:
        model = Platform
        fields = ("component_appid", "name", "active")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        appid = self.fields.get("component_appid")
        if appid is not None:
            appid.validators += [validate_component_appid, validate_not_default]
        if self.instance.pk is not None and is_default(self.instance):
            # Not offered, and a crafted POST of them is ignored: the settings hold these.
            for name in SECRET_FIELDS:
                del self.fields[name]
        elif self.instance.pk is None:
            for name in SECRET_FIELDS:
                if name in self.fields:
                    self.fields[name].required = True
                    self.fields[name].help_text = ""


@admin.register(Platform)
class ComponentCredentialAdmin(AuditedAdminMixin):
    form = ComponentForm
    list_display = (
        "platform_name",
        "component_appid",
        "active",
        "is_default",
        "has_ticket",
        "access_token_expires_at",
        "problem_label",
        "tenant_count",
    )
    list_display_links = ("platform_name", "component_appid")
    list_filter = ("active",)
    search_fields = ("component_appid", "name")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Platform]:
        # The secrets and the token are neither loaded nor decrypted to list or show a platform.
        queryset: QuerySet[Platform] = super().get_queryset(request)
        return queryset.defer("appsecret", "token", "aes_key", "access_token").annotate(
            tenants_n=Count("tenants", distinct=True)
        )

    def get_fields(self, request: HttpRequest, obj: Platform | None = None) -> list[str]:  # type: ignore[override]
        if obj is None:
            return ["component_appid", "name", "active", *SECRET_FIELDS]
        if is_default(obj):
            return ["component_appid", "name", "active", "secrets_source", "wechat_urls", *STATE_FIELDS]
        return ["component_appid", "name", "active", *SECRET_FIELDS, "wechat_urls", *STATE_FIELDS]

    def get_readonly_fields(self, request: HttpRequest, obj: Platform | None = None) -> list[str]:
        if obj is None:
            return []
        # The appid names the platform everywhere (tenants, pushes, URLs at WeChat): it is never renamed.
        fixed = ["component_appid", "wechat_urls", *STATE_FIELDS]
        if is_default(obj):
            fixed += ["active", "secrets_source"]
        return fixed

    # Tenants keep their platform (PROTECT): a platform is switched off, not deleted.
    def has_delete_permission(self, request: HttpRequest, obj: Platform | None = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Platform, form: forms.Form, change: bool) -> None:
        data = form.cleaned_data
        secrets = {SECRET_FIELDS[name]: data.get(name) or "" for name in SECRET_FIELDS}
        if not change:
            added = component_add(
                appid=obj.component_appid,
                secret=secrets["appsecret"],
                token=secrets["token"],
                aes_key=secrets["aes_key"],
                name=obj.name,
            )
            if not obj.active:
                component_update(added, active=False)
            obj.pk = added.pk
            return
        try:
            component_update(
                obj,
                name=obj.name,
                active=None if is_default(obj) else obj.active,
                secret=secrets["appsecret"],
                token=secrets["token"],
                aes_key=secrets["aes_key"],
            )
        except DefaultComponentLocked:
            # The form offers none of these for the default platform; a crafted POST gets this.
            self.message_user(request, _("The default platform's credentials come from the settings."), messages.ERROR)

    # --- columns and read-only fields ----------------------------------------------------------------

    @admin.display(description=gettext_lazy("name"), ordering="name")
    def platform_name(self, obj: Platform) -> str:
        return obj.name or "—"

    @admin.display(description=gettext_lazy("default"), boolean=True)
    def is_default(self, obj: Platform) -> bool:
        return is_default(obj)

    @admin.display(description=gettext_lazy("merchant accounts"), ordering="tenants_n")
    def tenant_count(self, obj: Platform) -> int:
        return int(getattr(obj, "tenants_n", 0))

    @admin.display(description=gettext_lazy("ticket present"), boolean=True)
    def has_ticket(self, obj: Platform) -> bool:
        return obj.ticket_received_at is not None

    @admin.display(description=gettext_lazy("token present"), boolean=True)
    def has_token(self, obj: Platform) -> bool:
        return obj.access_token_expires_at is not None

    @admin.display(description=gettext_lazy("problem"))
    def problem_label(self, obj: Platform) -> str:
        if not obj.problem:
            return "—"
        return f"{obj.problem} ({errcode_label(obj.problem_code)})" if obj.problem_code is not None else obj.problem

    @admin.display(description=gettext_lazy("secrets"))
    def secrets_source(self, obj: Platform) -> str:
        return _(
            "The default platform: its AppSecret, token and EncodingAESKey come from the WECHAT_COMPONENT_* "
            "settings, and it cannot be switched off here."
        )

    @admin.display(description=gettext_lazy("URLs to enter at WeChat"))
    def wechat_urls(self, obj: Platform) -> SafeString:
        base = settings.PUBLIC_BASE_URL
        appid = obj.component_appid
        rows = [
            (
                _("Authorization event URL (授权事件接收URL)"),
                base + reverse("tenants:platform-events", kwargs={"component_appid": appid}),
            ),
            (
                _("Message and event URL (消息与事件接收URL)"),
                base
                + reverse("tenants:platform-authorizer-events", kwargs={"component_appid": appid, "appid": "$APPID$"}),
            ),
            (
                _("Authorization link for merchants"),
                f"{base}{reverse('tenants:authorize')}?component={appid}",
            ),
        ]
        return format_html(
            # The admin's form styles indent lists in a field by the label's width: this one sits beside its label.
            '<ul class="wxp-urls" style="margin: 0; padding: 0; list-style: none">{}</ul>'
            '<p class="help" style="margin: 4px 0 0; padding: 0">{}</p>',
            format_html_join("", '<li style="list-style: none">{}: <code>{}</code></li>', rows),
            _("Enter the first two in the platform's development settings on open.weixin.qq.com."),
        )


class PlatformListFilter(admin.SimpleListFilter):
    """A list filter by platform (component appid), for the lists of rows that belong to one. Subclasses name
    the lookup: a foreign key's (`component__component_appid`) or a plain column (`component_appid`)."""

    title = gettext_lazy("third-party platform")
    parameter_name = "component"
    lookup = "component_appid"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        # Names and appids only: the rows' secrets are not loaded to draw a sidebar.
        rows = Platform.objects.order_by("name", "component_appid").values_list("component_appid", "name")
        return [(appid, f"{name} ({appid})" if name else appid) for appid, name in rows]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(**{self.lookup: value}) if value else queryset
