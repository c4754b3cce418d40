"""Authorized accounts (tenants): identity, granted permissions, authorizer tokens, and quick-read sync state."""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.db import models
from django.utils import timezone
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
