"""Merchant API views, one per operation: authenticate (tenants.authentication), call a selector or service,
serialize. Every read answers from storage and never calls WeChat; a fresh fetch is asked for with
POST /api/v1/draft-count/sync and runs in a worker.

A tenant that revoked the authorization (or must re-authorize) keeps reading its profile and history with
its keys; the draft-count endpoints answer 403 with a precise code (see `unavailable_error`).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from drafts.models import SyncTrigger
from drafts.quota import QUOTA_TENANT_FIELDS, quota_attribution
from drafts.selectors import (
    DRAFT_COUNT_TENANT_FIELDS,
    DraftCountUnavailable,
    Unavailable,
    draft_count_blocker,
    draft_count_current,
    draft_snapshot_list,
    sync_job_get,
)
from drafts.services import draft_count_request_sync
from tenants.authentication import request_tenant
from tenants.models import Tenant
from tenants.selectors import DraftRefusal, draft_refusal, eligibility_reason, reauthorize_url
from wxplatform.api.conditional import conditional_response
from wxplatform.api.errors import APIError, InvalidParameter, error_responses
from wxplatform.api.pagination import DatetimeCursorPagination
from wxplatform.api.serializers import (
    DraftCountSerializer,
    DraftSnapshotPageSerializer,
    DraftSnapshotSerializer,
    HistoryQuerySerializer,
    QuotaSerializer,
    SyncJobSerializer,
    SyncRequestSerializer,
    TenantSerializer,
)

# --- Errors ------------------------------------------------------------------------------------------


def unavailable_error(reason: Unavailable, tenant: Tenant) -> APIError:
    if reason == Unavailable.TENANT_REVOKED:
        message = _("The account revoked its authorization of this platform; authorize it again to resume.")
        return APIError(status_code=status.HTTP_403_FORBIDDEN, code=reason.value, message=message)
    if reason == Unavailable.TENANT_NEEDS_REAUTHORIZATION:
        message = _("The account's authorization is no longer valid; the account must authorize this platform again.")
        return APIError(status_code=status.HTTP_403_FORBIDDEN, code=reason.value, message=message)
    if reason == Unavailable.TENANT_INELIGIBLE:
        message = _("This account has no draft count: %(reason)s") % {"reason": eligibility_reason(tenant)}
        # 61007 or set 11 missing: the merchant can fix it by authorizing again; 48001 and wrong kinds they cannot
        # here, and the message says what the account lacks instead of "try again".
        extra = {"authorize_url": reauthorize_url(tenant)} if draft_refusal(tenant) == DraftRefusal.NOT_GRANTED else {}
        return APIError(status_code=status.HTTP_403_FORBIDDEN, code=reason.value, message=message, **extra)
    message = _("No draft count has been fetched yet; request one with POST /api/v1/draft-count/sync.")
    return APIError(status_code=status.HTTP_404_NOT_FOUND, code=reason.value, message=message)


_NOT_MODIFIED = OpenApiResponse(
    description=gettext_lazy("Not modified: the copy named by If-None-Match / If-Modified-Since is current.")
)
_CONDITIONAL_HEADERS = [
    OpenApiParameter(
        "If-None-Match", OpenApiTypes.STR, OpenApiParameter.HEADER, description=gettext_lazy("An ETag received before.")
    ),
    OpenApiParameter(
        "If-Modified-Since", OpenApiTypes.STR, OpenApiParameter.HEADER, description=gettext_lazy("An HTTP date.")
    ),
    OpenApiParameter("ETag", OpenApiTypes.STR, OpenApiParameter.HEADER, response=[200, 304]),
]
_RETRY_AFTER = OpenApiParameter(
    "Retry-After", OpenApiTypes.INT, OpenApiParameter.HEADER, response=[429, 503], description=gettext_lazy("Seconds.")
)
_LAST_MODIFIED = OpenApiParameter("Last-Modified", OpenApiTypes.STR, OpenApiParameter.HEADER, response=[200, 304])
_TENANT_STATE_ERRORS = gettext_lazy(
    "`tenant_revoked`: the account revoked the authorization; `tenant_needs_reauthorization`: the account "
    "must authorize again; `tenant_ineligible`: the message says why. When this platform was not granted "
    "permission set 11 (WeChat 61007) `authorize_url` is the page that grants it again; when the account itself "
    "may not use the draft APIs (WeChat 48001: not an Official Account or Service Account, or its verification "
    "lapsed) there is none: authorizing again does not help."
)


def _query(serializer_class: type[HistoryQuerySerializer], request: Request, *, also: frozenset[str]) -> dict[str, Any]:
    """Validated query parameters; the first invalid or unknown one is named in a 400. Unknown ones are
    refused so that a misspelt filter (`sinse=`) is not silently ignored."""
    serializer = serializer_class(data=request.query_params)
    known = set(serializer.fields) | also | {"format"}  # DRF's own ?format= is handled before the view
    unknown = sorted(name for name in request.query_params if name not in known)
    if unknown:
        raise InvalidParameter(unknown[0], _("%(name)s: unknown query parameter.") % {"name": unknown[0]})
    # DRF would read `since=` as "no filter"; an empty value is more likely a client bug than a wish.
    blank = sorted(name for name, values in request.query_params.lists() if any(not v.strip() for v in values))
    if blank:
        raise InvalidParameter(blank[0], _("%(name)s: must not be empty.") % {"name": blank[0]})
    if not serializer.is_valid():
        parameter, errors = next(iter(serializer.errors.items()))
        raise InvalidParameter(parameter, _("%(name)s: %(error)s") % {"name": parameter, "error": errors[0]})
    return dict(serializer.validated_data)


# --- Views -------------------------------------------------------------------------------------------


class MerchantAPIView(APIView):
    """What every merchant endpoint shares, so that behaviour and schema agree: OPTIONS is not offered (no
    metadata, the OpenAPI schema describes each operation), so it is a 405 that the Allow header does not
    list either; and a query parameter given twice is a 400 naming it, never one of them picked silently."""

    http_method_names = ["get", "post", "head"]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        for name, values in request.query_params.lists():
            if len(values) > 1:
                raise InvalidParameter(name, _("%(name)s: given more than once.") % {"name": name})


class TenantView(MerchantAPIView):
    # What TenantSerializer and Last-Modified read; authentication loads only these (tenants.authentication).
    tenant_fields = (
        "authorizer_appid",
        "nickname",
        "account_kind",
        "status",
        "func_ids",
        "eligibility",
        "eligibility_detail",
        "authorized_at",
        "revoked_at",
        "updated_at",
    )

    @extend_schema(
        operation_id="tenant_retrieve",
        summary=gettext_lazy("The calling account"),
        description=gettext_lazy(
            "The account the API key belongs to: identity, status, permission sets and eligibility."
        ),
        tags=["account"],
        parameters=[*_CONDITIONAL_HEADERS, _LAST_MODIFIED, _RETRY_AFTER],
        responses={200: TenantSerializer, 304: _NOT_MODIFIED, **error_responses()},
    )
    def get(self, request: Request) -> Response:
        tenant = request_tenant(request)
        return conditional_response(request, TenantSerializer(tenant).data, last_modified=tenant.updated_at)


class DraftCountView(MerchantAPIView):
    # Authentication loads only these tenant fields (tenants.authentication).
    tenant_fields = DRAFT_COUNT_TENANT_FIELDS

    @extend_schema(
        operation_id="draft_count_retrieve",
        summary=gettext_lazy("The stored draft count"),
        description=gettext_lazy("The draft-box count as last fetched, and whether it is stale. Never calls WeChat."),
        tags=["draft count"],
        parameters=[*_CONDITIONAL_HEADERS, _LAST_MODIFIED, _RETRY_AFTER],
        responses={
            200: DraftCountSerializer,
            304: _NOT_MODIFIED,
            **error_responses(
                {
                    403: _TENANT_STATE_ERRORS,
                    404: gettext_lazy("`draft_count_not_fetched`: request a sync first."),
                }
            ),
        },
    )
    def get(self, request: Request) -> Response:
        tenant = request_tenant(request)
        try:
            reading = draft_count_current(tenant=tenant)
        except DraftCountUnavailable as exc:
            raise unavailable_error(exc.reason, tenant) from exc
        return conditional_response(request, DraftCountSerializer(reading).data, last_modified=reading.changed_at)


class QuotaView(MerchantAPIView):
    # Authentication loads only these tenant fields (tenants.authentication); the platform's appid is one more.
    tenant_fields = QUOTA_TENANT_FIELDS

    @extend_schema(
        operation_id="quota_retrieve",
        summary=gettext_lazy("The account's draft/count quota and who used it"),
        description=gettext_lazy(
            "The account's daily draft/count quota as WeChat last counted it (openapi/quota/get), split between "
            "this platform and others (other third parties, the merchant's own tools), who share it. Read from "
            "storage, never from WeChat: `read_at` says how fresh WeChat's figures are."
        ),
        tags=["draft count"],
        parameters=[*_CONDITIONAL_HEADERS, _RETRY_AFTER],
        responses={200: QuotaSerializer, 304: _NOT_MODIFIED, **error_responses()},
    )
    def get(self, request: Request) -> Response:
        attribution = quota_attribution(tenant=request_tenant(request))
        # No Last-Modified: this platform's own count moves between readings.
        return conditional_response(request, QuotaSerializer(attribution).data)


class DraftCountSyncView(MerchantAPIView):
    @extend_schema(
        operation_id="draft_count_sync_create",
        summary=gettext_lazy("Ask for a fresh draft count"),
        description=gettext_lazy(
            "Starts a fetch from WeChat in the background, or joins the one already open. Poll the job URL "
            "(Location header, `job.url`) until `state` is `succeeded` or `failed`. Within a minute of the last "
            "fetch, or when the account's quota budget is spent, the job is answered from storage at once."
        ),
        tags=["draft count"],
        request=None,
        parameters=[
            OpenApiParameter("Location", OpenApiTypes.URI, OpenApiParameter.HEADER, response=[202]),
            _RETRY_AFTER,
        ],
        responses={202: SyncRequestSerializer, **error_responses({403: _TENANT_STATE_ERRORS})},
    )
    def post(self, request: Request) -> Response:
        tenant = request_tenant(request)
        blocker = draft_count_blocker(tenant=tenant)
        if blocker is not None:
            raise unavailable_error(blocker, tenant)
        result = draft_count_request_sync(tenant=tenant, trigger=SyncTrigger.API)
        body = {"job": result.job, "coalesced": not result.created, "served_from_storage": result.served_from_storage}
        data = SyncRequestSerializer(body, context={"request": request}).data
        return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": data["job"]["url"]})


class DraftCountSyncJobView(MerchantAPIView):
    @extend_schema(
        operation_id="draft_count_sync_job_retrieve",
        summary=gettext_lazy("A sync job's state and result"),
        description=gettext_lazy(
            "Poll it until `state` is `succeeded` (with `total_count`) or `failed` (with `error`)."
        ),
        tags=["draft count"],
        parameters=[*_CONDITIONAL_HEADERS, _LAST_MODIFIED, _RETRY_AFTER],
        responses={
            200: SyncJobSerializer,
            304: _NOT_MODIFIED,
            **error_responses({404: gettext_lazy("`not_found`: no such job for this account.")}),
        },
    )
    def get(self, request: Request, job_id: uuid.UUID) -> Response:
        tenant = request_tenant(request)
        job = sync_job_get(tenant=tenant, job_id=job_id)
        if job is None:
            raise exceptions.NotFound(_("No such sync job."))
        # Imported here for the same reason as in DraftCountSyncView.post.
        from drafts.services import draft_count_job_poll

        job = draft_count_job_poll(job=job)
        data = SyncJobSerializer(job, context={"request": request}).data
        return conditional_response(request, data, last_modified=job.finished_at or job.started_at or job.requested_at)


class HistoryPagination(DatetimeCursorPagination):
    """Newest first; a cursor stays valid while snapshots are added, since (tenant, fetched_at) is unique."""

    ordering = "-fetched_at"
    page_size = 100


class DraftCountHistoryView(MerchantAPIView):
    # The one endpoint a key of a revoked authorization may still read (tenants.authentication.HasTenant).
    history_only_keys_allowed = True

    @extend_schema(
        operation_id="draft_count_history_list",
        summary=gettext_lazy("Draft count history"),
        description=gettext_lazy(
            "Snapshots, newest first: one per fetch that changed the count, plus a periodic heartbeat, so an "
            "unchanged stretch lies between two snapshots. Follow `next` for older ones. Naive datetimes are "
            "read in the server's time zone; send an offset."
        ),
        tags=["draft count"],
        parameters=[
            HistoryQuerySerializer,
            OpenApiParameter(
                "cursor", OpenApiTypes.STR, OpenApiParameter.QUERY, description=gettext_lazy("From `next`/`previous`.")
            ),
            *_CONDITIONAL_HEADERS,
            _RETRY_AFTER,
        ],
        responses={
            200: DraftSnapshotPageSerializer,
            304: _NOT_MODIFIED,
            **error_responses({400: gettext_lazy("`invalid_parameter`: `parameter` names the query parameter.")}),
        },
    )
    def get(self, request: Request) -> Response:
        tenant = request_tenant(request)
        query = _query(HistoryQuerySerializer, request, also=frozenset({HistoryPagination.cursor_query_param}))
        snapshots = draft_snapshot_list(tenant=tenant, since=query.get("since"), until=query.get("until"))
        paginator = HistoryPagination()
        page = paginator.paginate_queryset(snapshots, request, view=self) or []
        data = {
            "next": paginator.get_next_link(),
            "previous": paginator.get_previous_link(),
            "results": DraftSnapshotSerializer(page, many=True).data,
        }
        return conditional_response(request, data)
