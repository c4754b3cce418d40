"""The token authority's records: the keys the provider's other services authenticate with, and one row per
token asked for (who asked, for which account, when, and what they were answered)."""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.utils.translation import gettext_lazy as _
from rest_framework_api_key.models import AbstractAPIKey, APIKeyManager

from wxplatform.component.models import Platform


class ServiceKeyManager(APIKeyManager):
    def assign_key(self, obj: AbstractAPIKey) -> str:
        raw: str = super().assign_key(obj)
        # The library's primary key is "<prefix>.<hash>"; the console addresses rows (links, action checkboxes)
        # by primary key, which must not carry the hash: a plain integer is assigned on save instead.
        obj.id = None  # type: ignore[assignment]
        return raw


class ServiceKey(AbstractAPIKey):
    """A key of one of the provider's own services (`Authorization: Service-Key <key>`), hashed at rest by
    djangorestframework-api-key like the merchants' keys, but a different table: a merchant key is never a
    service key. `component` scopes it to one platform; empty: every platform."""

    id = models.BigAutoField(primary_key=True)  # type: ignore[assignment]  # the library's is a CharField
    objects: ClassVar[ServiceKeyManager] = ServiceKeyManager()

    component = models.ForeignKey(
        Platform,
        verbose_name=_("platform"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="service_keys",
        help_text=_("Empty: the key may fetch the tokens of every platform."),
    )
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    # The WeChat paths the key may call through the gateway, as patterns ("/cgi-bin/draft/*"); empty: none. A
    # key's token hand-outs are not limited by them.
    allowed_paths = models.JSONField(
        _("WeChat paths allowed through the gateway"),
        default=list,
        blank=True,
        help_text=_('One pattern per line, such as /cgi-bin/draft/* ("*" matches any characters). Empty: none.'),
    )

    class Meta(AbstractAPIKey.Meta):
        verbose_name = _("service key")  # type: ignore[assignment]  # the stubs type Meta names as str
        verbose_name_plural = _("service keys")  # type: ignore[assignment]


class HandoutKind(models.TextChoices):
    COMPONENT = "component", _("Component access token")
    AUTHORIZER = "authorizer", _("Authorizer access token")


class HandoutOutcome(models.TextChoices):
    ISSUED = "issued", _("Token handed out")
    NOT_FOUND = "not_found", _("Unknown platform or account")
    FORBIDDEN = "forbidden", _("Refused")
    UNAVAILABLE = "unavailable", _("No token available")


class TokenHandout(models.Model):
    """One request of an authenticated service for a token, and its answer. Never the token itself.
    Pruned after TOKEN_HANDOUT_RETENTION_DAYS."""

    key = models.ForeignKey(ServiceKey, verbose_name=_("service key"), on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(_("token"), max_length=16, choices=HandoutKind.choices)
    component_appid = models.CharField(_("component AppID"), max_length=64)
    authorizer_appid = models.CharField(_("authorizer AppID"), max_length=64, blank=True)
    outcome = models.CharField(_("outcome"), max_length=16, choices=HandoutOutcome.choices)
    # The error code answered, when the outcome is not "issued".
    error_code = models.CharField(_("error code"), max_length=48, blank=True)
    at = models.DateTimeField(_("at"), db_index=True)

    class Meta:
        verbose_name = _("token hand-out")
        verbose_name_plural = _("token hand-outs")
        ordering: ClassVar[list[str]] = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.component_appid} {self.authorizer_appid} {self.at:%Y-%m-%d %H:%M:%S}"


class GatewayUsage(models.Model):
    """Calls a service key made through the gateway, per day, platform, account and WeChat path: what the
    console shows and what the quota attribution counts as this provider's own use. Accounts are named by
    appid (empty for the platform's own APIs), so a row outlives a deleted tenant."""

    day = models.DateField(_("day"))
    key = models.ForeignKey(ServiceKey, verbose_name=_("service key"), on_delete=models.CASCADE, related_name="+")
    component_appid = models.CharField(_("component AppID"), max_length=64)
    authorizer_appid = models.CharField(_("authorizer AppID"), max_length=64, blank=True)
    path = models.CharField(_("WeChat path"), max_length=128)
    calls = models.PositiveIntegerField(_("calls"), default=0)
    # Answers with a non-zero errcode, a non-2xx status or no answer at all.
    failures = models.PositiveIntegerField(_("failed calls"), default=0)

    class Meta:
        verbose_name = _("gateway usage")
        verbose_name_plural = _("gateway usage")
        ordering: ClassVar[list[str]] = ["-day", "key", "authorizer_appid", "path"]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(
                fields=["day", "key", "component_appid", "authorizer_appid", "path"], name="gateway_usage_once_a_day"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.authorizer_appid or self.component_appid} {self.path}: {self.calls}"
