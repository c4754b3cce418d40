"""The tenants app's HTTP face: the authorization link page, the callback WeChat redirects the merchant back
to, and the two URLs WeChat pushes to: the authorization event URL (授权事件接收URL) and the message-and-event
URL (消息与事件接收URL).

Both expect an answer within 5 s (docs/wechat/flow.md, docs/wechat/message-url.md): the views only bound the
body, then tenants.receiving verifies the msg_signature, decrypts and answers; what a push means is done by
tenants.events and tenants.messages, which queue the slow work. Nothing changes unless msg_signature
verifies. Every push is written to the push log (tenants.pushes).
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable
from functools import lru_cache, wraps
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from tenants.authentication import KEYWORD as API_KEY_KEYWORD
from tenants.events import APPID
from tenants.models import PushEndpoint, PushOutcome
from tenants.pushes import push_log_record, push_unavailable_record
from tenants.receiving import receive_push, rejected
from tenants.services import api_key_issue_first, tenant_authorize
from wxplatform.component.clients import component_client
from wxplatform.component.models import Platform
from wxplatform.component.services import (
    ComponentNotReady,
    ComponentUnknown,
    component_get,
    default_component,
    is_default,
    with_component_token,
)
from wxplatform.core.proxies import client_address
from wxplatform.core.throttling import window_exceeded
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


def _redirect_uri(component: Platform) -> str:
    callback = f"{settings.PUBLIC_BASE_URL}{reverse('tenants:authorize-callback')}"
    # The default platform's callback URL is unchanged; another's names its platform, so that the code
    # WeChat appends is exchanged by the platform that issued it.
    return callback if is_default(component) else f"{callback}?{urlencode({'component': component.component_appid})}"


def authorization_links(component: Platform, pre_auth_code: str) -> dict[str, str]:
    query = {
        "component_appid": component.component_appid,
        "pre_auth_code": pre_auth_code,
        "redirect_uri": _redirect_uri(component),
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


# Seconds a visitor turned away because the authorization pages are all busy is asked to wait.
BUSY_RETRY_AFTER = 10


@lru_cache(maxsize=4)
def _wechat_slots(size: int) -> threading.BoundedSemaphore:
    """This process's slots for anonymous views that wait on WeChat (AUTHORIZE_CONCURRENCY). It holds only
    the count of views in flight, each released when its view returns; keyed by the size so that a changed
    setting (tests) gets its own."""
    return threading.BoundedSemaphore(size)


def _waits_on_wechat(view: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """For the anonymous views that call WeChat while the visitor waits: each holds one of this process's
    slots (AUTHORIZE_CONCURRENCY), taken without waiting; with every slot taken the visitor is answered 503
    "busy" at once, so that a slow WeChat never holds every web thread."""

    @wraps(view)
    def guarded(request: HttpRequest) -> HttpResponse:
        slots = _wechat_slots(settings.AUTHORIZE_CONCURRENCY)
        if not slots.acquire(blocking=False):
            return _busy(request)
        try:
            return view(request)
        finally:
            slots.release()

    return guarded


def _busy(request: HttpRequest) -> HttpResponse:
    logger.warning("authorization page busy: every slot waits on WeChat")
    message = _("Authorization is busy right now. Please try again in a few seconds.")
    response = render(request, "tenants/authorize_error.html", {"message": message}, status=503)
    response["Retry-After"] = str(BUSY_RETRY_AFTER)
    return response


def _platform(component_appid: str) -> Platform | None:
    """The platform a URL names (an authorization page's `?component=`, a push URL's path); the default one
    when it names none; None if there is no such platform."""
    if not component_appid:
        return default_component()
    if not APPID.fullmatch(component_appid):
        return None
    try:
        return component_get(component_appid)
    except ComponentUnknown:
        return None


def _unknown_platform(request: HttpRequest) -> HttpResponse:
    message = _("This authorization link names a platform that does not exist here. Please ask for a new link.")
    return render(request, "tenants/authorize_error.html", {"message": message}, status=404)


@require_GET
@never_cache
@_waits_on_wechat
def authorize(request: HttpRequest) -> HttpResponse:
    """A page, not a redirect: WeChat checks that the link is followed from the platform's own domain.
    `?component=<component appid>` picks the platform; without it, the default one."""
    if limited := _too_many(request, "authorize_page"):
        return limited
    component = _platform(request.GET.get("component", ""))
    if component is None:
        return _unknown_platform(request)
    try:
        # A pre_auth_code asked for again is simply a new one: a short wait costs the visitor only a retry. (The
        # callback keeps the usual timeout: a code WeChat consumed in a call given up on cannot be exchanged again.)
        client = component_client(component).with_read_timeout(settings.AUTHORIZE_WECHAT_TIMEOUT)
        pre_auth = with_component_token(
            component, lambda token: client.api_create_preauthcode(component_access_token=token)
        )
    except (ComponentNotReady, WeChatError) as exc:
        logger.warning("authorization page unavailable: %s", type(exc).__name__)
        message = _("Authorization is temporarily unavailable. Please try again in a few minutes.")
        return render(request, "tenants/authorize_error.html", {"message": message}, status=503)
    _nonce_start(request)
    context = {"links": authorization_links(component, pre_auth.code), "expires_in": pre_auth.expires_in}
    return render(request, "tenants/authorize.html", context)


@require_GET
@never_cache
@_waits_on_wechat
def authorize_callback(request: HttpRequest) -> HttpResponse:
    code = request.GET.get("auth_code", "").strip()
    if not code or len(code) > 512:
        message = _("The authorization link is incomplete. Please start the authorization again.")
        return render(request, "tenants/authorize_error.html", {"message": message}, status=400)
    if limited := _too_many(request, "authorize_callback"):
        return limited
    component = _platform(request.GET.get("component", ""))
    if component is None:
        return _unknown_platform(request)
    try:
        result = tenant_authorize(component=component, authorization_code=code, claim=_session_claim(request))
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
    context = {"tenant": tenant, "api_key": api_key, "api": _api_usage(request, api_key) if api_key else None}
    return render(request, "tenants/authorize_done.html", context)


def _api_usage(request: HttpRequest, api_key: str) -> dict[str, str]:
    """Where the new key is used, as the merchant's program must write it: absolute addresses as this request
    reached the service (its scheme and host, behind the proxy as the merchant sees them)."""
    draft_count = request.build_absolute_uri(reverse("api:draft-count"))
    header = f"Authorization: {API_KEY_KEYWORD} {api_key}"
    return {
        "base": draft_count.removesuffix("draft-count"),
        "header": header,
        "curl": f'curl -H "{header}" {draft_count}',
        "docs": request.build_absolute_uri(reverse("api:docs")),
    }


# --- The two WeChat push URLs ----------------------------------------------------------------------

# WeChat pushes are a few hundred bytes; anything near this is not from WeChat.
MAX_PUSH_BYTES = 64 * 1024
# Seconds a push answered 503 (the database unreachable) is asked to wait, as the merchant API asks.
PUSH_RETRY_AFTER = 5


def _error(status: int, code: str, message: str) -> JsonResponse:
    # UTF-8, as the API's errors are: a Chinese message reads as Chinese.
    return JsonResponse(
        {"error": {"code": code, "message": message}}, status=status, json_dumps_params={"ensure_ascii": False}
    )


def _receive(
    request: HttpRequest, endpoint: PushEndpoint, *, component_appid: str = "", authorizer_appid: str = ""
) -> HttpResponse:
    """Bounded read, verify, decrypt, handle, answer; and log the push, whatever it was. `component_appid`
    empty: the default platform's URL."""
    if request.method != "POST":
        # WeChat only POSTs here; anything else is answered in the error shape too, and is not logged.
        refused = _error(405, "method_not_allowed", _("Only POST is accepted here."))
        refused["Allow"] = "POST"
        return refused
    started = time.perf_counter()
    try:
        return _receive_push(
            request, endpoint, component_appid=component_appid, authorizer_appid=authorizer_appid, started=started
        )
    except (OperationalError, InterfaceError) as exc:
        return _database_unavailable(endpoint, component_appid=component_appid, started=started, exc=exc)


