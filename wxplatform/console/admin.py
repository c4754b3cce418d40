"""Merchant accounts in the admin: the list operators work from, and the tenant page with its actions.

Every state change goes through a service (sync, token refresh, revocation, API keys) and is audited;
users without the change permission (the "support" group) see no buttons and get 403 on every POST.
The encrypted token columns are never listed in `fields`, so no admin page can render them.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import BooleanField, ExpressionWrapper, F, QuerySet, Value
from django.db.models.functions import Coalesce, NullIf
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework_api_key.models import APIKey

from drafts.models import AttemptOutcome, DraftSnapshot, SkipReason, SyncAttempt, SyncTrigger
from drafts.quota import quota_attribution
from drafts.rules import TenantResult, quota_day, quota_used_today
from drafts.selectors import draft_snapshot_list
from drafts.services import draft_count_request_sync, draft_count_sync_tenant
from tenants.models import (
    ACCOUNT_STATUS_LABELS,
    DRAFT_PERMISSION_SETS,
    SERVICE_TYPE_LABELS,
    VERIFY_TYPE_LABELS,
    AccountKind,
    Eligibility,
    Tenant,
    TenantAPIKey,
    TenantProfileChange,
    TenantStatus,
    code_label,
)
from tenants.quota import (
    MONTHLY_CLEARS,
    ClearOutcome,
    RidExplanation,
    clears_used,
    tenant_quota_clear,
    tenant_rid_explain,
)
from tenants.selectors import (
    DraftRefusal,
    api_key_list,
    draft_refusal,
    draft_refusal_message,
    failing_condition,
    reauthorize_url,
)
from tenants.services import (
    APIKeyAlreadyRevoked,
    TenantHasNoToken,
    TenantNotActive,
    api_key_issue,
    api_key_revoke,
    api_key_rotate,
    tenant_revoke,
)
from tenants.services import tenant_token_refresh as tenant_token_refresh_service
from tenants.tasks import refresh_token as refresh_token_task
from webhooks.selectors import endpoint_list
from wxplatform.admin import AuditedAdminMixin, audit_record
from wxplatform.component.admin import PlatformListFilter
from wxplatform.component.models import Platform
from wxplatform.component.services import ComponentNotReady
from wxplatform.console import push_admin  # noqa: F401 - registers the push log's admin
from wxplatform.core.charts import step_chart_svg
from wxplatform.core.errcodes import errcode_label, transport_error_label
from wxplatform.core.freshness import AUTHORIZER_REFRESH_MARGIN, FORCE_REFRESH_MARGIN
from wxplatform.core.queueing import enqueue
from wxplatform.wechat.errors import WeChatError

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

# djangorestframework-api-key registers an admin for its own APIKey model, which this project does not use
# (merchant keys are TenantAPIKey, managed on the tenant page); listing it would only mislead operators.
if admin.site.is_registered(APIKey):
    admin.site.unregister(APIKey)

# Permission sets (权限集, funcscope_category.id) of Official Accounts, docs/wechat/permissions.md. The one place that
# names them; the Chinese names WeChat uses are given to translators.
PERMISSION_SET_NAMES: dict[int, StrOrPromise] = {
    # Translators: 消息管理
    1: gettext_lazy("Message management"),
    # Translators: 用户管理
    2: gettext_lazy("User management"),
    # Translators: 账号服务
    3: gettext_lazy("Account services"),
    # Translators: 网页服务
    4: gettext_lazy("Web services"),
    # Translators: 微信小店
    5: gettext_lazy("WeChat Store"),
    # Translators: 微信多客服
    6: gettext_lazy("Multi-agent customer service"),
    # Translators: 群发与通知
    7: gettext_lazy("Mass messages and notifications"),
    # Translators: 微信卡券
    8: gettext_lazy("Cards and coupons"),
    # Translators: 微信扫一扫
    9: gettext_lazy("WeChat Scan"),
    # Translators: 微信连WIFI
    10: gettext_lazy("WeChat Wi-Fi"),
    # Translators: 素材管理
    11: gettext_lazy("Material management"),
    # Translators: 微信摇周边
    12: gettext_lazy("Shake nearby"),
    # Translators: 微信门店
    13: gettext_lazy("Stores"),
    # Translators: 微信支付
    14: gettext_lazy("WeChat Pay"),
    # Translators: 菜单管理
    15: gettext_lazy("Menu management"),
    # Translators: 获取认证状态及信息
    16: gettext_lazy("Verification status and information"),
    # Translators: 城市服务
    22: gettext_lazy("City services"),
    # Translators: 广告管理
    23: gettext_lazy("Advertising management"),
    # Translators: 开放平台账号管理
    24: gettext_lazy("Open Platform account management"),
    # Translators: 微信电子发票
    26: gettext_lazy("Electronic invoices"),
    # Translators: 快速注册小程序
    27: gettext_lazy("Fast Mini Program registration"),
    # Translators: 小程序关联管理
    33: gettext_lazy("Mini Program association management"),
    # Translators: 微信商品库管理
    34: gettext_lazy("Product library management"),
    # Translators: 好物圈
    44: gettext_lazy("Good Things Circle"),
    # Translators: 微信一物一码
    46: gettext_lazy("One Thing One Code"),
    # Translators: 微信财政电子票据
    47: gettext_lazy("Fiscal electronic receipts"),
    # Translators: 服务号对话管理
    54: gettext_lazy("Service account conversation management"),
    # Translators: 微信服务市场管理
    66: gettext_lazy("Service market management"),
    # Translators: 服务号订阅通知
    89: gettext_lazy("Service account subscription notifications"),
    # Translators: Set 100 also grants the draft-box APIs; WeChat does not document its name.
    100: gettext_lazy("Draft box (set 100, undocumented)"),
    # Translators: 就医助手
    113: gettext_lazy("Medical assistant"),
}


def permission_set_name(func_id: int) -> str:
    name = PERMISSION_SET_NAMES.get(func_id)
    return str(name) if name is not None else _("Permission set %(id)s") % {"id": func_id}


def permission_set_label(func_id: int) -> str:
    return f"{func_id} {permission_set_name(func_id)}"


CHART_DAYS = 30
RECENT_ATTEMPTS = 20
RECENT_CHANGES = 30
# WeChat explains a rid for 7 days (docs/wechat/endpoints.md#openapi_rid_get).
RID_RETENTION = timedelta(days=7)

_STATUS_BADGE: dict[str, str] = {
    TenantStatus.ACTIVE: "wxp-ok",
    TenantStatus.REVOKED: "wxp-muted",
    TenantStatus.NEEDS_REAUTH: "wxp-bad",
}


def _badge(css: str, text: str, title: str = "") -> SafeString:
    return format_html('<span class="wxp-badge {}" title="{}">{}</span>', css, title, text)


class FailingFilter(admin.SimpleListFilter):
    """Accounts whose last sync error is newer than their last successful sync (or that never succeeded)."""

    title = gettext_lazy("failing")
    parameter_name = "failing"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, StrOrPromise]]:
        return [("yes", gettext_lazy("Yes")), ("no", gettext_lazy("No"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> QuerySet[Tenant]:
        failing = failing_condition()
        if self.value() == "yes":
            return queryset.filter(failing)
        if self.value() == "no":
            return queryset.exclude(failing)
        return queryset


class TenantPlatformFilter(PlatformListFilter):
    lookup = "component__component_appid"


def _short_time(value: datetime | None) -> SafeString | str:
    """A time in a list column: month, day and minute, with the whole date in the tooltip."""
    if value is None:
        return "—"
    local = timezone.localtime(value)
    return format_html('<span title="{}">{}</span>', local.strftime("%Y-%m-%d %H:%M:%S"), local.strftime("%m-%d %H:%M"))


def _is_failing(tenant: Tenant) -> bool:
    # Annotated by TenantAdmin.get_queryset from the one definition (tenants.selectors.failing_condition).
    return bool(getattr(tenant, "failing", False))


ACCOUNT_FIELDS = (
    "nickname",
    "authorizer_appid",
    "original_id",
    "alias",
    "principal_name",
    "account_kind",
    "service_type",
    "verification",
    "account_status_label",
    "profile_read_at",
    "listed_at",
    "is_test_account",
)
AUTHORIZATION_FIELDS = (
    "component",
    "status",
    "eligibility",
    "eligibility_detail",
    "authorized_at",
    "revoked_at",
    "token_present",
    "access_token_expires_at",
    "token_refreshed_at",
)
DRAFT_COUNT_FIELDS = (
    "draft_count",
    "draft_count_fetched_at",
    "last_sync_attempt_at",
    "last_error_code",
    "last_error_words",
    "last_error_at",
    "last_error_rid_link",
    "paused_until",
    # The cadence of scheduled polls (docs/polling.md).
    "draft_activity_at",
    "next_poll_at",
)
QUOTA_FIELDS = (
    "quota_used",
    "quota_daily_limit",
    "quota_wechat_used",
    "quota_remain",
    "quota_read_at",
    "quota_used_by_label",
    "quota_rate_limits_label",
    "quota_clears_label",
)


# What a call made for an account from the console can fail with, and what staff are told (with the errcode).
CALL_FAILURES = (TenantNotActive, TenantHasNoToken, ComponentNotReady, WeChatError)


def _call_failure(
    exc: Exception, *, not_active: str, refused: str, no_token: str | None = None
) -> tuple[str, int | None]:
    """The message for a failed call on an account's behalf: `refused` takes WeChat's error with its meaning."""
    if isinstance(exc, TenantNotActive):
        return not_active, None
    if isinstance(exc, TenantHasNoToken):
        return no_token or _("The authorization gave no token (the account has no API permission)."), None
    if isinstance(exc, ComponentNotReady):
        return _("The platform cannot obtain its own token: %(reason)s") % {"reason": exc.reason}, exc.errcode
    assert isinstance(exc, WeChatError)
    return refused % {"error": errcode_label(exc.errcode)}, exc.errcode


# Account kinds as short as WeChat's own names, for the merchant list (AccountKind holds the full labels).
_SHORT_KIND: dict[str, StrOrPromise] = {
    AccountKind.SUBSCRIPTION: gettext_lazy("Official Account"),
    AccountKind.SERVICE: gettext_lazy("Service Account"),
}


@admin.register(Tenant)
class TenantAdmin(AuditedAdminMixin):
    list_display = (
        "nickname",
        "appid_cell",
        # The kind, with the service and verification types in its tooltip; the quota and the rest are on the
        # account's page: the list keeps to what fits a 1366 px laptop screen.
        "kind_label",
        "status_badge",
        "eligibility_badge",
        "latest_count",
        "last_sync",
        "last_error",
        "token_expiry",
    )
    list_display_links = ("nickname", "appid_cell")
    list_filter = ("status", "eligibility", "account_kind", "is_test_account", FailingFilter, TenantPlatformFilter)
    search_fields = ("authorizer_appid", "nickname")
    actions = ("sync_selected", "refresh_tokens_selected")
    list_per_page = 50
    change_form_template = "admin/tenants/tenant/change_form.html"
    # An explicit list of what may be shown: the encrypted token columns are deliberately absent.
    fieldsets = (
        (gettext_lazy("Account"), {"fields": ACCOUNT_FIELDS}),
        (gettext_lazy("Authorization"), {"fields": AUTHORIZATION_FIELDS}),
        (gettext_lazy("Draft count"), {"fields": DRAFT_COUNT_FIELDS}),
        (gettext_lazy("draft/count quota"), {"fields": QUOTA_FIELDS}),
    )
    readonly_fields = ACCOUNT_FIELDS + AUTHORIZATION_FIELDS + DRAFT_COUNT_FIELDS + QUOTA_FIELDS

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tenant]:
        # Listing and showing never needs the secrets: they are neither loaded nor decrypted.
        queryset: QuerySet[Tenant] = super().get_queryset(request).defer("access_token", "refresh_token")
        queryset = queryset.annotate(failing=ExpressionWrapper(failing_condition(), output_field=BooleanField()))
        if Platform.objects.count() > 1:
            # Several platforms: one account may be two rows, told apart by the platform under the AppID (an
            # annotation, so that no platform row and none of its encrypted secrets is loaded).
            queryset = queryset.annotate(
                platform_label=Coalesce(NullIf(F("component__name"), Value("")), F("component__component_appid"))
            )
        return queryset

    @admin.display(description=gettext_lazy("AppID"), ordering="authorizer_appid")
    def appid_cell(self, obj: Tenant) -> SafeString | str:
        platform = getattr(obj, "platform_label", None)
        if platform is None:
            return obj.authorizer_appid
        return format_html('{}<br><span class="quiet">{}</span>', obj.authorizer_appid, platform)

    # Tenants come from the authorization flow and leave by revocation: no add, no delete.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Tenant | None = None) -> bool:
        return False

    # --- list columns ------------------------------------------------------------------------------

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_badge(self, obj: Tenant) -> SafeString:
        status = _badge(_STATUS_BADGE.get(obj.status, "wxp-muted"), obj.get_status_display())
        if not obj.is_test_account:
            return status
        # WeChat's own full-release test account: never a merchant, never synced.
        test = _badge("wxp-warn", _("WeChat test account"), _("Used by WeChat's full-release test; not a merchant."))
        return format_html("{} {}", status, test)

    @admin.display(description=gettext_lazy("eligibility"), ordering="eligibility")
    def eligibility_badge(self, obj: Tenant) -> SafeString:
        if obj.eligibility == Eligibility.ELIGIBLE:
            return _badge("wxp-ok", obj.get_eligibility_display())
        if obj.eligibility == Eligibility.MISSING_PERMISSION:
            # Either set grants draft/count, so both are listed as the alternatives to ask for.
            # The set numbers on the badge; their names and the detail in its tooltip.
            numbers = " / ".join(str(i) for i in sorted(DRAFT_PERMISSION_SETS))
            names = " / ".join(permission_set_label(i) for i in sorted(DRAFT_PERMISSION_SETS))
            title = f"{names}. {obj.eligibility_detail}".strip()
            return _badge("wxp-warn", _("Missing: %(sets)s") % {"sets": numbers}, title)
        return _badge("wxp-bad", obj.get_eligibility_display(), obj.eligibility_detail)

    @admin.display(description=gettext_lazy("latest count"), ordering="draft_count")
    def latest_count(self, obj: Tenant) -> int | None:
        return obj.draft_count

    @admin.display(description=gettext_lazy("last sync"), ordering="draft_count_fetched_at")
    def last_sync(self, obj: Tenant) -> SafeString | str:
        return _short_time(obj.draft_count_fetched_at)

    @admin.display(description=gettext_lazy("last error"))
    def last_error_words(self, obj: Tenant) -> str:
        return transport_error_label(obj.last_error_message) if obj.last_error_message else "—"

    @admin.display(description=gettext_lazy("last error"), ordering="last_error_at")
    def last_error(self, obj: Tenant) -> SafeString | str:
        if obj.last_error_at is None:
            return "—"
        # The code in the list, what WeChat said and when in its tooltip: the whole message is on the account's page.
        code = str(obj.last_error_code) if obj.last_error_code is not None else _("network")
        when = timezone.localtime(obj.last_error_at).strftime("%Y-%m-%d %H:%M")
        message = transport_error_label(obj.last_error_message)
        return _badge("wxp-bad" if _is_failing(obj) else "wxp-muted", code, f"{when} {message}")

    @admin.display(description=gettext_lazy("token expiry"), ordering="access_token_expires_at")
    def token_expiry(self, obj: Tenant) -> SafeString | str:
        expires_at = obj.access_token_expires_at
        if expires_at is None:
            return "—"
        label = timezone.localtime(expires_at).strftime("%m-%d %H:%M")
        full = timezone.localtime(expires_at).strftime("%Y-%m-%d %H:%M")
        now = timezone.now()
        if expires_at <= now:
            return _badge("wxp-bad", label, f"{full} {_('expired')}")
        return _badge("wxp-warn" if expires_at - now < AUTHORIZER_REFRESH_MARGIN else "wxp-ok", label, full)

    @admin.display(description=gettext_lazy("account kind"), ordering="account_kind")
    def kind_label(self, obj: Tenant) -> SafeString:
        # The list shows WeChat's short name; the full one ("formerly subscription account") is in the title.
        full = obj.get_account_kind_display()
        detail = f"{full} · {self.service_type(obj)} · {self.verification(obj)}"
        return format_html('<span title="{}">{}</span>', detail, _SHORT_KIND.get(obj.account_kind, full))

    @admin.display(description=gettext_lazy("service type"), ordering="service_type_id")
    def service_type(self, obj: Tenant) -> str:
        return code_label(SERVICE_TYPE_LABELS, obj.service_type_id)

    @admin.display(description=gettext_lazy("verification type"), ordering="verify_type_id")
    def verification(self, obj: Tenant) -> str:
        return code_label(VERIFY_TYPE_LABELS, obj.verify_type_id)

    @admin.display(description=gettext_lazy("account status"), ordering="account_status")
    def account_status_label(self, obj: Tenant) -> str:
        return code_label(ACCOUNT_STATUS_LABELS, obj.account_status)

    @admin.display(description=gettext_lazy("quota used / limit"), ordering="quota_used")
    def quota_column(self, obj: Tenant) -> str:
        # Our own count of today's calls, against the account's own limit (the default before a reading).
        limit = obj.quota_daily_limit if obj.quota_daily_limit is not None else settings.DRAFT_QUOTA_DAILY_LIMIT
        return f"{quota_used_today(obj, quota_day(timezone.now()))} / {limit}"

    @admin.display(description=gettext_lazy("quota clears this month"))
    def quota_clears_label(self, obj: Tenant) -> str:
        # WeChat does not tell how many are left: the merchant's own console may have spent some
        # (docs/wechat/quota.md#clear_quota-budget). Clearing stays a staff decision, never automatic.
        used = clears_used(obj)
        return _(
            "at most %(left)d of %(limit)d left: %(used)d made by this service; clears made in the merchant's own "
            "console are not counted here"
        ) % {"left": max(0, MONTHLY_CLEARS - used), "limit": MONTHLY_CLEARS, "used": used}

    @admin.display(description=gettext_lazy("who used the quota"))
    def quota_used_by_label(self, obj: Tenant) -> str:
        quota = quota_attribution(tenant=obj)
        if quota.used_by_others is None:
            return _("%(ours)d calls by this platform today; WeChat's count not read yet today") % {
                "ours": quota.used_by_us
            }
        return _(
            "%(ours)d by this platform (sync and gateway), %(others)d by others (other third parties, the "
            "merchant's own tools) of %(used)d counted by WeChat at the last reading"
        ) % {"ours": quota.used_by_us, "others": quota.used_by_others, "used": quota.used}

    @admin.display(description=gettext_lazy("rate limits"))
    def quota_rate_limits_label(self, obj: Tenant) -> str:
        def rate(calls: int | None, seconds: int | None) -> str:
            if calls is None or seconds is None:
                return _("not reported")
            if not calls or not seconds:
                return _("none")
            return _("%(calls)d calls per %(seconds)d s") % {"calls": calls, "seconds": seconds}

        return _("third parties (this platform's budget): %(component)s; the account's own: %(own)s") % {
            "component": rate(obj.quota_component_rate_calls, obj.quota_component_rate_seconds),
            "own": rate(obj.quota_rate_calls, obj.quota_rate_seconds),
        }

    @admin.display(description=gettext_lazy("last error rid"))
    def last_error_rid_link(self, obj: Tenant) -> SafeString | str:
        if not obj.last_error_rid:
            return "—"
        url = reverse("admin:tenants_tenant_explain_rid", args=[obj.pk]) + f"?rid={obj.last_error_rid}"
        return format_html('<a href="{}" class="wxp-rid">{}</a>', url, obj.last_error_rid)

    @admin.display(description=gettext_lazy("token present"), boolean=True)
    def token_present(self, obj: Tenant) -> bool:
        # Whether a usable token exists, without loading it: an expiry is stored only with a token.
        return obj.access_token_expires_at is not None

    # --- bulk actions ------------------------------------------------------------------------------

    @admin.action(description=gettext_lazy("Sync draft counts of selected accounts"), permissions=["change"])
    def sync_selected(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        queued, shared, answered = [], [], []
        reasons: Counter[str] = Counter()
        for tenant in queryset:
            result = draft_count_request_sync(tenant=tenant, trigger=SyncTrigger.ADMIN)
            if result.served_from_storage:
                answered.append(tenant.pk)
                reasons[result.job.skip_reason] += 1
            elif result.created:
                queued.append(tenant.pk)
            else:
                shared.append(tenant.pk)
        audit_record(
            request=request,
            action="tenants.sync_selected",
            target=f"{len(queued) + len(shared) + len(answered)} tenants",
            detail={"queued": queued, "already_queued": shared, "not_called": answered},
        )
        counts = {"queued": len(queued), "shared": len(shared), "answered": len(answered)}
        if not answered:
            self.message_user(request, _("Syncs queued: %(queued)d; already queued: %(shared)d.") % counts)
            return
        # The sync rules answered these at once, without WeChat: each reason in words, with how many it stopped.
        labels = dict(SkipReason.choices)
        why = " · ".join(
            _("%(reason)s: %(count)d") % {"reason": labels.get(reason, reason), "count": n}
            for reason, n in reasons.most_common()
        )
        self.message_user(
            request,
            _("Syncs queued: %(queued)d; already queued: %(shared)d; WeChat not called for %(answered)d (%(why)s).")
            % {**counts, "why": why},
            messages.SUCCESS if queued or shared else messages.WARNING,
        )

    @admin.action(description=gettext_lazy("Refresh tokens of selected accounts"), permissions=["change"])
    def refresh_tokens_selected(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        # Only active accounts have a token to refresh; the task would skip the others anyway.
        ids = list(queryset.filter(status=TenantStatus.ACTIVE).values_list("pk", flat=True))
        skipped = queryset.count() - len(ids)
        failed = [pk for pk in ids if not enqueue(refresh_token_task, pk)]
        audit_record(
            request=request,
            action="tenants.refresh_tokens_selected",
            target=f"{len(ids)} tenants",
            detail={"queued": [pk for pk in ids if pk not in failed], "not_queued": failed, "skipped": skipped},
        )
        if failed:
            self.message_user(
                request,
                _("The task queue is unavailable: %(n)d token refreshes could not be queued.") % {"n": len(failed)},
                messages.ERROR,
            )
        self.message_user(
            request,
            _("Token refreshes queued: %(queued)d; not active, skipped: %(skipped)d.")
            % {"queued": len(ids) - len(failed), "skipped": skipped},
            messages.SUCCESS if not failed else messages.WARNING,
        )

    # --- tenant page -------------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        # Most specific first: "<path:object_id>/revoke/" would also match a key's revoke URL.
        return [
            path(
                "<path:object_id>/api-keys/<str:prefix>/revoke/",
                wrap(self.api_key_revoke_view),
                name="tenants_tenant_api_key_revoke",
            ),
            path(
                "<path:object_id>/api-keys/<str:prefix>/rotate/",
                wrap(self.api_key_rotate_view),
                name="tenants_tenant_api_key_rotate",
            ),
            path(
                "<path:object_id>/api-keys/create/",
                wrap(self.api_key_create_view),
                name="tenants_tenant_api_key_create",
            ),
            path("<path:object_id>/sync/", wrap(self.sync_view), name="tenants_tenant_sync"),
            path("<path:object_id>/refresh-token/", wrap(self.refresh_token_view), name="tenants_tenant_refresh_token"),
            path("<path:object_id>/revoke/", wrap(self.revoke_view), name="tenants_tenant_revoke"),
            path("<path:object_id>/clear-quota/", wrap(self.clear_quota_view), name="tenants_tenant_clear_quota"),
            path("<path:object_id>/explain-rid/", wrap(self.explain_rid_view), name="tenants_tenant_explain_rid"),
            *super().get_urls(),
        ]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # Every field is read-only; a form save would rewrite the whole row (tokens included) from a stale
        # copy, so the page is for reading and its buttons are the only way to change anything.
        if request.method == "POST":
            return HttpResponseNotAllowed(["GET"])
        tenant = self.get_object(request, object_id)
        if tenant is not None:
            extra_context = {**(extra_context or {}), **self._page_context(request, tenant)}
        return super().change_view(request, object_id, form_url, extra_context)

    def _page_context(self, request: HttpRequest, tenant: Tenant) -> dict[str, Any]:
        now = timezone.now()
        start = now - timedelta(days=CHART_DAYS)
        points: list[tuple[datetime, int]] = []
        before = draft_snapshot_list(tenant=tenant, until=start).first()
        if before is not None:
            points.append((before.fetched_at, before.total_count))
        window: list[DraftSnapshot] = list(draft_snapshot_list(tenant=tenant, since=start))
        points.extend((s.fetched_at, s.total_count) for s in reversed(window))
        # An unchanged fetch writes no snapshot; the tenant row has the latest value.
        if tenant.draft_count is not None and tenant.draft_count_fetched_at is not None:
            if not points or tenant.draft_count_fetched_at > points[-1][0]:
                points.append((tenant.draft_count_fetched_at, tenant.draft_count))
        attempts = list(SyncAttempt.objects.filter(tenant=tenant).order_by("-at")[:RECENT_ATTEMPTS])
        key_rows = [_api_key_row(tenant, key) for key in api_key_list(tenant=tenant)]
        return {
            "can_act": self.has_change_permission(request, tenant),
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            "show_delete": False,
            "permission_sets": [
                {"id": i, "name": permission_set_name(i), "grants_drafts": i in DRAFT_PERMISSION_SETS}
                for i in sorted(tenant.func_ids or [])
            ],
            "draft_sets": [permission_set_label(i) for i in sorted(DRAFT_PERMISSION_SETS)],
            "eligibility": self.eligibility_badge(tenant),
            # 61007 / set 11 missing: the page that grants it again; 48001: what the account lacks (never "try again").
            "refusal_message": draft_refusal_message(tenant),
            "reauthorize_url": reauthorize_url(tenant) if draft_refusal(tenant) == DraftRefusal.NOT_GRANTED else None,
            "chart": step_chart_svg(
                points,
                start=start,
                end=now,
                label=_("Draft count, last %(days)d days") % {"days": CHART_DAYS},
            ),
            "chart_days": CHART_DAYS,
            "attempts": attempts,
            # A scheduled sync that succeeds writes no attempt (only the tenant row and snapshots): show the
            # last success when no attempt tells of it.
            "last_success_unrecorded": tenant.draft_count_fetched_at is not None
            and (not attempts or attempts[0].at < tenant.draft_count_fetched_at),
            "rid_cutoff": now - RID_RETENTION,
            "profile_changes": [
                {
                    "change": c,
                    "field": _profile_field_label(c.field),
                    "old": _profile_value(c.field, c.old),
                    "new": _profile_value(c.field, c.new),
                }
                for c in TenantProfileChange.objects.filter(tenant=tenant).order_by("-at", "-id")[:RECENT_CHANGES]
            ],
            "clears_used": clears_used(tenant),
            "clears_left": max(0, MONTHLY_CLEARS - clears_used(tenant)),
            "monthly_clears": MONTHLY_CLEARS,
            "api_keys": key_rows,
            "api_key_notes": list(dict.fromkeys(row["note"] for row in key_rows if row["note"])),
            "inactive_refusal": inactive_refusal(tenant),
            "webhooks": endpoint_list(tenant_id=tenant.pk).defer("secret"),
            "failing": _is_failing(tenant),
        }

    def _tenant_for_action(self, request: HttpRequest, object_id: str) -> Tenant:
        tenant: Tenant | None = self.get_object(request, object_id)
        if tenant is None:
            raise Http404
        if not self.has_change_permission(request, tenant):
            raise PermissionDenied
        return tenant

    def _back(self, tenant: Tenant) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:tenants_tenant_change", args=[tenant.pk]))

    def _refuse_inactive(self, request: HttpRequest, tenant: Tenant) -> HttpResponseRedirect | None:
        """Back to the page with the reason when the account has no authorization to call WeChat with (its
        page offers no such action; a stale page or a hand-made POST lands here). Nothing is asked, queued,
        recorded or audited: there is nothing to do until the merchant authorizes again."""
        refusal = inactive_refusal(tenant)
        if refusal is None:
            return None
        self.message_user(request, refusal, messages.ERROR)
        return self._back(tenant)

    def sync_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST: sync this tenant now, in the request, so that the page shows the new count at once."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        tenant = self._tenant_for_action(request, object_id)
        refused = self._refuse_inactive(request, tenant)
        if refused is not None:
            return refused
        result = draft_count_sync_tenant(tenant=tenant, trigger=SyncTrigger.ADMIN)
        audit_record(
            request=request,
            action="tenant.sync",
            target=_target(tenant),
            detail={
                "outcome": str(result.outcome),
                "total_count": result.total_count,
                "errcode": result.errcode,
                "reason": str(result.reason) if result.reason else None,
            },
        )
        level, text = _sync_message(result)
        self.message_user(request, text, level)
        return self._back(tenant)

    def refresh_token_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST: refresh the authorizer access token now (single-flight with every other refresher)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        tenant = self._tenant_for_action(request, object_id)
        refused = self._refuse_inactive(request, tenant)
        if refused is not None:
            return refused
        error: str | None = None
        errcode: int | None = None
        try:
            tenant_token_refresh_service(tenant_id=tenant.pk, margin=FORCE_REFRESH_MARGIN)
        except CALL_FAILURES as exc:
            error, errcode = _call_failure(
                exc,
                not_active=_("The account is not active: it has no token to refresh."),
                refused=_("WeChat refused the refresh: %(error)s"),
            )
        audit_record(
            request=request,
            action="tenant.refresh_token",
            target=_target(tenant),
            detail={"ok": error is None, "errcode": errcode},
        )
        if error is None:
            self.message_user(request, _("Token refreshed."), messages.SUCCESS)
        else:
            self.message_user(request, error, messages.ERROR)
        return self._back(tenant)

    def revoke_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET: a confirmation page. POST: mark the account revoked and purge its tokens (history is kept)."""
        if request.method not in ("GET", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        tenant = self._tenant_for_action(request, object_id)
        if request.method == "POST":
            tenant_revoke(component_id=tenant.component_id, authorizer_appid=tenant.authorizer_appid)
            audit_record(request=request, action="tenant.revoke", target=_target(tenant))
            self.message_user(request, _("Marked revoked; the tokens were purged."), messages.SUCCESS)
            return self._back(tenant)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Mark %(name)s revoked?") % {"name": tenant},
            "opts": self.opts,
            "original": tenant,
            "tenant": tenant,
        }
        return TemplateResponse(request, "admin/tenants/tenant/revoke_confirmation.html", context)

    def clear_quota_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET: a confirmation page with this month's clears. POST: clear_quota for the account, audited."""
        if request.method not in ("GET", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        tenant = self._tenant_for_action(request, object_id)
        refused = self._refuse_inactive(request, tenant)
        if refused is not None:
            return refused
        if request.method == "POST":
            return self._clear_quota(request, tenant)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Clear the draft/count quota of %(name)s?") % {"name": tenant},
            "opts": self.opts,
            "original": tenant,
            "tenant": tenant,
            "clears_used": clears_used(tenant),
            "monthly_clears": MONTHLY_CLEARS,
        }
        return TemplateResponse(request, "admin/tenants/tenant/clear_quota_confirmation.html", context)

    def _clear_quota(self, request: HttpRequest, tenant: Tenant) -> HttpResponse:
        error: str | None = None
        errcode: int | None = None
        outcome: ClearOutcome | None = None
        try:
            outcome = tenant_quota_clear(tenant=tenant)
        except CALL_FAILURES as exc:
            error, errcode = _call_failure(
                exc,
                not_active=_("The account is not active: it has no token to clear its quota with."),
                refused=_("WeChat refused to clear the quota: %(error)s"),
            )
        if outcome is not None and not outcome.cleared:
            errcode = 48006
        audit_record(
            request=request,
            action="tenant.clear_quota",
            target=_target(tenant),
            detail={
                "cleared": outcome is not None and outcome.cleared,
                "errcode": errcode,
                "clears_used": outcome.clears_used if outcome is not None else None,
            },
        )
        if error is not None:
            self.message_user(request, error, messages.ERROR)
        elif outcome is not None and not outcome.cleared:
            self.message_user(
                request,
                _(
                    "WeChat refused (48006): this account's 10 quota clears for this month are used up, counting "
                    "those made in the merchant's own console. Its quota resets at midnight China time."
                ),
                messages.ERROR,
            )
        elif outcome is not None:
            self.message_user(
                request,
                _("Quota cleared: %(used)d of %(limit)d clears used this month by this service.")
                % {"used": outcome.clears_used, "limit": MONTHLY_CLEARS},
                messages.SUCCESS,
            )
        return self._back(tenant)

    def explain_rid_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET ?rid=…: what WeChat saw of a failed call of this account (openapi/rid/get), tokens masked. Only
        a rid stored for this tenant (a sync attempt or its last error) is looked up, within WeChat's 7 days."""
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        tenant: Tenant | None = self.get_object(request, object_id)
        if tenant is None:
            raise Http404
        if not self.has_view_permission(request, tenant):
            raise PermissionDenied
        rid = (request.GET.get("rid") or "").strip()[:64]
        seen_at = _rid_seen_at(tenant, rid)
        if seen_at is None:
            raise Http404
        explanation: RidExplanation | None = None
        error: str | None = None
        if seen_at < timezone.now() - RID_RETENTION:
            error = _("WeChat keeps a rid for 7 days only; this one is older.")
        else:
            try:
                explanation = tenant_rid_explain(tenant=tenant, rid=rid)
            except CALL_FAILURES as exc:
                no_token = _("The account has no token now, and WeChat explains a rid only to the same account.")
                error, _errcode = _call_failure(
                    exc,
                    not_active=no_token,
                    no_token=no_token,
                    refused=_("WeChat could not explain this rid: %(error)s"),
                )
        audit_record(
            request=request,
            action="tenant.explain_rid",
            target=_target(tenant),
            detail={"rid": rid, "explained": explanation is not None},
        )
        context = {
            **self.admin_site.each_context(request),
            "title": _("rid %(rid)s") % {"rid": rid},
            "opts": self.opts,
            "original": tenant,
            "tenant": tenant,
            "rid": rid,
            "explanation": explanation,
            "error": error,
        }
        return TemplateResponse(request, "admin/tenants/tenant/rid_explanation.html", context)

    def api_key_create_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST: issue a key and show it on this response only. It is never stored in clear, never put in
        a message or session, and this page is not cached."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        tenant = self._tenant_for_action(request, object_id)
        name = (request.POST.get("name") or "").strip()[:50] or _("Key created in the console")
        key, raw = api_key_issue(tenant=tenant, name=name)
        audit_record(
            request=request,
            action="api_key.create",
            target=_target(tenant),
            detail={"prefix": key.prefix, "name": key.name},
        )
        return self._key_shown_once(request, tenant, key, raw)

    def api_key_rotate_view(self, request: HttpRequest, object_id: str, prefix: str) -> HttpResponse:
        """POST: replace one of this tenant's keys by a new one with the same name, atomically (the old key
        stops working as the new one starts), and show the new key once. Another tenant's key is a 404."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        tenant = self._tenant_for_action(request, object_id)
        old = get_object_or_404(TenantAPIKey, prefix=prefix, tenant=tenant)
        try:
            key, raw = api_key_rotate(key=old)
        except APIKeyAlreadyRevoked:
            self.message_user(
                request, _("API key %(prefix)s is revoked; nothing was rotated.") % {"prefix": prefix}, messages.WARNING
            )
            return self._back(tenant)
        audit_record(
            request=request,
            action="api_key.rotate",
            target=_target(tenant),
            detail={"prefix": key.prefix, "replaced": old.prefix, "name": key.name},
        )
        return self._key_shown_once(request, tenant, key, raw)

    def _key_shown_once(self, request: HttpRequest, tenant: Tenant, key: TenantAPIKey, raw: str) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": _("New API key"),
            "opts": self.opts,
            "original": tenant,
            "tenant": tenant,
            "key": key,
            "raw_key": raw,
        }
        response = TemplateResponse(request, "admin/tenants/tenant/api_key_created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    def api_key_revoke_view(self, request: HttpRequest, object_id: str, prefix: str) -> HttpResponse:
        """POST: revoke one of this tenant's keys (another tenant's key is a 404)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        tenant = self._tenant_for_action(request, object_id)
        # Keys are addressed by their public prefix (unique); the primary key embeds the key's hash.
        key = get_object_or_404(TenantAPIKey, prefix=prefix, tenant=tenant)
        revoked = api_key_revoke(key=key)
        audit_record(
            request=request,
            action="api_key.revoke",
            target=_target(tenant),
            detail={"prefix": key.prefix, "name": key.name, "changed": revoked},
        )
        self.message_user(
            request,
            _("API key %(prefix)s revoked.") % {"prefix": key.prefix}
            if revoked
            else _("API key %(prefix)s was already revoked.") % {"prefix": key.prefix},
            messages.SUCCESS if revoked else messages.WARNING,
        )
        return self._back(tenant)


