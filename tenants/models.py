"""Authorized accounts (tenants): identity, granted permissions, authorizer tokens, and quick-read sync state."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework_api_key.models import AbstractAPIKey

from wxplatform.component.models import Platform
from wxplatform.core.encryption import EncryptedTextField

# Permission sets that grant the draft-box APIs (docs/wechat/permissions.md): either one suffices.
DRAFT_PERMISSION_SETS = frozenset({11, 100})


class AccountKind(models.TextChoices):
    # WeChat's current names: its docs now treat 公众号 (formerly 订阅号, subscription account) and 服务号 apart
    # (docs/wechat/permissions.md#account-kinds). The stored values keep the old words.
    # Translators: 公众号(原订阅号)
    SUBSCRIPTION = "subscription", _("Official Account (formerly subscription account)")
    # Translators: 服务号
    SERVICE = "service", _("Service Account")
    MINI_PROGRAM = "mini_program", _("Mini Program")
    OTHER = "other", _("Other account type")


class TenantStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    REVOKED = "revoked", _("Revoked")
    NEEDS_REAUTH = "needs_reauth", _("Needs re-authorization")


class Eligibility(models.TextChoices):
    ELIGIBLE = "eligible", _("Eligible")
    MISSING_PERMISSION = "missing_permission", _("Permission set 11 or 100 not granted")
    WRONG_KIND = "wrong_kind", _("Not an Official Account or a Service Account")
    REJECTED = "rejected", _("Rejected by WeChat")
    ACCOUNT_STATUS = "account_status", _("Account deregistered, banned or frozen")


# account_status of api_get_authorizer_info (docs/wechat/lifecycle.md#authorizer-profile).
ACCOUNT_STATUS_NORMAL = 1
ACCOUNT_STATUS_WARNED = 18
BLOCKING_ACCOUNT_STATUSES = frozenset({14, 16, 19})

# What staff read instead of WeChat's numbers (docs/wechat/permissions.md#service_type_info and
# #verify_type_info). The Chinese names
# WeChat uses are given to translators.
ACCOUNT_STATUS_LABELS = {
    # Translators: 正常
    1: _("normal"),
    # Translators: 已注销
    14: _("deregistered"),
    # Translators: 已封禁
    16: _("banned"),
    # Translators: 已告警
    18: _("warned"),
    # Translators: 已冻结
    19: _("frozen"),
}
SERVICE_TYPE_LABELS = {
    # Translators: 公众号(原订阅号)
    0: _("Official Account (formerly subscription account)"),
    # Translators: 由历史老帐号升级后的公众号(原订阅号)
    1: _("Official Account (upgraded from a legacy account)"),
    # Translators: 服务号
    2: _("Service Account"),
}
VERIFY_TYPE_LABELS = {
    # Translators: 未认证
    -1: _("not verified"),
    # Translators: 微信认证
    0: _("WeChat verified"),
    # Translators: 新浪微博认证
    1: _("Sina Weibo verified"),
    # Translators: 已资质认证通过但还未通过名称认证
    3: _("qualification verified, name not yet verified"),
    # Translators: 已资质认证通过、还未通过名称认证, 但通过了新浪微博认证
    4: _("qualification verified, name not yet verified, Sina Weibo verified"),
}


def code_label(labels: dict[int, Any], code: int | None) -> str:
    """A WeChat enum value as staff read it: its meaning and, in brackets, the number (unknown values occur)."""
    if code is None:
        return "—"
    label = labels.get(code)
    return f"{label} ({code})" if label is not None else _("unknown (%(code)s)") % {"code": code}


class Tenant(models.Model):
    # The platform the account authorized. One Official Account may authorize two of the provider's platforms:
    # those are two tenants, each with its own refresh token (docs/wechat/platforms.md).
    component = models.ForeignKey(
        Platform, verbose_name=_("third-party platform"), on_delete=models.PROTECT, related_name="tenants"
    )
    authorizer_appid = models.CharField(_("AppID"), max_length=64)
    nickname = models.CharField(_("nickname"), max_length=255, blank=True)
    head_img = models.URLField(_("avatar"), max_length=500, blank=True)
    original_id = models.CharField(_("original ID"), max_length=64, blank=True)
    alias = models.CharField(_("WeChat ID"), max_length=64, blank=True)
    principal_name = models.CharField(_("principal"), max_length=255, blank=True)
    account_kind = models.CharField(_("account kind"), max_length=20, choices=AccountKind.choices)
    service_type_id = models.IntegerField(_("service type"), null=True, blank=True)
    verify_type_id = models.IntegerField(_("verification type"), null=True, blank=True)
    func_ids = models.JSONField(_("granted permission sets"), default=list, blank=True)
    account_status = models.IntegerField(_("account status"), null=True, blank=True)
    # authorizer_info as WeChat last sent it (no credential is in it), and when it was read.
    profile_raw = models.JSONField(_("profile as WeChat sent it"), default=dict, blank=True, editable=False)
    profile_read_at = models.DateTimeField(_("profile read at"), null=True, blank=True)
    # When api_get_authorizer_list last listed the account (reconciliation: an active tenant not listed by a
    # complete pass is checked and, on 61003, revoked).
    listed_at = models.DateTimeField(_("last listed by WeChat"), null=True, blank=True)
    # One of WeChat's full-release test accounts (settings.WECHAT_RELEASE_TEST_APPIDS): never a merchant, so
    # never synced nor counted (docs/wechat/message-url.md#test-accounts).
    is_test_account = models.BooleanField(_("WeChat test account"), default=False)

    status = models.CharField(_("status"), max_length=20, choices=TenantStatus.choices, default=TenantStatus.ACTIVE)
    eligibility = models.CharField(_("eligibility"), max_length=20, choices=Eligibility.choices)
    eligibility_detail = models.CharField(_("eligibility detail"), max_length=255, blank=True)

    # Authorizer credentials, encrypted at rest. token_version grows with every stored token so that a
    # slower refresher can never overwrite a newer token with an older one (conditional update on it).
    access_token = EncryptedTextField(_("authorizer access token"), blank=True, editable=False)
    access_token_expires_at = models.DateTimeField(_("access token expiry"), null=True, blank=True)
    refresh_token = EncryptedTextField(_("authorizer refresh token"), blank=True, editable=False)
    token_version = models.PositiveBigIntegerField(default=0, editable=False)
    token_refreshed_at = models.DateTimeField(_("token refreshed at"), null=True, blank=True)

    # Draft-count state for quick reads; history is in drafts.DraftSnapshot.
    draft_count = models.IntegerField(_("draft count"), null=True, blank=True)
    draft_count_fetched_at = models.DateTimeField(_("last successful sync"), null=True, blank=True)
    last_sync_attempt_at = models.DateTimeField(_("last sync attempt"), null=True, blank=True)
    last_snapshot_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error_code = models.IntegerField(_("last errcode"), null=True, blank=True)
    last_error_message = models.CharField(_("last error"), max_length=500, blank=True)
    last_error_at = models.DateTimeField(_("last error at"), null=True, blank=True)
    # WeChat's request id of the last failed sync or token refresh, for openapi/rid/get (7 days).
    last_error_rid = models.CharField(_("last error rid"), max_length=64, blank=True)
    # draft/count quota bookkeeping: our own count of calls per quota day (docs/wechat/quota.md) ...
    quota_day = models.DateField(null=True, blank=True, editable=False)
    quota_used = models.PositiveIntegerField(_("draft/count calls today"), default=0)
    # ... and the account's own limit and use as openapi/quota/get last reported them (null: never read).
    quota_daily_limit = models.PositiveIntegerField(_("draft/count daily limit"), null=True, blank=True)
    quota_wechat_used = models.PositiveIntegerField(_("draft/count used (WeChat)"), null=True, blank=True)
    quota_remain = models.PositiveIntegerField(_("draft/count remaining (WeChat)"), null=True, blank=True)
    quota_read_at = models.DateTimeField(_("quota read at"), null=True, blank=True)
    # The sync's own draft/count calls of that quota day when the reading was taken (quota_used then): what
    # `quota_wechat_used` minus this platform's calls leaves to others is told against the same moment.
    quota_used_at_read = models.PositiveIntegerField(_("our draft/count calls at the reading"), null=True, blank=True)
    # The call-rate limits openapi/quota/get reported with it (null: not reported; 0/0: no limit). The component
    # one bounds this platform's calls: at most call_count per refresh_second window (docs/wechat/quota.md).
    quota_rate_calls = models.PositiveIntegerField(_("draft/count rate limit (calls)"), null=True, blank=True)
    quota_rate_seconds = models.PositiveIntegerField(_("draft/count rate limit (seconds)"), null=True, blank=True)
    quota_component_rate_calls = models.PositiveIntegerField(
        _("draft/count third-party rate limit (calls)"), null=True, blank=True
    )
    quota_component_rate_seconds = models.PositiveIntegerField(
        _("draft/count third-party rate limit (seconds)"), null=True, blank=True
    )
    # clear_quota calls this service made in the month quota_clears_month (WeChat allows 10 and does not
    # say how many were used).
    quota_clears_month = models.CharField(max_length=7, blank=True, editable=False)
    quota_clears = models.PositiveSmallIntegerField(_("quota clears this month"), default=0)
    paused_until = models.DateTimeField(_("paused until"), null=True, blank=True)
    # Polling cadence (docs/polling.md): when a scheduled run next calls draft/count for the account (due at once
    # when created), and the last sign of activity in its draft box (the count seen to change, or an event
    # announcing a change), from which the quiet time that sets the interval is counted.
    next_poll_at = models.DateTimeField(_("next scheduled poll"), default=timezone.now)
    draft_activity_at = models.DateTimeField(_("last draft-box activity"), null=True, blank=True)

    authorized_at = models.DateTimeField(_("authorized at"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("merchant account")
        verbose_name_plural = _("merchant accounts")
        ordering: ClassVar[list[str]] = ["id"]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["status", "eligibility", "id"], name="tenant_syncable_idx"),
            models.Index(fields=["access_token_expires_at"], name="tenant_token_expiry_idx"),
            models.Index(fields=["authorizer_appid"], name="tenant_appid_idx"),
            # Scheduled runs plan only the accounts due (docs/polling.md#planning).
            models.Index(fields=["next_poll_at"], name="tenant_next_poll_idx"),
        ]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["component", "authorizer_appid"], name="tenant_one_per_platform"),
        ]

    def __str__(self) -> str:
        return self.nickname or self.authorizer_appid


class TenantProfileChange(models.Model):
    """One field of an account's profile that changed between two readings of api_get_authorizer_info."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="profile_changes")
    field = models.CharField(_("field"), max_length=32)
    old = models.TextField(_("old value"), blank=True)
    new = models.TextField(_("new value"), blank=True)
    at = models.DateTimeField(_("at"))

    class Meta:
        verbose_name = _("profile change")
        verbose_name_plural = _("profile changes")
        ordering: ClassVar[list[str]] = ["-at", "-id"]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["tenant", "-at"], name="profile_change_tenant_idx")
        ]

    def __str__(self) -> str:
        return f"{self.field}: {self.old} → {self.new}"


