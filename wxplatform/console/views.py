"""Small answers of the site itself."""

from __future__ import annotations

from math import ceil
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET


@require_GET
@cache_control(max_age=86400, public=True)
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico on every page: "no icon" without a 404 (and its warning) in the logs."""
    return HttpResponse(status=204)


def login_locked_out(request: HttpRequest, original_response: HttpResponse | None, credentials: Any) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: the console login refused after AXES_FAILURE_LIMIT failures (429), saying for how
    long, in the console's language and look."""
    minutes = ceil(settings.AXES_COOLOFF_TIME.total_seconds() / 60)
    context = {
        **admin.site.each_context(request),
        "title": _("Login locked"),
        "message": _(
            "Too many failed logins for this user from this address. Try again in %(minutes)d minutes, or ask an "
            "administrator to unlock the login (console → Login lockouts → access attempts)."
        )
        % {"minutes": minutes},
    }
    response = TemplateResponse(request, "admin/console/locked_out.html", context, status=429)
    return response.render()
