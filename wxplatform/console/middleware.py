"""The console's middleware, left out of the machine APIs' requests.

Sessions, Django's user, messages and the Content-Security-Policy serve
the browser pages (the admin console, the API docs, the login); the merchant API (`/api/v1/`) and the token
authority (`/internal/`) authenticate every request by its key header, set no cookie, are exempt from CSRF
(DRF's views are) and answer JSON only. For them these middleware only spent CPU: about a sixth of a merchant
read (docs/performance.md). Each class here is the library's own middleware that passes machine requests
straight on; every other path runs it unchanged. CSRF and X-Frame-Options stay Django's own classes in
MIDDLEWARE, since `check --deploy` looks for them by name; so does django-axes, whose check does the same.
Nothing is remembered between requests.
"""

from __future__ import annotations

from typing import Any

from csp.middleware import CSPMiddleware as _CSPMiddleware
from django.contrib.auth.middleware import AuthenticationMiddleware as _AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware as _MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware as _SessionMiddleware
from django.http import HttpRequest

# JSON endpoints authenticated by a key header. /api/docs/ and /api/schema/ are pages for people and keep
# the whole chain (the docs carry a Content-Security-Policy).
MACHINE_PREFIXES = ("/api/v1/", "/internal/")


def is_machine_request(request: HttpRequest) -> bool:
    return request.path_info.startswith(MACHINE_PREFIXES)


class _ConsoleOnly:
    """Mixed in before a middleware class: a machine request goes on to the next one untouched. Synchronous
    only (the service runs under WSGI); under ASGI Django adapts it like any sync middleware."""

    get_response: Any
    async_capable = False

    def __call__(self, request: HttpRequest) -> Any:
        if is_machine_request(request):
            return self.get_response(request)
        return super().__call__(request)  # type: ignore[misc]


class SessionMiddleware(_ConsoleOnly, _SessionMiddleware):
    pass


class AuthenticationMiddleware(_ConsoleOnly, _AuthenticationMiddleware):
    pass


class MessageMiddleware(_ConsoleOnly, _MessageMiddleware):
    pass


class CSPMiddleware(_ConsoleOnly, _CSPMiddleware):
    pass
