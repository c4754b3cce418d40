"""Authorized accounts (tenants): identity, granted permissions, authorizer tokens, and quick-read sync state."""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.utils.translation import gettext_lazy as _
from rest_framework_api_key.models import AbstractAPIKey

from wxplatform.encryption import EncryptedTextField

# Permission sets that grant the draft-box APIs (docs/wechat/permissions.md): either one suffices.
DRAFT_PERMISSION_SETS = frozenset({11, 100})


class AccountKind(models.TextChoices):
    SUBSCRIPTION = "subscription", _("Subscription account")
    SERVICE = "service", _("Service account")
    MINI_PROGRAM = "mini_program", _("Mini Program")
    OTHER = "other", _("Other account type")


class TenantStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    REVOKED = "revoked", _("Revoked")
    NEEDS_REAUTH = "needs_reauth", _("Needs re-authorization")


class Eligibility(models.TextChoices):
    ELIGIBLE = "eligible", _("Eligible")
    MISSING_PERMISSION = "missing_permission", _("Permission set 11 or 100 not granted")
    WRONG_KIND = "wrong_kind", _("Not a subscription or service account")
    REJECTED = "rejected", _("Rejected by WeChat")


class Tenant(models.Model):
    authorizer_appid = models.CharField(_("AppID"), max_length=64, unique=True)
    nickname = models.CharField(_("nickname"), max_length=255, blank=True)
    head_img = models.URLField(_("avatar"), max_length=500, blank=True)
    original_id = models.CharField(_("original ID"), max_length=64, blank=True, help_text="gh_…")
    alias = models.CharField(_("WeChat ID"), max_length=64, blank=True)
    principal_name = models.CharField(_("principal"), max_length=255, blank=True)
    account_kind = models.CharField(_("account kind"), max_length=20, choices=AccountKind.choices)
    service_type_id = models.IntegerField(_("service type"), null=True, blank=True)
    verify_type_id = models.IntegerField(_("verification type"), null=True, blank=True)
    func_ids = models.JSONField(_("granted permission sets"), default=list, blank=True)
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
    # draft/count quota bookkeeping (1000 calls per account per day, docs/wechat/quota.md).
    quota_day = models.DateField(null=True, blank=True, editable=False)
    quota_used = models.PositiveIntegerField(_("draft/count calls today"), default=0)
    paused_until = models.DateTimeField(_("paused until"), null=True, blank=True)

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
        ]

    def __str__(self) -> str:
        return self.nickname or self.authorizer_appid


class AuthorizationCode(models.Model):
    """An authorization code received by the callback or by an `authorized` push. Both carry the same code,
    in either order, possibly twice: the row (keyed by a hash) is locked while the code is exchanged, so
    it is exchanged once. The code itself is kept, encrypted, only until it has been used."""

    code_hash = models.CharField(max_length=64, unique=True)
    code = EncryptedTextField(blank=True, editable=False)
    authorizer_appid = models.CharField(max_length=64, blank=True)
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"authorization code {self.code_hash[:8]}… ({self.authorizer_appid or '?'})"


class TenantAPIKey(AbstractAPIKey):
    """A merchant's key for the REST API; hashed at rest by djangorestframework-api-key."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)

    class Meta(AbstractAPIKey.Meta):
        verbose_name = _("API key")  # type: ignore[assignment]  # the stubs type Meta names as str
        verbose_name_plural = _("API keys")  # type: ignore[assignment]


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