class AuthorizationCode(models.Model):
    """An authorization code received by the callback or by an `authorized` push. Both carry the same code,
    in either order, possibly twice: the row (keyed by a hash) is locked while the code is exchanged, so
    it is exchanged once. The code itself is kept, encrypted, only until it has been used."""

    code_hash = models.CharField(max_length=64)
    code = EncryptedTextField(blank=True, editable=False)
    # The platform whose callback or push brought the code: it is exchanged with that platform's token. A code
    # is keyed by platform too: the same code brought to another platform's callback (by mistake or on purpose)
    # is another row, whose refusal by WeChat changes nothing for the platform that issued it.
    component = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="+")
    authorizer_appid = models.CharField(max_length=64, blank=True)
    # Came in a verified push: only such codes are kept after a failed exchange and retried by the sweep.
    pushed = models.BooleanField(default=False)
    # sha256 of the session value of the first callback that brought the code (tenants.views): only that
    # browser session is shown the account's first API key.
    claim_hash = models.CharField(max_length=64, blank=True)
    tenant = models.ForeignKey(
        Tenant, verbose_name=_("merchant account"), null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["component", "code_hash"], name="authorization_code_once_per_platform"),
        ]

    def __str__(self) -> str:
        return f"authorization code {self.code_hash[:8]}… ({self.authorizer_appid or '?'})"


