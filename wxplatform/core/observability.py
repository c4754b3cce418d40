"""Request ids, log hygiene and URL hygiene.

Every log line carries the id of the request (or task) that produced it, and no line carries a token:
WeChat puts credentials in query strings and JSON bodies, so those patterns are masked on the way out.
A path holding a NUL byte is refused before any view runs: PostgreSQL refuses NUL in text, so such a value
would otherwise fail the first query it reaches with a 500.
"""

from __future__ import annotations

import contextvars
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus

from celery import signals
from django.http import Http404, HttpRequest, HttpResponse
from pythonjsonlogger.json import JsonFormatter

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

# Any parameter of any URL in text (`?api_key=…`, `&key=…`, `/metrics?token=…`): a client may put its key in a
# query string, which is refused but must not be written down. Matched on the decoded name, generously:
# masking an innocent value costs nothing.
_QUERY_PARAMETER = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&;#?\s\"'<>]+)=(?P<value>[^&;#\s\"'<>]*)")
_SECRET_PARAMETER = re.compile(
    r"key|token|secret|passw|pwd|ticket|signature|credential|session|jwt|bearer|auth|code$|(?:^|[_.-])sig$", re.I
)


def _mask_parameter(match: re.Match[str]) -> str:
    if not match["value"] or not _SECRET_PARAMETER.search(unquote_plus(match["name"])):
        return match[0]
    return f"{match['lead']}{match['name']}={MASK}"


def redact(value: Any) -> Any:
    """`value` with every secret masked: in text, the credential patterns WeChat uses (query strings, JSON
    bodies) and every credential-looking URL parameter; in mappings, the values of secret-looking keys; lists
    and mappings recursively."""
    if isinstance(value, str):
        for pattern in _SECRET_PATTERNS:
            value = pattern.sub(rf"\1{MASK}", value)
        return _QUERY_PARAMETER.sub(_mask_parameter, value)
    if isinstance(value, dict):
        return {k: MASK if _SECRET_KEY.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # django.request logs a 4xx/5xx after the middleware has returned (and reset the variable): the
        # request it passes as an extra still knows its id, the one the response gave the client.
        record.request_id = getattr(getattr(record, "request", None), "request_id", None) or request_id_var.get()
        return True


_JSON_NATIVE = (str, int, float, bool, type(None), dict, list, tuple)


class RedactingJsonFormatter(JsonFormatter):
    """JSON lines with every field redacted, extras included: django.request passes the request itself,
    whose text is its full URL (`auth_code=…` on the authorization callback)."""

    def process_log_record(self, log_record: dict[str, Any]) -> dict[str, Any]:
        plain = {k: v if isinstance(v, _JSON_NATIVE) else str(v) for k, v in log_record.items()}
        cleaned: dict[str, Any] = redact(plain)
        return cleaned


class RedactSecretsFilter(logging.Filter):
    """On every handler: the message and the traceback (an HTTP library's exception names the URL it called)
    are redacted before any formatter sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned: str = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when it is set: the traceback is formatted once, here, redacted.
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_TRACEBACKS = logging.Formatter()


class RequestIdMiddleware:
    """Takes X-Request-ID from a trusted proxy when it looks sane, else makes one, and echoes it back."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        rid = incoming if _INCOMING_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(rid)
        request.request_id = rid  # type: ignore[attr-defined]  # read by RequestIdFilter after the reset
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = rid
        return response


class NulByteMiddleware:
    """A NUL byte in the path is a 404 (no resource is named so), answered by the project's handler404 (the one
    error shape under /api/, /internal/ and WeChat's push URLs) before any view or query runs: every path
    parameter of every URL is covered at once, whatever its converter. Query values are left to the views, which
    validate them (serializers, forms, the push URLs' signature check, which also logs what WeChat's URL got)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path:
            raise Http404("NUL byte in the path")
        return self.get_response(request)


# --- Celery: a task carries the request id of the request (or task) that enqueued it ---------------------

TASK_HEADER = "request_id"


def _before_task_publish(headers: dict[str, Any] | None = None, **_kwargs: Any) -> None:
    rid = request_id_var.get()
    if headers is not None and rid != "-":
        headers.setdefault(TASK_HEADER, rid)


_task_tokens: dict[str, contextvars.Token[str]] = {}


def _task_prerun(task_id: str = "", task: Any = None, **_kwargs: Any) -> None:
    request = getattr(task, "request", None)
    rid = getattr(request, TASK_HEADER, None) or (getattr(request, "headers", None) or {}).get(TASK_HEADER)
    if isinstance(rid, str) and _INCOMING_ID.match(rid):
        _task_tokens[task_id] = request_id_var.set(rid)


def _task_postrun(task_id: str = "", **_kwargs: Any) -> None:
    token = _task_tokens.pop(task_id, None)
    if token is not None:
        request_id_var.reset(token)


def connect_task_signals() -> None:
    """Called once per process from WxPlatformConfig.ready()."""
    signals.before_task_publish.connect(_before_task_publish, weak=False, dispatch_uid="wxp-rid-publish")
    signals.task_prerun.connect(_task_prerun, weak=False, dispatch_uid="wxp-rid-prerun")
    signals.task_postrun.connect(_task_postrun, weak=False, dispatch_uid="wxp-rid-postrun")