def _receive_push(
    request: HttpRequest, endpoint: PushEndpoint, *, component_appid: str, authorizer_appid: str, started: float
) -> HttpResponse:
    component = _platform(component_appid)
    if component is None:
        # Nothing to verify with and no platform to log it under: refused, not logged.
        return _error(404, "unknown_component", _("No third-party platform with this AppID is configured here."))
    body: bytes | None = None
    if int(request.META.get("CONTENT_LENGTH") or 0) > MAX_PUSH_BYTES:
        answer = rejected(413, "payload_too_large", _("The request body is too large."))
    else:
        try:
            body = request.body
        except RequestDataTooBig:
            body = None
        if body is None or len(body) > MAX_PUSH_BYTES:
            answer = rejected(413, "payload_too_large", _("The request body is too large."))
        else:
            answer = receive_push(
                component, endpoint=endpoint, body=body, query=request.GET, authorizer_appid=authorizer_appid
            )
    if answer.outcome == PushOutcome.REJECTED:
        response: HttpResponse = _error(answer.status, answer.error_code, answer.error_message)
    else:
        response = HttpResponse(answer.content, content_type=answer.content_type, status=answer.status)
    push_log_record(
        component,
        endpoint=endpoint,
        answer=answer,
        query=request.GET,
        body=body,
        duration=time.perf_counter() - started,
    )
    return response


def _database_unavailable(
    endpoint: PushEndpoint, *, component_appid: str, started: float, exc: Exception
) -> HttpResponse:
    """The database is down or the connection broke (a temporary condition, as the merchant API answers it):
    503 with Retry-After at once, counted (push_unavailable_record), not logged, since the log is in the
    database too. Nothing was kept half-done: a handler's writes are atomic. WeChat sends a message again when
    it gets no answer (docs/wechat/message-url.md#retries-and-deduplication); for component pushes that is not
    documented, but a ticket comes every 10 minutes and a missed authorization is found by reconciliation."""
    logger.warning("push not handled, the database is unavailable: %s", type(exc).__name__)
    push_unavailable_record(endpoint=endpoint, component_appid=component_appid, duration=time.perf_counter() - started)
    response = _error(503, "service_unavailable", _("The service is temporarily unavailable. Please retry shortly."))
    response["Retry-After"] = str(PUSH_RETRY_AFTER)
    return response


@csrf_exempt
def component_events(request: HttpRequest, component_appid: str = "") -> HttpResponse:
    """The authorization event URL (docs/wechat/flow.md#authorization-event-url): the bare string `success`.
    /wechat/component/events is the default platform's; /wechat/components/<component appid>/events any one's."""
    return _receive(request, PushEndpoint.COMPONENT, component_appid=component_appid)


@csrf_exempt
def authorizer_events(request: HttpRequest, appid: str, component_appid: str = "") -> HttpResponse:
    """The message-and-event URL, configured as …/authorizers/$APPID$/events (docs/wechat/message-url.md):
    `success`, an empty answer, or an encrypted passive reply."""
    return _receive(request, PushEndpoint.MESSAGE, component_appid=component_appid, authorizer_appid=appid)