def _rid_seen_at(tenant: Tenant, rid: str) -> datetime | None:
    """When this tenant's failure with this rid was recorded, or None if no such rid is stored for it."""
    if not rid:
        return None
    attempt = SyncAttempt.objects.filter(tenant=tenant, rid=rid).order_by("-at").values_list("at", flat=True).first()
    if attempt is not None:
        return attempt
    if tenant.last_error_rid == rid and tenant.last_error_at is not None:
        return tenant.last_error_at
    return None


_PROFILE_FIELD_LABELS: dict[str, StrOrPromise] = {
    "nickname": gettext_lazy("nickname"),
    "head_img": gettext_lazy("avatar"),
    "principal_name": gettext_lazy("principal"),
    "original_id": gettext_lazy("original ID"),
    "alias": gettext_lazy("WeChat ID"),
    "account_kind": gettext_lazy("account kind"),
    "service_type_id": gettext_lazy("service type"),
    "verify_type_id": gettext_lazy("verification type"),
    "account_status": gettext_lazy("account status"),
    "func_ids": gettext_lazy("granted permission sets"),
    "eligibility": gettext_lazy("eligibility"),
}


def _profile_field_label(name: str) -> str:
    return str(_PROFILE_FIELD_LABELS.get(name, name))


_CODE_FIELDS = {
    "service_type_id": SERVICE_TYPE_LABELS,
    "verify_type_id": VERIFY_TYPE_LABELS,
    "account_status": ACCOUNT_STATUS_LABELS,
}
_CHOICE_FIELDS = {"account_kind": dict(AccountKind.choices), "eligibility": dict(Eligibility.choices)}


