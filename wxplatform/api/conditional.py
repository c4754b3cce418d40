"""Conditional GET for the merchant API: ETag on every read, Last-Modified where a timestamp is truthful.

The ETag is a hash of the representation (and its language), so it changes exactly when the body does;
If-None-Match takes precedence over If-Modified-Since (RFC 9110 §13.2.2). Both validators are computed on
every request from the data about to be answered: hashing a few hundred bytes costs far less than the
query that read them, and nothing has to be invalidated.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from django.utils import translation
from django.utils.http import http_date, parse_etags, parse_http_date_safe
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response


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
    response["ETag"] = etag
    if last_modified is not None:
        response["Last-Modified"] = http_date(last_modified.timestamp())
    # Per key: shared caches must not keep it; clients may keep it but must revalidate.
    response["Cache-Control"] = "private, no-cache"
    response["Vary"] = "Authorization, Accept-Language"
    return response
