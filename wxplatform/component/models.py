"""The third-party platforms (components) this deployment runs: credentials, the verify ticket and the
component access token. Several platforms may share one deployment (docs/wechat/platforms.md)."""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.utils.translation import gettext_lazy as _

from wxplatform.core.encryption import EncryptedTextField


class Platform(models.Model):
    """One row per third-party platform (component appid). The database is the source of truth for the
    ticket and the token; refreshes lock this row (SELECT … FOR UPDATE) so that only one process refreshes at a
    time. The platform named by the WECHAT_COMPONENT_* settings is the default one; its secrets are copied here
    from the settings (wxplatform.component.services.default_component)."""

    component_appid = models.CharField(_("component AppID"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=100, blank=True)
    # The platform's own secrets, encrypted at rest like the authorizer tokens; never shown once saved.
    appsecret = EncryptedTextField(_("AppSecret"), blank=True)
    token = EncryptedTextField(_("message verification token"), blank=True)
    aes_key = EncryptedTextField(_("EncodingAESKey"), blank=True)
    # A platform switched off receives pushes (WeChat keeps sending them) but refreshes and syncs nothing.
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, null=True)
    verify_ticket = EncryptedTextField(_("component_verify_ticket"), blank=True, editable=False)
    ticket_received_at = models.DateTimeField(_("ticket received at"), null=True, blank=True)
    ticket_created_at = models.DateTimeField(_("ticket created at (WeChat)"), null=True, blank=True)
    access_token = EncryptedTextField(_("component access token"), blank=True, editable=False)
    access_token_expires_at = models.DateTimeField(_("component token expiry"), null=True, blank=True)
    token_version = models.PositiveBigIntegerField(default=0, editable=False)
    token_refreshed_at = models.DateTimeField(_("component token refreshed at"), null=True, blank=True)
    # The last failure to obtain a token (ticket missing, 61005/61006, configuration errors).
    problem_code = models.IntegerField(_("problem errcode"), null=True, blank=True)
    problem = models.CharField(_("problem"), max_length=255, blank=True)
    problem_at = models.DateTimeField(_("problem since"), null=True, blank=True)
    push_ticket_requested_at = models.DateTimeField(_("ticket push requested at"), null=True, blank=True)
    last_push_at = models.DateTimeField(_("last push received"), null=True, blank=True)
    last_push_info_type = models.CharField(_("last push type"), max_length=64, blank=True)

    class Meta:
        verbose_name = _("third-party platform")
        verbose_name_plural = _("third-party platforms")
        ordering: ClassVar[list[str]] = ["id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.component_appid})" if self.name else self.component_appid
