"""The merchant API's one error shape: `{"error": {"code": "...", "message": "...", ...}}`.

Every error under /api/ (and /internal/, the token authority) has it: DRF exceptions go through
`api_exception_handler`; Django's own 400, 403, 404 and 500 pages (a URL that matches no view, an unhandled
exception) go through the handler* views, which answer JSON for those paths and the usual HTML pages elsewhere.
Clients branch on `code`, which is stable; `message` is for people and follows Accept-Language.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from wxplatform.core.observability import request_id_var

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"
# The token authority's endpoints (authority.py beside this module) share the error shape.
API_PREFIXES = (API_PREFIX, "/internal/")
# WeChat's two push URLs (tenants.urls) answer their refusals in the error shape too; so do Django's own errors
# there (a NUL byte in the path, an unknown path under them), which a person never reads as a page.
PUSH_PREFIXES = ("/wechat/component/", "/wechat/components/", "/wechat/authorizers/")
# Seconds a client is asked to wait when the database is unreachable.
OUTAGE_RETRY_AFTER = 5


class ErrorBodySerializer(serializers.Serializer[Any]):
    code = serializers.CharField(help_text=gettext_lazy("Stable, machine-readable error code."))
    message = serializers.CharField(help_text=gettext_lazy("Human-readable explanation, in the request's language."))
    request_id = serializers.CharField(help_text=gettext_lazy("Quote it when reporting a problem."))
    parameter = serializers.CharField(required=False, help_text=gettext_lazy("The query parameter that was rejected."))
    retry_after = serializers.IntegerField(
        required=False, help_text=gettext_lazy("Seconds to wait before trying again.")
    )
    authorize_url = serializers.URLField(
        required=False,
        help_text=gettext_lazy(
            "`tenant_ineligible` because this platform was not granted permission set 11 (WeChat 61007): the page "
            "where the account's administrator authorizes this platform again."
        ),
    )


class ErrorSerializer(serializers.Serializer[Any]):
    error = ErrorBodySerializer()


def error_responses(specific: dict[int, StrOrPromise] | None = None) -> dict[int, OpenApiResponse]:
    """The schema's error responses of an operation, all in the one error shape: the ones every merchant
    operation has, plus `specific`. Descriptions are lazy: the schema is written in the request's language."""
    descriptions = {
        401: gettext_lazy("`not_authenticated`, `authentication_failed`, `api_key_revoked`, `api_key_expired`."),
        429: gettext_lazy("`throttled`: too many requests with this key; see Retry-After."),
        503: gettext_lazy("`service_unavailable`: the database is unreachable; see Retry-After."),
        **(specific or {}),
    }
    return {code: OpenApiResponse(ErrorSerializer, description=text) for code, text in sorted(descriptions.items())}


class InvalidParameter(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid_parameter"

    def __init__(self, parameter: str, message: str) -> None:
        self.parameter = parameter
        super().__init__(detail=message, code=self.default_code)


class APIError(exceptions.APIException):
    """An error with its own status and code, raised by the views (e.g. tenant_revoked)."""

    def __init__(self, *, status_code: int, code: str, message: str, **extra: Any) -> None:
        self.status_code = status_code
        # Fields of the error object besides code and message (documented in ErrorBodySerializer).
        self.extra = extra
        super().__init__(detail=message, code=code)


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "request_id": request_id_var.get(), **extra}}


def _code_and_message(exc: exceptions.APIException) -> tuple[str, str]:
    detail = exc.detail
    if isinstance(detail, exceptions.ErrorDetail):
        return detail.code or exc.default_code, str(detail)
    # A serializer's field errors: report the first one, with the field named in the message.
    if isinstance(detail, dict) and detail:
        field, errors = next(iter(detail.items()))
        first = errors[0] if isinstance(errors, list) and errors else errors
        return "invalid_request", _("%(name)s: %(error)s") % {"name": field, "error": first}
    if isinstance(detail, list) and detail:
        return "invalid_request", str(detail[0])
    return exc.default_code, str(exc.default_detail)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """REST_FRAMEWORK["EXCEPTION_HANDLER"]: DRF's handler (headers, rollback) with the body reshaped."""
    if isinstance(exc, OperationalError | InterfaceError):
        # The database is down or the connection broke: a temporary condition, not a bug.
        logger.warning("API request failed on the database: %s", type(exc).__name__)
        return Response(
            error_body(
                "service_unavailable",
                _("The service is temporarily unavailable. Please retry shortly."),
                retry_after=OUTAGE_RETRY_AFTER,
            ),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(OUTAGE_RETRY_AFTER)},
        )
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # re-raised by DRF, logged by Django, answered by handler500 below
    api_exc = exc if isinstance(exc, exceptions.APIException) else None
    if api_exc is None:  # Http404 or PermissionDenied, already converted by DRF for the status code
        code = "not_found" if response.status_code == status.HTTP_404_NOT_FOUND else "permission_denied"
        response.data = error_body(code, str(response.data.get("detail", "")))
        return response
    code, message = _code_and_message(api_exc)
    if isinstance(api_exc, exceptions.ParseError) and message.startswith("JSON parse error"):
        # DRF's JSON parser words it in English, with Python's json module's reason: said in the reader's language.
        message = _("The request body is not valid JSON.")
    extra: dict[str, Any] = {}
    if isinstance(api_exc, InvalidParameter):
        extra["parameter"] = api_exc.parameter
    if isinstance(api_exc, APIError):
        extra.update(api_exc.extra)
    wait: float | None = getattr(api_exc, "wait", None)
    if isinstance(api_exc, exceptions.Throttled) and wait is not None:
        # DRF truncates the wait; rounding up means a client that waits that long is let in.
        extra["retry_after"] = max(1, math.ceil(wait))
        response["Retry-After"] = str(extra["retry_after"])
    response.data = error_body(code, message, **extra)
    return response


# --- Django-level errors (no DRF view was reached) ---------------------------------------------------


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith((*API_PREFIXES, *PUSH_PREFIXES))


def _json(status_code: int, code: str, message: str) -> JsonResponse:
    # UTF-8 as DRF's answers are, not \u-escaped: a Chinese message reads as Chinese in a terminal.
    return JsonResponse(error_body(code, message), status=status_code, json_dumps_params={"ensure_ascii": False})


def handler400(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return _json(400, "bad_request", _("Bad request."))
    return defaults.bad_request(request, exception)


def handler403(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return _json(403, "permission_denied", _("You do not have permission to perform this action."))
    return defaults.permission_denied(request, exception)


@csrf_exempt
def not_found(request: HttpRequest) -> HttpResponse:
    """Any path under /api/ that names no operation. No key is needed to learn that a path does not exist."""
    return _json(404, "not_found", _("Not found."))


def handler404(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return _json(404, "not_found", _("Not found."))
    return defaults.page_not_found(request, exception)


def handler500(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return _json(500, "server_error", _("Internal server error. It has been logged."))
    return defaults.server_error(request)
