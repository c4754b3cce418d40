"""/api/v1/webhooks: the merchant's own webhook endpoints and their deliveries (the webhooks app does the work).

Same keys, throttle and error shape as the rest of the API; another account's endpoint is a 404. The signing
secret is in the answer to POST and to rotate-secret only: it is stored encrypted and never shown again.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.utils.text import format_lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tenants.authentication import request_tenant
from tenants.models import EventType
from webhooks.models import DeliveryState, Endpoint
from webhooks.selectors import delivery_list, endpoint_get, endpoint_list
from webhooks.services import (
    InvalidEndpoint,
    endpoint_create,
    endpoint_delete,
    endpoint_rotate_secret,
    endpoint_update,
)
from wxplatform.api.errors import APIError, InvalidParameter, error_responses
from wxplatform.api.pagination import IdCursorPagination
from wxplatform.api.serializers import MAX_PAGE_SIZE, UTCDateTimeField

_EVENTS_HELP = format_lazy(
    gettext_lazy("Event types to receive: {types}."), types=", ".join(f"`{t}`" for t in EventType.values)
)


# --- Shapes ------------------------------------------------------------------------------------------


class WebhookSerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    url = serializers.CharField()
    events = serializers.ListField(child=serializers.ChoiceField(choices=EventType.choices))
    enabled = serializers.BooleanField(
        help_text=gettext_lazy(
            "False once disabled, by you or after a day of failed deliveries; while false, new events are "
            "dropped for this webhook."
        )
    )
    disabled_reason = serializers.SerializerMethodField(
        help_text=gettext_lazy("Why it is disabled; null while enabled.")
    )
    disabled_at = UTCDateTimeField(allow_null=True)
    created_at = UTCDateTimeField()
    updated_at = UTCDateTimeField()

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_disabled_reason(self, endpoint: Endpoint) -> str | None:
        return None if endpoint.enabled else endpoint.disabled_reason


class WebhookCreatedSerializer(WebhookSerializer):
    secret = serializers.CharField(help_text=gettext_lazy("The signing secret (`whsec_…`), shown this once."))


class WebhookSecretSerializer(serializers.Serializer[Any]):
    secret = serializers.CharField(help_text=gettext_lazy("The new signing secret (`whsec_…`), shown this once."))


class WebhookCreateSerializer(serializers.Serializer[Any]):
    url = serializers.CharField(max_length=2000, help_text=gettext_lazy("https URL on a public address."))
    events = serializers.ListField(child=serializers.CharField(max_length=64), max_length=10, help_text=_EVENTS_HELP)


class WebhookUpdateSerializer(serializers.Serializer[Any]):
    url = serializers.CharField(max_length=2000, required=False)
    events = serializers.ListField(
        child=serializers.CharField(max_length=64), max_length=10, required=False, help_text=_EVENTS_HELP
    )
    enabled = serializers.BooleanField(required=False, help_text=gettext_lazy("true re-enables a disabled endpoint."))


class DeliveryAttemptSerializer(serializers.Serializer[Any]):
    at = UTCDateTimeField(help_text=gettext_lazy("When the try started."))
    status_code = serializers.IntegerField(
        allow_null=True, help_text=gettext_lazy("Your HTTP status; null if none came.")
    )
    duration_ms = serializers.IntegerField()
    error = serializers.CharField(
        help_text=gettext_lazy("Why the try failed without a status (timeout, refused address…).")
    )


class DeliverySerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    event_id = serializers.UUIDField(help_text=gettext_lazy("The webhook-id header: the same on every try."))
    event_type = serializers.CharField(source="event.type")
    event_created_at = UTCDateTimeField(source="event.created_at")
    state = serializers.ChoiceField(choices=DeliveryState.choices)
    next_attempt_at = UTCDateTimeField(allow_null=True, help_text=gettext_lazy("The next retry; null once final."))
    attempts = DeliveryAttemptSerializer(many=True, source="attempt_rows.all")


class DeliveryPageSerializer(serializers.Serializer[Any]):
    next = serializers.URLField(
        allow_null=True, help_text=gettext_lazy("The next (older) page; null on the last page.")
    )
    previous = serializers.URLField(allow_null=True)
    results = DeliverySerializer(many=True)


# --- Helpers -----------------------------------------------------------------------------------------


_INVALID = gettext_lazy(
    "`invalid_request` (a field missing or of the wrong type), `invalid_url` (not https, or a private, loopback, "
    "link-local or metadata address), `invalid_events`, `too_many_webhooks`; the message names the problem."
)
_NOT_FOUND = gettext_lazy("`not_found`: no such webhook for this account.")


def _body(serializer_class: type[serializers.Serializer[Any]], request: Request) -> dict[str, Any]:
    """The validated JSON body; unknown fields are refused, so that a misspelt one is not silently ignored."""
    if not isinstance(request.data, dict):
        raise APIError(status_code=400, code="invalid_request", message=_("The body must be a JSON object."))
    serializer = serializer_class(data=request.data)
    unknown = sorted(set(request.data) - set(serializer.fields))
    if unknown:
        message = _("%(name)s: unknown field.") % {"name": unknown[0]}
        raise APIError(status_code=400, code="invalid_request", message=message)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _invalid(exc: InvalidEndpoint) -> APIError:
    return APIError(status_code=status.HTTP_400_BAD_REQUEST, code=exc.code, message=f"{exc.field}: {exc.message}")


def _endpoint(request: Request, webhook_id: uuid.UUID) -> Endpoint:
    endpoint = endpoint_get(tenant_id=request_tenant(request).pk, endpoint_id=webhook_id)
    if endpoint is None:
        raise exceptions.NotFound(_("No such webhook."))
    return endpoint


# --- Views -------------------------------------------------------------------------------------------


class WebhookListView(APIView):
    tenant_fields = ("authorizer_appid",)

    @extend_schema(
        operation_id="webhooks_list",
        summary=gettext_lazy("Your webhooks"),
        tags=["webhooks"],
        responses={200: WebhookSerializer(many=True), **error_responses()},
    )
    def get(self, request: Request) -> Response:
        endpoints = endpoint_list(tenant_id=request_tenant(request).pk)
        return Response(WebhookSerializer(endpoints, many=True).data)

    @extend_schema(
        operation_id="webhooks_create",
        summary=gettext_lazy("Add a webhook"),
        description=gettext_lazy(
            "Events are POSTed to `url` as Standard Webhooks: a JSON body `{id, type, created_at, data}` and the "
            "headers `webhook-id` (the same on every retry: deduplicate on it), `webhook-timestamp` and "
            "`webhook-signature` (`v1,<base64 HMAC-SHA256>`), which any Standard Webhooks library verifies with "
            "the `secret` returned here, once. Answer 2xx within the timeout; anything else is retried with "
            "exponential backoff for about a day. An endpoint that fails every delivery for a day is disabled."
        ),
        tags=["webhooks"],
        request=WebhookCreateSerializer,
        responses={201: WebhookCreatedSerializer, **error_responses({400: _INVALID})},
    )
    def post(self, request: Request) -> Response:
        body = _body(WebhookCreateSerializer, request)
        try:
            endpoint, secret = endpoint_create(tenant=request_tenant(request), url=body["url"], events=body["events"])
        except InvalidEndpoint as exc:
            raise _invalid(exc) from exc
        data = {**WebhookSerializer(endpoint).data, "secret": secret}
        return Response(data, status=status.HTTP_201_CREATED)


class WebhookDetailView(APIView):
    tenant_fields = ("authorizer_appid",)

    @extend_schema(
        operation_id="webhooks_retrieve",
        summary=gettext_lazy("A webhook"),
        tags=["webhooks"],
        responses={200: WebhookSerializer, **error_responses({404: _NOT_FOUND})},
    )
    def get(self, request: Request, webhook_id: uuid.UUID) -> Response:
        return Response(WebhookSerializer(_endpoint(request, webhook_id)).data)

    @extend_schema(
        operation_id="webhooks_partial_update",
        summary=gettext_lazy("Change a webhook"),
        description=gettext_lazy(
            "Change its URL or events, disable it, or re-enable it: deliveries pending when it was disabled resume "
            "(until their event is a day old). Events raised while it is disabled are dropped, not kept for later: "
            "after re-enabling, read the current state once (`GET /api/v1/draft-count`, `GET /api/v1/tenant`)."
        ),
        tags=["webhooks"],
        request=WebhookUpdateSerializer,
        responses={200: WebhookSerializer, **error_responses({400: _INVALID, 404: _NOT_FOUND})},
    )
    def patch(self, request: Request, webhook_id: uuid.UUID) -> Response:
        endpoint = _endpoint(request, webhook_id)
        body = _body(WebhookUpdateSerializer, request)
        try:
            endpoint = endpoint_update(
                endpoint=endpoint, url=body.get("url"), events=body.get("events"), enabled=body.get("enabled")
            )
        except InvalidEndpoint as exc:
            raise _invalid(exc) from exc
        return Response(WebhookSerializer(endpoint).data)

    @extend_schema(
        operation_id="webhooks_destroy",
        summary=gettext_lazy("Delete a webhook"),
        description=gettext_lazy("Deletes it with its delivery history; nothing more is sent to it."),
        tags=["webhooks"],
        responses={204: OpenApiResponse(description=gettext_lazy("Deleted.")), **error_responses({404: _NOT_FOUND})},
    )
    def delete(self, request: Request, webhook_id: uuid.UUID) -> Response:
        endpoint_delete(endpoint=_endpoint(request, webhook_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookRotateSecretView(APIView):
    tenant_fields = ("authorizer_appid",)

    @extend_schema(
        operation_id="webhooks_rotate_secret",
        summary=gettext_lazy("Replace a webhook's signing secret"),
        description=gettext_lazy("Every try from now on is signed with the new secret, returned here once."),
        tags=["webhooks"],
        request=None,
        responses={200: WebhookSecretSerializer, **error_responses({404: _NOT_FOUND})},
    )
    def post(self, request: Request, webhook_id: uuid.UUID) -> Response:
        secret = endpoint_rotate_secret(endpoint=_endpoint(request, webhook_id))
        return Response({"secret": secret})


class DeliveryPagination(IdCursorPagination):
    """Newest first by id, which only grows, so a cursor stays valid while deliveries are added."""

    ordering = "-id"
    page_size = 50


class WebhookDeliveriesView(APIView):
    tenant_fields = ("authorizer_appid",)

    @extend_schema(
        operation_id="webhooks_deliveries_list",
        summary=gettext_lazy("A webhook's deliveries"),
        description=gettext_lazy(
            "Newest first: each event sent to this webhook, its tries (time, status, duration) and the next retry."
        ),
        tags=["webhooks"],
        parameters=[
            OpenApiParameter(
                "cursor", OpenApiTypes.STR, OpenApiParameter.QUERY, description=gettext_lazy("From `next`/`previous`.")
            ),
            OpenApiParameter(
                "page_size",
                OpenApiTypes.INT,
                OpenApiParameter.QUERY,
                description=format_lazy(gettext_lazy("1 to {max}."), max=MAX_PAGE_SIZE),
            ),
        ],
        responses={
            200: DeliveryPageSerializer,
            **error_responses(
                {
                    400: gettext_lazy("`invalid_parameter`: `parameter` names the query parameter."),
                    404: _NOT_FOUND,
                }
            ),
        },
    )
    def get(self, request: Request, webhook_id: uuid.UUID) -> Response:
        endpoint = _endpoint(request, webhook_id)
        unknown = sorted(set(request.query_params) - {"cursor", "page_size", "format"})
        if unknown:
            raise InvalidParameter(unknown[0], _("%(name)s: unknown query parameter.") % {"name": unknown[0]})
        size = request.query_params.get("page_size")
        if size is not None and not (size.isdigit() and 1 <= int(size) <= MAX_PAGE_SIZE):
            message = _("page_size: must be a whole number from 1 to %(max)s.") % {"max": MAX_PAGE_SIZE}
            raise InvalidParameter("page_size", message)
        paginator = DeliveryPagination()
        page = paginator.paginate_queryset(delivery_list(endpoint=endpoint), request, view=self) or []
        data = {
            "next": paginator.get_next_link(),
            "previous": paginator.get_previous_link(),
            "results": DeliverySerializer(page, many=True).data,
        }
        return Response(data)
