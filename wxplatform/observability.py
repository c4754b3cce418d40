"""Request ids and log hygiene.

Every log line carries the id of the request (or task) that produced it, and no line carries a token:
WeChat puts credentials in query strings and JSON bodies, so those patterns are masked on the way out.
"""

from __future__ import annotations

import contextvars
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_INCOMING_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_SECRET_PATTERNS = [
    # query strings: access_token=…, component_access_token=…
    re.compile(r"((?:access_token|refresh_token|component_verify_ticket|pre_auth_code|auth_code)=)[^&\s\"']+"),
    # JSON bodies: "authorizer_access_token": "…"
    re.compile(
        r"(\"(?:[a-z_]*access_token|[a-z_]*refresh_token|component_verify_ticket|component_appsecret|"
        r"component_secret|appsecret|pre_auth_code|authorization_code)\"\s*:\s*\")[^\"]*"
    ),
]


# Keys of structured values (audit details, log extras) whose values are never shown, whoever wrote them.
_SECRET_KEY = re.compile(r"token|ticket|secret|password|passwd|aes|raw|^key$|api_key$|authorization_code", re.I)
MASK = "***"


def redact(value: Any) -> Any:
    """`value` with every secret masked: in text, the credential patterns WeChat uses (query strings, JSON
    bodies); in mappings, the values of secret-looking keys; lists and mappings recursively."""
    if isinstance(value, str):
        for pattern in _SECRET_PATTERNS:
            value = pattern.sub(rf"\1{MASK}", value)
        return value
    if isinstance(value, dict):
        return {k: MASK if _SECRET_KEY.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned: str = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class RequestIdMiddleware:
    """Takes X-Request-ID from a trusted proxy when it looks sane, else makes one, and echoes it back."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        rid = incoming if _INCOMING_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(rid)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = rid
        return response