class TenantAPIKey(AbstractAPIKey):
    """A merchant's key for the REST API; hashed at rest by djangorestframework-api-key."""

    tenant = models.ForeignKey(
        Tenant, verbose_name=_("merchant account"), on_delete=models.CASCADE, related_name="api_keys"
    )
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    # Set when the authorization the key was issued under is revoked: from then on the key reads the
    # tenant's history only, until it expires (API_KEY_REVOKED_GRACE_DAYS), whatever happens next.
    history_only = models.BooleanField(_("history only"), default=False)

    class Meta(AbstractAPIKey.Meta):
        verbose_name = _("API key")  # type: ignore[assignment]  # the stubs type Meta names as str
        verbose_name_plural = _("API keys")  # type: ignore[assignment]


class EventType(models.TextChoices):
    """What a merchant can subscribe to with a webhook (webhooks.Endpoint.events)."""

    DRAFT_COUNT_CHANGED = "draft_count.changed", _("Draft count changed")
    TENANT_STATUS_CHANGED = "tenant.status_changed", _("Account status changed")
    TENANT_ELIGIBILITY_CHANGED = "tenant.eligibility_changed", _("Account eligibility changed")


# Sent only by the admin's "send test event" action, to one endpoint; not subscribable.
TEST_EVENT_TYPE = "webhook.test"


