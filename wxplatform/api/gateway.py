"""/internal/v1/…/wechat/<WeChat path>: the WeChat gateway's two endpoints (an authorizer's APIs, the platform's
own), one view each. The service key is authenticated and throttled as for the token authority; the call itself
is wxplatform.authority.gateway's. WeChat's answer goes back as WeChat gave it (status, content type, body,
streamed when it is large); refusals of the gateway itself are in the one error shape."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils.translation import gettext as _
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.views import APIView

from wxplatform.api.authority import HandoutError
from wxplatform.authority.authentication import (
    HasServiceKey,
    ServiceKeyAuthentication,
    ServiceKeyRateThrottle,
    request_service_key,
)
from wxplatform.authority.gateway import GatewayCall, GatewayUnreachable, gateway_call
from wxplatform.authority.services import HandoutRefused
from wxplatform.wechat.client import Forwarded

# Seconds a caller is asked to wait when WeChat did not answer.
UNREACHABLE_RETRY_AFTER = 5


class BodyTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "body_too_large"


class WeChatUnreachable(exceptions.APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_code = "wechat_unreachable"


class _GatewayView(APIView):
    authentication_classes = [ServiceKeyAuthentication]
    permission_classes = [HasServiceKey]
    throttle_classes = [ServiceKeyRateThrottle]
    # The body is WeChat's business: read raw, never parsed here.
    parser_classes: list[type] = []
    schema = None  # internal: not part of the merchant API's OpenAPI document

    def get(
        self, request: Request, component_appid: str, wechat_path: str, appid: str | None = None
    ) -> HttpResponseBase:
        return self._forward(request, component_appid, appid, wechat_path, body=None)

    def post(
        self, request: Request, component_appid: str, wechat_path: str, appid: str | None = None
    ) -> HttpResponseBase:
        return self._forward(request, component_appid, appid, wechat_path, body=self._body(request))

    @staticmethod
    def _body(request: Request) -> bytes:
        limit = settings.WECHAT_GATEWAY_MAX_BODY
        declared = request.META.get("CONTENT_LENGTH") or "0"
        if not declared.isdigit() or int(declared) > limit:
            raise BodyTooLarge(
                _("The request body may be at most %(limit)s bytes (WeChat's largest upload).") % {"limit": limit}
            )
        # Read from the raw stream: Django's request.body would apply DATA_UPLOAD_MAX_MEMORY_SIZE, meant for forms.
        return request._request.read(limit + 1)

    def _forward(
        self, request: Request, component_appid: str, appid: str | None, wechat_path: str, *, body: bytes | None
    ) -> HttpResponseBase:
        call = GatewayCall(
            method=request.method or "GET",
            path="/" + wechat_path,
            query=[(name, value) for name, values in request.query_params.lists() for value in values],
            body=body,
            content_type=request.META.get("CONTENT_TYPE") or None,
        )
        try:
            answer = gateway_call(
                key=request_service_key(request), component_appid=component_appid, authorizer_appid=appid, call=call
            )
        except HandoutRefused as refused:
            raise HandoutError(refused) from None
        except GatewayUnreachable as exc:
            error = WeChatUnreachable(
                _("WeChat did not answer (%(reason)s); try again shortly.") % {"reason": exc.reason}
            )
            error.wait = UNREACHABLE_RETRY_AFTER  # type: ignore[attr-defined]
            raise error from None
        return _response(answer)

    def finalize_response(  # type: ignore[override]  # DRF passes Django responses through unchanged
        self, request: Request, response: HttpResponseBase, *args: object, **kwargs: object
    ) -> HttpResponseBase:
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[arg-type]
        response["Cache-Control"] = "no-store"
        if response.status_code == status.HTTP_502_BAD_GATEWAY and not response.has_header("Retry-After"):
            response["Retry-After"] = str(UNREACHABLE_RETRY_AFTER)
        return response


def _response(answer: Forwarded) -> HttpResponseBase:
    content_type = answer.content_type or "application/octet-stream"
    if answer.body is not None:
        return HttpResponse(answer.body, status=answer.status, content_type=content_type)
    assert answer.chunks is not None
    # Django closes the iterator once the response is sent or abandoned, which returns the connection to WeChat.
    return StreamingHttpResponse(answer.chunks, status=answer.status, content_type=content_type)


class AuthorizerGatewayView(_GatewayView):
    pass


class ComponentGatewayView(_GatewayView):
    pass