def _profile_value(name: str, value: str) -> str:
    """A change-log value as staff read it: codes with their meaning, choices by their label."""
    if not value:
        return "—"
    if name in _CODE_FIELDS:
        try:
            return code_label(_CODE_FIELDS[name], int(value))
        except ValueError:
            return value
    if name in _CHOICE_FIELDS:
        return str(_CHOICE_FIELDS[name].get(value, value))
    return value


def _api_key_row(tenant: Tenant, key: TenantAPIKey) -> dict[str, Any]:
    """A key with what the merchant API does with it now (tenants.authentication, wxplatform.api.views): the
    badge's words and colour, and the whole answer in words for the note under the table."""
    row: dict[str, Any] = {"key": key, "usable": False, "note": ""}
    if key.revoked:
        row.update(state=_("revoked"), css="wxp-muted")
    elif key.has_expired:
        row.update(state=_("expired"), css="wxp-muted")
    elif key.history_only:
        until = date_format(timezone.localtime(key.expiry_date), "DATETIME_FORMAT") if key.expiry_date else "—"
        row.update(
            state=_("history only"),
            css="wxp-warn",
            note=_(
                "The authorization this key was issued under was revoked: the API answers its draft count history "
                "only (403 api_key_history_only on everything else) until %(until)s, then refuses it as expired."
            )
            % {"until": until},
        )
    elif tenant.status == TenantStatus.REVOKED:
        row.update(
            state=_("draft count refused"),
            css="wxp-warn",
            note=_(
                "The account revoked its authorization: the API answers the profile, quota and history, and "
                "refuses the draft count and syncs (403 tenant_revoked)."
            ),
        )
    elif tenant.status == TenantStatus.NEEDS_REAUTH:
        row.update(
            state=_("draft count refused"),
            css="wxp-warn",
            note=_(
                "The account must authorize again: the API answers the profile, quota and history, and refuses "
                "the draft count and syncs (403 tenant_needs_reauthorization)."
            ),
        )
    else:
        row.update(state=_("active"), css="wxp-ok", usable=True)
    return row


