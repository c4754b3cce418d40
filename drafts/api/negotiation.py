"""DRF's content negotiation, with its answers remembered.

DefaultContentNegotiation parses the Accept header on every request (a sixth of a cached draft-count
read's CPU), though its answer depends only on that header, the `?format=` override and the view's
renderer classes. This class asks DRF once per combination and remembers the answer; requests with a
format suffix or any query string are negotiated by DRF afresh. A NotAcceptable is never remembered.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request

# Accept headers are chosen by clients, so their variety is unbounded; past this, the memo starts over.
_MAX_REMEMBERED = 256
_remembered: dict[tuple[str, tuple[type[BaseRenderer], ...]], tuple[int, str]] = {}


class RememberingContentNegotiation(DefaultContentNegotiation):
    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderers = list(renderers)  # this request's instances; what is remembered is an index into them
        if format_suffix or request.META.get("QUERY_STRING"):
            return self._negotiate(request, renderers, format_suffix)
        key = (request.META.get("HTTP_ACCEPT", ""), tuple(type(renderer) for renderer in renderers))
        answer = _remembered.get(key)
        if answer is None:
            renderer, media_type = self._negotiate(request, renderers, None)
            answer = (renderers.index(renderer), media_type)
            if len(_remembered) >= _MAX_REMEMBERED:
                _remembered.clear()
            _remembered[key] = answer
        index, media_type = answer
        return renderers[index], media_type

    def _negotiate(
        self, request: Request, renderers: list[BaseRenderer], format_suffix: str | None
    ) -> tuple[BaseRenderer, str]:
        answer: Any = super().select_renderer(request, renderers, format_suffix)
        return answer  # type: ignore[no-any-return]