class OutboxEvent(models.Model):
    """Something that happened to a tenant and that its webhooks may want to hear: the outbox.

    A row is written in the same transaction as the change it describes (the sync's bulk write, a revocation,
    a re-authorization), so that a crash loses neither or both; the webhooks app fans it out to the subscribed
    endpoints later (`dispatched_at`). It lives here, below the webhooks app, so that tenant services can write
    it without importing upward. `id` is the Standard Webhooks `webhook-id`, the same across retries.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="outbox_events")
    type = models.CharField(_("event type"), max_length=64)
    payload = models.JSONField(_("data"), default=dict)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)
    dispatched_at = models.DateTimeField(_("dispatched at"), null=True, blank=True)

    class Meta:
        verbose_name = _("webhook event")
        verbose_name_plural = _("webhook events")
        ordering: ClassVar[list[str]] = ["-created_at"]
        indexes: ClassVar[list[models.Index]] = [
            # The dispatcher's queue: only undispatched rows are in it, so it stays small.
            models.Index(
                fields=["created_at"], name="outbox_undispatched_idx", condition=models.Q(dispatched_at__isnull=True)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"


class PushEndpoint(models.TextChoices):
    COMPONENT = "component", _("Authorization event URL")
    MESSAGE = "message", _("Message-and-event URL")


class PushOutcome(models.TextChoices):
    SUCCESS = "success", _("Answered success")
    EMPTY = "empty", _("Answered empty")
    REPLY = "reply", _("Passive reply")
    REJECTED = "rejected", _("Rejected")


class PushLog(models.Model):
    """One push to either WeChat URL, as received: the query and the encrypted envelope, never the decrypted
    contents. Keyed by component appid, so that several platforms can share the table. Pruned after
    PUSH_LOG_RETENTION_DAYS."""

    received_at = models.DateTimeField(_("received at"), db_index=True)
    endpoint = models.CharField(_("URL"), max_length=16, choices=PushEndpoint.choices)
    component_appid = models.CharField(_("component AppID"), max_length=64)
    authorizer_appid = models.CharField(_("authorizer AppID"), max_length=64, blank=True)
    # InfoType for the authorization event URL; MsgType, or "event:<Event>", for the message URL.
    kind = models.CharField(_("kind"), max_length=80, blank=True)
    signature_ok = models.BooleanField(_("signature verified"), null=True)
    decrypted = models.BooleanField(_("decrypted"), null=True)
    outcome = models.CharField(_("outcome"), max_length=16, choices=PushOutcome.choices)
    status_code = models.PositiveSmallIntegerField(_("HTTP status"))
    # The error code answered, for rejected pushes.
    error_code = models.CharField(_("error code"), max_length=32, blank=True)
    duration_ms = models.FloatField(_("duration (ms)"))
    query = models.JSONField(_("query string"), default=dict)
    body = models.TextField(_("body as received"), blank=True)
    body_truncated = models.BooleanField(_("body truncated"), default=False)
    replayed_at = models.DateTimeField(_("last replayed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("WeChat push")
        verbose_name_plural = _("WeChat pushes")
        ordering: ClassVar[list[str]] = ["-received_at", "-id"]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["endpoint", "kind", "received_at"], name="pushlog_kind_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_endpoint_display()} {self.kind or '?'} {self.received_at:%Y-%m-%d %H:%M:%S}"


class AuthorizerMessage(models.Model):
    """A fan's message or event from the message-and-event URL that the service acts on, once: WeChat sends a
    message again when it got no answer within 5 s, and the unique key turns the retry into a no-op
    (docs/wechat/message-url.md#retries-and-deduplication). The key is MsgId, or sender and CreateTime for
    events, which have none."""

    component_appid = models.CharField(max_length=64)
    authorizer_appid = models.CharField(max_length=64)
    dedup_key = models.CharField(max_length=200)
    from_user = models.CharField(max_length=128)
    received_at = models.DateTimeField(auto_now_add=True)
    # The release test's QUERY_AUTH_CODE code, encrypted, until the task has used it.
    query_auth_code = EncryptedTextField(blank=True, editable=False)
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(
                fields=["component_appid", "authorizer_appid", "dedup_key"], name="authorizer_message_once"
            ),
        ]

    def __str__(self) -> str:
        return f"message {self.dedup_key[:40]} ({self.authorizer_appid})"