def inactive_refusal(tenant: Tenant) -> str | None:
    """Why nothing can be asked of WeChat for this account (sync, token refresh, quota clear), or None when it is
    active. A revoked account has no tokens left (tenants.services.tenant_revoke purged them); one that must
    authorize again holds a refresh token WeChat no longer accepts."""
    if tenant.status == TenantStatus.REVOKED:
        when = date_format(timezone.localtime(tenant.revoked_at), "DATETIME_FORMAT") if tenant.revoked_at else "—"
        return _(
            "This account revoked its authorization of the platform (%(when)s): it has no token, so it cannot be "
            "synced and has no token to refresh until it authorizes again."
        ) % {"when": when}
    if tenant.status == TenantStatus.NEEDS_REAUTH:
        return _(
            "This account's authorization is no longer valid: it cannot be synced and its token cannot be "
            "refreshed until it authorizes the platform again."
        )
    return None


def _target(tenant: Tenant) -> str:
    return f"tenant:{tenant.pk} {tenant.authorizer_appid}"


def _sync_message(result: TenantResult) -> tuple[int, str]:
    """The message shown after "Sync now", by what the sync did."""
    reason = result.reason.label if result.reason is not None else result.message
    if result.outcome in (AttemptOutcome.CHANGED, AttemptOutcome.UNCHANGED):
        return messages.SUCCESS, _("Synced: %(count)s drafts.") % {"count": result.total_count}
    if result.outcome == AttemptOutcome.CACHED:
        return messages.WARNING, _("WeChat was not called (%(reason)s); stored count: %(count)s.") % {
            "reason": reason,
            "count": result.total_count,
        }
    if result.outcome == AttemptOutcome.SKIPPED:
        return messages.WARNING, _("Not synced: %(reason)s.") % {"reason": reason}
    return messages.ERROR, _("Sync failed: errcode %(code)s %(message)s") % {
        "code": errcode_label(result.errcode),
        "message": result.message,
    }
