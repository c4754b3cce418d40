"""Explicit request and response shapes of the merchant API (they are also its OpenAPI schema)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse

from drafts.models import AttemptOutcome, JobState, SnapshotReason, SyncJob, SyncTrigger
from tenants.models import AccountKind, Eligibility, Tenant, TenantStatus
from tenants.selectors import eligibility_reason
from wxplatform.core.observability import redact
from wxplatform.core.times import machine_time

# Largest page of history a client may ask for (page_size).
MAX_PAGE_SIZE = 500
# What the schema shows for every time (docs/reference.md "Times").
TIME_EXAMPLE = "2026-01-01T08:30:00.000000Z"


@extend_schema_field({"type": "string", "format": "date-time", "example": TIME_EXAMPLE})
class UTCDateTimeField(serializers.DateTimeField):
    """Every time the API answers, in the service's one form for machines (wxplatform.core.times). DRF's own
    field writes the active time zone's offset (+08:00 with TIME_ZONE Asia/Shanghai) and drops a zero
    fraction; DATETIME_FORMAT cannot change the zone, which is why this field exists."""

    def to_representation(self, value: Any) -> str:
        return machine_time(value)


class EligibilitySerializer(serializers.Serializer[Tenant]):
    status = serializers.ChoiceField(choices=Eligibility.choices, source="eligibility")
    reason = serializers.SerializerMethodField(help_text=_("Why the account is not eligible; null when it is."))

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_reason(self, tenant: Tenant) -> str | None:
        if tenant.eligibility == Eligibility.ELIGIBLE:
            return None
        return eligibility_reason(tenant)


class TenantSerializer(serializers.Serializer[Tenant]):
    appid = serializers.CharField(source="authorizer_appid")
    nickname = serializers.CharField()
    account_kind = serializers.ChoiceField(choices=AccountKind.choices)
    status = serializers.ChoiceField(choices=TenantStatus.choices)
    permission_sets = serializers.ListField(
        child=serializers.IntegerField(), source="func_ids", help_text=_("Permission sets (权限集) granted.")
    )
    eligibility = EligibilitySerializer(source="*")
    authorized_at = UTCDateTimeField(allow_null=True)
    revoked_at = UTCDateTimeField(allow_null=True)


class DraftCountSerializer(serializers.Serializer[Any]):
    total_count = serializers.IntegerField(help_text=_("Drafts in the account's draft box when last fetched."))
    fetched_at = UTCDateTimeField(help_text=_("When the count was last fetched from WeChat."))
    stale = serializers.BooleanField(help_text=_("The count is older than the platform's freshness target."))
    stale_at = UTCDateTimeField(help_text=_("When the count becomes (or became) stale."))
    last_attempt_at = UTCDateTimeField(allow_null=True, help_text=_("Last fetch attempt, successful or not."))
    last_error_code = serializers.IntegerField(allow_null=True, help_text=_("WeChat errcode of the last failure."))
    last_error_at = UTCDateTimeField(allow_null=True)
    sync_paused_until = UTCDateTimeField(
        source="paused_until", allow_null=True, help_text=_("Fetches are paused until then (daily quota spent).")
    )


class QuotaSerializer(serializers.Serializer[Any]):
    api = serializers.CharField(help_text=_("The WeChat API the quota is of: /cgi-bin/draft/count."))
    daily_limit = serializers.IntegerField(
        allow_null=True, help_text=_("The account's own daily limit for the API, as WeChat last reported it.")
    )
    used = serializers.IntegerField(
        allow_null=True,
        help_text=_("Calls WeChat counted today by every caller, at read_at; null until read this quota day."),
    )
    remain = serializers.IntegerField(allow_null=True, help_text=_("Calls left today, at read_at; null as `used`."))
    used_by_us = serializers.IntegerField(
        help_text=_(
            "This platform's calls of the quota day: the draft-count sync's up to read_at and the provider's "
            "services' through its gateway. Without a reading of the day, today's so far."
        )
    )
    used_by_others = serializers.IntegerField(
        allow_null=True,
        help_text=_("`used` minus `used_by_us`: other third parties and the merchant's own tools; null as `used`."),
    )
    read_at = UTCDateTimeField(
        allow_null=True,
        help_text=_(
            "When WeChat's figures were read (openapi/quota/get); null if never. Quota days start at midnight "
            "China time: a reading of an earlier day leaves `used`, `remain` and `used_by_others` null."
        ),
    )


class DraftSnapshotSerializer(serializers.Serializer[Any]):
    total_count = serializers.IntegerField()
    fetched_at = UTCDateTimeField()
    reason = serializers.ChoiceField(choices=SnapshotReason.choices)


class DraftSnapshotPageSerializer(serializers.Serializer[Any]):
    next = serializers.URLField(allow_null=True, help_text=_("The next (older) page; null on the last page."))
    previous = serializers.URLField(allow_null=True)
    results = DraftSnapshotSerializer(many=True)


class HistoryQuerySerializer(serializers.Serializer[Any]):
    since = serializers.DateTimeField(required=False, help_text=_("Snapshots fetched at or after (ISO 8601)."))
    until = serializers.DateTimeField(required=False, help_text=_("Snapshots fetched before (ISO 8601)."))
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=MAX_PAGE_SIZE)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        since, until = attrs.get("since"), attrs.get("until")
        if since is not None and until is not None and until <= since:
            raise serializers.ValidationError({"until": _("Must be later than since.")})
        return attrs


class SyncJobErrorSerializer(serializers.Serializer[SyncJob]):
    errcode = serializers.IntegerField(allow_null=True, help_text=_("WeChat errcode, if WeChat answered one."))
    message = serializers.CharField()


class SyncJobSerializer(serializers.Serializer[SyncJob]):
    id = serializers.UUIDField()
    url = serializers.SerializerMethodField(help_text=_("This job's URL: poll it until state is final."))
    state = serializers.ChoiceField(choices=JobState.choices)
    trigger = serializers.ChoiceField(choices=SyncTrigger.choices)
    requested_at = UTCDateTimeField()
    queued_at = UTCDateTimeField(
        allow_null=True,
        help_text=_(
            "When the job was last handed to the workers' queue; null while it could not be (it is "
            "retried within a minute, or when you poll)."
        ),
    )
    started_at = UTCDateTimeField(allow_null=True)
    finished_at = UTCDateTimeField(allow_null=True)
    outcome = serializers.SerializerMethodField()
    total_count = serializers.IntegerField(allow_null=True, help_text=_("The fetched count, once succeeded."))
    error = serializers.SerializerMethodField()

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, job: SyncJob) -> str:
        return reverse("api:draft-count-sync-job", kwargs={"job_id": job.pk}, request=self.context.get("request"))

    @extend_schema_field(serializers.ChoiceField(choices=AttemptOutcome.choices, allow_null=True))
    def get_outcome(self, job: SyncJob) -> str | None:
        return job.outcome or None

    @extend_schema_field(SyncJobErrorSerializer(allow_null=True))
    def get_error(self, job: SyncJob) -> dict[str, Any] | None:
        if job.state != JobState.FAILED:
            return None
        # The message may quote WeChat's errmsg; nothing resembling a credential leaves the platform. A job
        # that WeChat was not asked about says why instead.
        message = redact(job.message) if job.message else job.get_skip_reason_display()
        return {"errcode": job.errcode, "message": message}


class SyncRequestSerializer(serializers.Serializer[Any]):
    job = SyncJobSerializer()
    coalesced = serializers.BooleanField(help_text=_("An open job already existed; this request joined it."))
    served_from_storage = serializers.BooleanField(
        help_text=_("Answered from the stored count (fetched very recently, or the quota budget is spent).")
    )
