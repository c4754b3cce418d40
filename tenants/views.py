"""The tenants app's HTTP face: the authorization link page, the callback WeChat redirects the merchant back
to, and the authorization event URL (授权事件接收URL) WeChat pushes to.

The event URL expects the bare string `success` quickly (docs/wechat/flow.md): the view only verifies the
msg_signature, decrypts and answers; what the push means is done by tenants.events, which queues the slow
work. Nothing changes unless msg_signature verifies.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import time
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from tenants.events import UNIX_SECONDS, authorization_event_handle
from tenants.services import api_key_issue_first, tenant_authorize
from tenants.throttling import window_exceeded
from wxplatform.component.clients import message_crypto, wechat_client
from wxplatform.component.services import ComponentNotReady, with_component_token
from wxplatform.proxies import client_address
from wxplatform.wechat.crypto import AppIdMismatchError, CryptoError, SignatureError, parse_xml
from wxplatform.wechat.errors import AuthorizationCodeError, WeChatError

logger = logging.getLogger(__name__)

# auth_type=1: only Official Accounts are offered on WeChat's page (docs/wechat/endpoints.md#authorization-page-links).
AUTH_TYPE_OFFICIAL_ACCOUNTS = "1"


# The authorization page leaves a one-time value in the visitor's session; the first callback that brings
# a code from that session claims the code for it (tenants.services.authorization_code_receive), and only a
# callback from the claiming session is shown the account's first API key. A replayed callback URL (from a
# log, a proxy, a shared screen) comes without that session, so it shows no key, while the merchant may
# retry the page in their own browser until a key is shown.
SESSION_NONCE = "wxp_authorize_nonce"
NONCE_LIFETIME = 3600


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


def _nonce_start(request: HttpRequest) -> None:
    if SESSION_NONCE not in request.session:
        request.session[SESSION_NONCE] = secrets.token_urlsafe(32)
        if not request.user.is_authenticated:
            # An anonymous visitor's session holds only this; it need not outlive the authorization.
            request.session.set_expiry(NONCE_LIFETIME)


def _session_claim(request: HttpRequest) -> str:
    nonce = request.session.get(SESSION_NONCE, "")
    return hashlib.sha256(nonce.encode()).hexdigest() if isinstance(nonce, str) and nonce else ""


def _too_many(request: HttpRequest, scope: str) -> HttpResponse | None:
    """The per-client-address limit of the anonymous authorization pages, which cost WeChat calls."""
    wait = window_exceeded(scope=scope, ident=client_address(request), rate=settings.AUTHORIZE_RATE_LIMIT)
    if wait is None:
        return None
    message = _("Too many attempts from your network. Please wait a minute and try again.")
    response = render(request, "tenants/authorize_error.html", {"message": message}, status=429)
    response["Retry-After"] = str(max(1, math.ceil(wait)))
    return response


@require_GET
@never_cache
def authorize(request: HttpRequest) -> HttpResponse:
    """A page, not a redirect: WeChat checks that the link is followed from the platform's own domain."""
    if limited := _too_many(request, "authorize_page"):
        return limited
    try:
        client = wechat_client()
        pre_auth = with_component_token(lambda token: client.api_create_preauthcode(component_access_token=token))
    except (ComponentNotReady, WeChatError) as exc:
        logger.warning("authorization page unavailable: %s", type(exc).__name__)
        message = _("Authorization is temporarily unavailable. Please try again in a few minutes.")
        return render(request, "tenants/authorize_error.html", {"message": message}, status=503)
    _nonce_start(request)
    context = {"links": authorization_links(pre_auth.code), "expires_in": pre_auth.expires_in}
    return render(request, "tenants/authorize.html", context)


@require_GET
@never_cache
def authorize_callback(request: HttpRequest) -> HttpResponse:
    code = request.GET.get("auth_code", "").strip()
    if not code or len(code) > 512:
        message = _("The authorization link is incomplete. Please start the authorization again.")
        return render(request, "tenants/authorize_error.html", {"message": message}, status=400)
    if limited := _too_many(request, "authorize_callback"):
        return limited
    try:
        result = tenant_authorize(authorization_code=code, claim=_session_claim(request))
    except AuthorizationCodeError:
        message = _("This authorization has expired or was already used. Please start the authorization again.")
        return render(request, "tenants/authorize_error.html", {"message": message, "retry": True}, status=400)
    except (ComponentNotReady, WeChatError) as exc:
        logger.warning("authorization callback failed: %s", type(exc).__name__)
        message = _("WeChat could not confirm the authorization right now. Please try again in a few minutes.")
        return render(request, "tenants/authorize_error.html", {"message": message, "retry": True}, status=502)
    tenant = result.tenant
    # Only the session that claimed the code sees the first key (once); a replayed URL sees none.
    api_key = api_key_issue_first(tenant=tenant) if result.claimed else None
    return render(request, "tenants/authorize_done.html", {"tenant": tenant, "api_key": api_key})


# --- Authorization event URL ------------------------------------------------------------------------

# WeChat pushes are a few hundred bytes; anything near this is not from WeChat.
MAX_PUSH_BYTES = 64 * 1024


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


@csrf_exempt
@require_POST
def component_events(request: HttpRequest) -> HttpResponse:
    if int(request.META.get("CONTENT_LENGTH") or 0) > MAX_PUSH_BYTES:
        return _error(413, "payload_too_large", _("The request body is too large."))
    try:
        body = request.body
    except RequestDataTooBig:
        return _error(413, "payload_too_large", _("The request body is too large."))
    if len(body) > MAX_PUSH_BYTES:
        return _error(413, "payload_too_large", _("The request body is too large."))
    params = request.GET
    timestamp, nonce, msg_signature = (
        params.get("timestamp", ""),
        params.get("nonce", ""),
        params.get("msg_signature", ""),
    )
    if not (UNIX_SECONDS.fullmatch(timestamp) and nonce and msg_signature):
        return _error(400, "missing_parameters", _("timestamp, nonce and msg_signature are required."))
    try:
        inner = message_crypto().decrypt_message(body, msg_signature=msg_signature, timestamp=timestamp, nonce=nonce)
        fields = parse_xml(inner)
    except SignatureError:
        logger.warning("push rejected: bad msg_signature")
        return _error(401, "bad_signature", _("The message signature does not verify."))
    except AppIdMismatchError:
        logger.warning("push rejected: encrypted for another appid")
        return _error(400, "wrong_appid", _("The message is not addressed to this platform."))
    except CryptoError as exc:
        logger.warning("push rejected: %s", type(exc).__name__)
        return _error(400, "bad_message", _("The message cannot be decrypted or parsed."))
    # The signature covers the timestamp: a push that verifies but is older than this is a replay.
    if abs(time.time() - int(timestamp)) > settings.WECHAT_PUSH_MAX_AGE:
        logger.warning("push rejected: timestamp outside the accepted window")
        return _error(400, "stale_message", _("The message timestamp is outside the accepted window."))
    if fields.get("AppId", settings.WECHAT_COMPONENT_APPID) != settings.WECHAT_COMPONENT_APPID:
        return _error(400, "wrong_appid", _("The message is not addressed to this platform."))
    authorization_event_handle(fields=fields)
    return HttpResponse("success", content_type="text/plain")
