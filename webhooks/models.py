"""Merchant webhooks: endpoints, and the delivery of each outbox event (tenants.OutboxEvent) to each of them.

An event is fanned out once to the endpoints subscribed to its type (one Delivery per event and endpoint);
each Delivery is tried until the receiver answers 2xx or the retry window runs out, and every try is kept as
a DeliveryAttempt, so that the merchant and staff can see what the receiver answered and when.
"""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.db import models
from django.utils.translation import gettext_lazy as _

from tenants.models import OutboxEvent, Tenant
from wxplatform.core.encryption import EncryptedTextField


class Endpoint(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(
        Tenant, verbose_name=_("merchant account"), on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.URLField(_("URL"), max_length=2000)
    events = models.JSONField(_("events"), default=list, help_text=_("Event types sent to this URL."))
    # The Standard Webhooks signing secret ("whsec_" + base64), shown to the merchant once.
    secret = EncryptedTextField(_("signing secret"), editable=False)
    enabled = models.BooleanField(_("enabled"), default=True)
    disabled_reason = models.CharField(_("why disabled"), max_length=255, blank=True)
    disabled_at = models.DateTimeField(_("disabled at"), null=True, blank=True)
    # Start of the current run of failed attempts (None after a success): a day of nothing but failures
    # disables the endpoint.
    failing_since = models.DateTimeField(_("failing since"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")
        ordering: ClassVar[list[str]] = ["created_at"]

    def __str__(self) -> str:
        return self.url


class DeliveryState(models.TextChoices):
    PENDING = "pending", _("Pending")
    SUCCEEDED = "succeeded", _("Delivered")
    FAILED = "failed", _("Failed (gave up)")


class Delivery(models.Model):
    """One event for one endpoint, tried until it succeeds or the retry window is over."""

    event = models.ForeignKey(OutboxEvent, verbose_name=_("event"), on_delete=models.CASCADE, related_name="+")
    endpoint = models.ForeignKey(
        Endpoint, verbose_name=_("endpoint"), on_delete=models.CASCADE, related_name="deliveries"
    )
    tenant = models.ForeignKey(Tenant, verbose_name=_("merchant account"), on_delete=models.CASCADE, related_name="+")
    state = models.CharField(_("state"), max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    # When the next try may start; also the lease of a try under way (a worker that dies mid-try leaves the
    # delivery due again once it passes). None once delivered or given up.
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    last_attempt_at = models.DateTimeField(_("last attempt"), null=True, blank=True)
    last_status_code = models.IntegerField(_("last HTTP status"), null=True, blank=True)
    last_error = models.CharField(_("last error"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        ordering: ClassVar[list[str]] = ["-created_at", "-id"]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["event", "endpoint"], name="delivery_event_endpoint_unique"),
        ]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["next_attempt_at"], name="delivery_due_idx", condition=models.Q(state="pending")),
            models.Index(fields=["endpoint", "-created_at"], name="delivery_endpoint_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} → {self.endpoint_id}"


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_rows")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    at = models.DateTimeField(_("at"))
    status_code = models.IntegerField(_("HTTP status"), null=True, blank=True)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"))
    error = models.CharField(_("error"), max_length=255, blank=True)

    class Meta:
        verbose_name = _("delivery attempt")
        verbose_name_plural = _("delivery attempts")
        ordering: ClassVar[list[str]] = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.status_code or self.error}"
