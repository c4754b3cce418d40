"""Merchant onboarding pages: the authorization link page and the callback WeChat redirects back to."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from tenants.services import api_key_issue_first, tenant_authorize
from wxplatform.component.clients import wechat_client
from wxplatform.component.services import ComponentNotReady, with_component_token
from wxplatform.wechat.errors import AuthorizationCodeError, WeChatError

logger = logging.getLogger(__name__)

# auth_type=1: only Official Accounts are offered on WeChat's page (protocol §3.3).
AUTH_TYPE_OFFICIAL_ACCOUNTS = "1"


def _redirect_uri() -> str:
    return f"{settings.PUBLIC_BASE_URL}{reverse('tenants:authorize-callback')}"


def authorization_links(pre_auth_code: str) -> dict[str, str]:
    query = {
        "component_appid": settings.WECHAT_COMPONENT_APPID,
        "pre_auth_code": pre_auth_code,
        "redirect_uri": _redirect_uri(),
        "auth_type": AUTH_TYPE_OFFICIAL_ACCOUNTS,
    }
    mobile = {"action": "bindcomponent", "no_scan": "1", **query}
    return {
        "pc": f"{settings.WECHAT_MP_BASE}/cgi-bin/componentloginpage?{urlencode(query)}",
        "mobile": f"{settings.WECHAT_OPEN_BASE}/wxaopen/safe/bindcomponent?{urlencode(mobile)}#wechat_redirect",
    }


@require_GET
@never_cache
def authorize(request: HttpRequest) -> HttpResponse:
    """A page, not a redirect: WeChat checks that the link is followed from the platform's own domain."""
    try:
        client = wechat_client()
        pre_auth = with_component_token(lambda token: client.api_create_preauthcode(component_access_token=token))
    except (ComponentNotReady, WeChatError) as exc:
        logger.warning("authorization page unavailable: %s", type(exc).__name__)
        message = _("Authorization is temporarily unavailable. Please try again in a few minutes.")
        return render(request, "tenants/authorize_error.html", {"message": message}, status=503)
    context = {"links": authorization_links(pre_auth.code), "expires_in": pre_auth.expires_in}
    return render(request, "tenants/authorize.html", context)


@require_GET
@never_cache
def authorize_callback(request: HttpRequest) -> HttpResponse:
    code = request.GET.get("auth_code", "").strip()
    if not code or len(code) > 512:
        message = _("The authorization link is incomplete. Please start the authorization again.")
        return render(request, "tenants/authorize_error.html", {"message": message}, status=400)
    try:
        result = tenant_authorize(authorization_code=code)
    except AuthorizationCodeError:
        message = _("This authorization has expired or was already used. Please start the authorization again.")
        return render(request, "tenants/authorize_error.html", {"message": message, "retry": True}, status=400)
    except (ComponentNotReady, WeChatError) as exc:
        logger.warning("authorization callback failed: %s", type(exc).__name__)
        message = _("WeChat could not confirm the authorization right now. Please try again in a few minutes.")
        return render(request, "tenants/authorize_error.html", {"message": message, "retry": True}, status=502)
    tenant = result.tenant
    api_key = api_key_issue_first(tenant=tenant)
    return render(request, "tenants/authorize_done.html", {"tenant": tenant, "api_key": api_key})
