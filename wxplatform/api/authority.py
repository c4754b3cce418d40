"""The token authority's two endpoints, one view each: authenticate the service key, call the service, answer
`{"access_token": ..., "expires_at": ...}` (expires_at in the one form of times, docs/reference.md "Times") or an
error in the one error shape. Never cached."""

from __future__ import annotations

from typing import Never

from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from wxplatform.authority.authentication import (
    HasServiceKey,
    ServiceKeyAuthentication,
    ServiceKeyRateThrottle,
    request_service_key,
)
from wxplatform.authority.models import HandoutKind, HandoutOutcome
from wxplatform.authority.services import (
    HandOut,
    HandoutRefused,
    authority_authorizer_token,
    authority_component_token,
)
from wxplatform.component.models import Platform
from wxplatform.core import metrics
from wxplatform.core.times import machine_time

_STATUS = {
    HandoutOutcome.NOT_FOUND: status.HTTP_404_NOT_FOUND,
    HandoutOutcome.FORBIDDEN: status.HTTP_403_FORBIDDEN,
    HandoutOutcome.UNAVAILABLE: status.HTTP_503_SERVICE_UNAVAILABLE,
}
# Seconds a caller is asked to wait when no token can be had now.
UNAVAILABLE_RETRY_AFTER = 5


class HandoutError(exceptions.APIException):
    def __init__(self, refused: HandoutRefused) -> None:
        self.status_code = _STATUS[refused.outcome]
        super().__init__(detail=refused.message, code=refused.code)


class _TokenView(APIView):
    authentication_classes = [ServiceKeyAuthentication]
    permission_classes = [HasServiceKey]
    throttle_classes = [ServiceKeyRateThrottle]
    kind: HandoutKind
    schema = None  # internal: not part of the merchant API's OpenAPI document

    def finalize_response(self, request: Request, response: Response, *args: object, **kwargs: object) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        # Tokens and refusals alike: no proxy or client cache may keep them.
        response["Cache-Control"] = "no-store"
        if response.status_code == status.HTTP_503_SERVICE_UNAVAILABLE and not response.has_header("Retry-After"):
            response["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER)
        return response

    def throttled(self, request: Request, wait: float) -> Never:
        # Counted, not audited: a runaway caller must not write a row per refused request.
        metrics.record_token_handout(self.kind, _known(str(self.kwargs.get("component_appid", ""))), "throttled")
        super().throttled(request, wait)

    @staticmethod
    def answer(handed: HandOut) -> Response:
        return Response({"access_token": handed.access_token, "expires_at": machine_time(handed.expires_at)})


def _known(component_appid: str) -> str:
    return component_appid if Platform.objects.filter(component_appid=component_appid).exists() else "unknown"


class ComponentTokenView(_TokenView):
    kind = HandoutKind.COMPONENT

    def get(self, request: Request, component_appid: str) -> Response:
        try:
            handed = authority_component_token(key=request_service_key(request), component_appid=component_appid)
        except HandoutRefused as refused:
            raise HandoutError(refused) from None
        return self.answer(handed)


class AuthorizerTokenView(_TokenView):
    kind = HandoutKind.AUTHORIZER

    def get(self, request: Request, component_appid: str, appid: str) -> Response:
        try:
            handed = authority_authorizer_token(
                key=request_service_key(request), component_appid=component_appid, authorizer_appid=appid
            )
        except HandoutRefused as refused:
            raise HandoutError(refused) from None
        return self.answer(handed)
