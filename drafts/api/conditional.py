"""Conditional GET for the merchant API: ETag on every read, Last-Modified where a timestamp is truthful.

The ETag is a hash of the representation (and its language), so it changes exactly when the body does;
If-None-Match takes precedence over If-Modified-Since (RFC 9110 §13.2.2).

`render()` and `rendered_response()` serve a representation rendered once and answered many times: the
same bytes, content type and headers DRF's Response would give.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.http import HttpResponse, HttpResponseBase
from django.utils import translation
from django.utils.http import http_date, parse_etags, parse_http_date_safe
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


def _etag(data: Any) -> str:
    payload = json.dumps([translation.get_language(), data], sort_keys=True, default=str)
    return '"' + hashlib.sha256(payload.encode()).hexdigest()[:32] + '"'


def _not_modified(request: Request, etag: str, last_modified: datetime | None) -> bool:
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:
        # Weak comparison, as GET requires: W/"x" matches "x".
        candidates = {tag.removeprefix("W/") for tag in parse_etags(if_none_match)}
        return "*" in candidates or etag in candidates
    since = parse_http_date_safe(request.headers.get("If-Modified-Since", ""))
    return last_modified is not None and since is not None and int(last_modified.timestamp()) <= since


def conditional_response(request: Request, data: Any, *, last_modified: datetime | None = None) -> Response:
    """A 200 with `data`, or a bodiless 304 if the client's copy is current."""
    etag = _etag(data)
    not_modified = _not_modified(request, etag, last_modified)
    response = Response(None if not_modified else data, status=status.HTTP_304_NOT_MODIFIED if not_modified else 200)
    _set_validators(response, etag, last_modified)
    return response


@dataclass(frozen=True)
class Rendered:
    """A 200 answer rendered once: its body, its content type and its validators."""

    body: bytes
    content_type: str
    etag: str
    last_modified: datetime | None


def render(request: Request, view: APIView, data: Any, *, last_modified: datetime | None = None) -> Rendered:
    """`data` rendered as DRF would render Response(data) for this request (its negotiated renderer)."""
    renderer = request.accepted_renderer
    body = renderer.render(data, request.accepted_media_type, view.get_renderer_context())
    if isinstance(body, str):
        body = body.encode(renderer.charset or "utf-8")
    content_type = f"{renderer.media_type}; charset={renderer.charset}" if renderer.charset else renderer.media_type
    return Rendered(body=body, content_type=content_type, etag=_etag(data), last_modified=last_modified)


def rendered_response(request: Request, rendered: Rendered) -> HttpResponseBase:
    """The same answer as conditional_response() for the data `rendered` was made from."""
    if _not_modified(request, rendered.etag, rendered.last_modified):
        response = HttpResponse(status=status.HTTP_304_NOT_MODIFIED)
        del response["Content-Type"]  # as DRF does for an empty body
    else:
        response = HttpResponse(rendered.body, content_type=rendered.content_type)
    _set_validators(response, rendered.etag, rendered.last_modified)
    return response


def _set_validators(response: HttpResponseBase, etag: str, last_modified: datetime | None) -> None:
    response["ETag"] = etag
    if last_modified is not None:
        response["Last-Modified"] = http_date(last_modified.timestamp())
    # Per key: shared caches must not keep it; clients may keep it but must revalidate.
    response["Cache-Control"] = "private, no-cache"
    response["Vary"] = "Authorization, Accept-Language"
