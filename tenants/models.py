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
    # Came in a verified push: only such codes are kept after a failed exchange and retried by the sweep.
    pushed = models.BooleanField(default=False)
    # sha256 of the session value of the first callback that brought the code (tenants.views): only that
    # browser session is shown the account's first API key.
    claim_hash = models.CharField(max_length=64, blank=True)
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"authorization code {self.code_hash[:8]}… ({self.authorizer_appid or '?'})"


class TenantAPIKey(AbstractAPIKey):
    """A merchant's key for the REST API; hashed at rest by djangorestframework-api-key."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    # Set when the authorization the key was issued under is revoked: from then on the key reads the
    # tenant's history only, until it expires (API_KEY_REVOKED_GRACE_DAYS), whatever happens next.
    history_only = models.BooleanField(_("history only"), default=False)

    class Meta(AbstractAPIKey.Meta):
        verbose_name = _("API key")  # type: ignore[assignment]  # the stubs type Meta names as str
        verbose_name_plural = _("API keys")  # type: ignore[assignment]
