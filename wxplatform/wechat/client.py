"""Typed client for the WeChat component endpoints: one method per endpoint (docs/wechat/endpoints.md).

No retry policy lives here beyond re-establishing a connection that never carried the request: whether a
failed call may be repeated depends on the caller (errors.py tells it which kind of failure it got).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, NewConnectionError
from urllib3.util.retry import Retry

from wxplatform.wechat.bases import Bases
from wxplatform.wechat.errors import TransportError, WeChatError
from wxplatform.wechat.http import MALFORMED, parse_body, required_int
from wxplatform.wechat.types import (
    AuthorizationInfo,
    AuthorizerInfo,
    AuthorizerListPage,
    AuthorizerToken,
    ComponentAccessToken,
    PreAuthCode,
    Quota,
    RidInfo,
)

__all__ = ["CallObserver", "ErrorObserver", "Forwarded", "WeChatClient", "call_outcome"]

# Told of every call as it ends: (endpoint path, outcome, seconds). The outcome is "0" for a success, the
# errcode as text, or the kind of transport failure (see call_outcome). This is how the Django side counts
# calls for its metrics without this package importing anything of Django's.
CallObserver = Callable[[str, str, float], None]
# Told of every call that ends in a WeChatError: (endpoint path, the error). The Django side diagnoses 61004
# with it (wxplatform/core/egress.py). It must not raise.
ErrorObserver = Callable[[str, WeChatError], None]

# Every surveyed SDK passes the component token under its legacy name; the newer doc pages show
# `access_token=` for the same endpoints, but that spelling is unconfirmed everywhere
# (docs/wechat/endpoints.md#conventions, docs/wechat/open-questions.md#token-parameter-name).
_COMPONENT_TOKEN_PARAM = "component_access_token"  # noqa: S105 - a parameter name, not a secret
_AUTHORIZER_LIST_MAX = 500  # docs/wechat/endpoints.md#api_get_authorizer_list


# A forwarded answer of at most this size, or any JSON or text one, is read whole (to see its errcode);
# anything larger streams through (media downloads).
FORWARD_BUFFER_LIMIT = 1024 * 1024
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Forwarded:
    """WeChat's answer to a forwarded call, as WeChat gave it. `body` is the whole answer when it was read
    (small, JSON or text); otherwise `chunks` yields it and `close` must be called once it is consumed.
    `errcode` is WeChat's errcode when the body is a JSON object that carries a non-zero one."""

    status: int
    content_type: str
    body: bytes | None
    chunks: Iterator[bytes] | None = field(default=None, repr=False)
    close: Callable[[], None] = field(default=lambda: None, repr=False)
    errcode: int | None = None


class WeChatClient:
    """Calls api.weixin.qq.com (or the sandbox) over one pooled keep-alive session; thread-safe for calls."""

    def __init__(
        self,
        *,
        base_url: str,
        component_appid: str,
        component_appsecret: str,
        connect_timeout: float = 3.05,
        read_timeout: float = 10.0,
        pool_maxsize: int = 64,
        session: requests.Session | None = None,
        on_call: CallObserver | None = None,
        on_error: ErrorObserver | None = None,
        proxy: str | None = None,
        bases: Bases | None = None,
    ) -> None:
        # `bases` (shared with the fan-out) holds the fallback bases and their breakers; without, one base.
        self._bases = bases if bases is not None else Bases(base_url)
        self._component_appid = component_appid
        self._component_appsecret = component_appsecret
        self._timeout = (connect_timeout, read_timeout)
        self._owns_session = session is None
        self._session = session if session is not None else _pooled_session(pool_maxsize)
        if proxy:
            # Every call leaves through the egress proxy (a fixed-IP gateway on the platform's whitelist,
            # docs/wechat/flow.md#ip-whitelist): plain-HTTP requests are forwarded, HTTPS tunnelled (CONNECT).
            self._session.proxies = {"http": proxy, "https": proxy}
        self._on_call = on_call
        self._on_error = on_error

    def for_component(self, component_appid: str, component_appsecret: str) -> WeChatClient:
        """This client's transport (session, timeouts, observers) speaking for another platform. The copy
        never closes the shared session."""
        bound = copy.copy(self)
        bound._component_appid = component_appid
        bound._component_appsecret = component_appsecret
        bound._owns_session = False
        return bound

    def with_read_timeout(self, read_timeout: float) -> WeChatClient:
        """This client with another read timeout (a page a visitor waits on may not wait as long as a task)."""
        bound = copy.copy(self)
        bound._timeout = (self._timeout[0], read_timeout)
        bound._owns_session = False
        return bound

    def __repr__(self) -> str:
        return f"WeChatClient(base_url={self._bases.primary!r}, component_appid={self._component_appid!r})"

    @property
    def bases(self) -> Bases:
        return self._bases

    def __enter__(self) -> WeChatClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release pooled connections; a session passed in by the caller stays the caller's to close."""
        if self._owns_session:
            self._session.close()

    # --- component token and authorization (docs/wechat/flow.md#overview) --------------------------

    def api_component_token(self, *, component_verify_ticket: str) -> ComponentAccessToken:
        """The component access token, bought with the newest pushed ticket.

        Official: https://developers.weixin.qq.com/doc/oplatform/openApi/ticket-token/api_getcomponentaccesstoken
        See docs/wechat/endpoints.md#api_component_token
        """
        data = self._post(
            "/cgi-bin/component/api_component_token",
            payload={
                "component_appid": self._component_appid,
                "component_appsecret": self._component_appsecret,
                "component_verify_ticket": component_verify_ticket,
            },
        )
        return ComponentAccessToken.from_response(data)

    def api_create_preauthcode(self, *, component_access_token: str) -> PreAuthCode:
        """A single-use pre-authorization code for one consent link; trust its returned expires_in.

        Official: https://developers.weixin.qq.com/doc/oplatform/openApi/ticket-token/api_getpreauthcode
        See docs/wechat/endpoints.md#api_create_preauthcode
        """
        data = self._post(
            "/cgi-bin/component/api_create_preauthcode",
            query={_COMPONENT_TOKEN_PARAM: component_access_token},
            payload={"component_appid": self._component_appid},
        )
        return PreAuthCode.from_response(data)

    def api_query_auth(self, *, component_access_token: str, authorization_code: str) -> AuthorizationInfo:
        """The authorizer's tokens and granted permission sets, in exchange for an authorization code.

        Official: https://developers.weixin.qq.com/doc/oplatform/Third-party_Platforms/2.0/api/ThirdParty/token/authorization_info.html
        See docs/wechat/endpoints.md#api_query_auth
        """
        data = self._post(
            "/cgi-bin/component/api_query_auth",
            query={_COMPONENT_TOKEN_PARAM: component_access_token},
            payload={"component_appid": self._component_appid, "authorization_code": authorization_code},
        )
        return AuthorizationInfo.from_response(data)

    def api_authorizer_token(
        self, *, component_access_token: str, authorizer_appid: str, authorizer_refresh_token: str
    ) -> AuthorizerToken:
        """A fresh authorizer access token; a non-empty returned refresh token must be stored.

        Official: https://developers.weixin.qq.com/doc/oplatform/openApi/ticket-token/api_getauthorizeraccesstoken.html
        See docs/wechat/endpoints.md#api_authorizer_token
        """
        data = self._post(
            "/cgi-bin/component/api_authorizer_token",
            query={_COMPONENT_TOKEN_PARAM: component_access_token},
            payload={
                "component_appid": self._component_appid,
                "authorizer_appid": authorizer_appid,
                "authorizer_refresh_token": authorizer_refresh_token,
            },
        )
        return AuthorizerToken.from_response(data)

    # --- authorizer management (docs/wechat/lifecycle.md) -------------------------------------------

    def api_get_authorizer_info(self, *, component_access_token: str, authorizer_appid: str) -> AuthorizerInfo:
        """The authorizer's profile (kind, verification, status) and its current grant.

        Official: https://developers.weixin.qq.com/doc/oplatform/openApi/authorization-management/api_getauthorizerinfo
        See docs/wechat/endpoints.md#api_get_authorizer_info
        """
        data = self._post(
            "/cgi-bin/component/api_get_authorizer_info",
            query={_COMPONENT_TOKEN_PARAM: component_access_token},
            payload={"component_appid": self._component_appid, "authorizer_appid": authorizer_appid},
        )
        return AuthorizerInfo.from_response(data, requested_appid=authorizer_appid)

    def api_get_authorizer_list(
        self, *, component_access_token: str, offset: int = 0, count: int = _AUTHORIZER_LIST_MAX
    ) -> AuthorizerListPage:
        """One page (at most 500) of the accounts that authorize the platform, with their refresh tokens.

        Official: https://developers.weixin.qq.com/doc/oplatform/openApi/authorization-management/api_getauthorizerlist
        See docs/wechat/endpoints.md#api_get_authorizer_list
        """
        if offset < 0 or not 1 <= count <= _AUTHORIZER_LIST_MAX:
            raise ValueError(f"need offset >= 0 and 1 <= count <= {_AUTHORIZER_LIST_MAX}")
        data = self._post(
            "/cgi-bin/component/api_get_authorizer_list",
            query={_COMPONENT_TOKEN_PARAM: component_access_token},
            payload={"component_appid": self._component_appid, "offset": offset, "count": count},
        )
        return AuthorizerListPage.from_response(data)

    def api_start_push_ticket(self) -> None:
        """Ask WeChat to (re)start pushing component_verify_ticket; the ticket itself arrives as a push.

        Official: https://developers.weixin.qq.com/doc/oplatform/openApi/ticket-token/api_startpushticket.html
        See docs/wechat/endpoints.md#api_start_push_ticket
        """
        # The body field is component_secret here, unlike api_component_token's component_appsecret.
        self._post(
            "/cgi-bin/component/api_start_push_ticket",
            payload={"component_appid": self._component_appid, "component_secret": self._component_appsecret},
        )

    # --- calls on behalf of an authorizer (docs/wechat/flow.md#calling-on-behalf-of-an-authorizer) ---

    def openapi_quota_get(self, *, access_token: str, cgi_path: str) -> Quota:
        """The account's daily quota for `cgi_path`; `access_token` is the token of the API's own account.

        Official: https://developers.weixin.qq.com/doc/service/api/apimanage/api_getapiquota
        See docs/wechat/endpoints.md#openapi_quota_get
        """
        data = self._post(
            "/cgi-bin/openapi/quota/get", query={"access_token": access_token}, payload={"cgi_path": cgi_path}
        )
        return Quota.from_response(data)

    def openapi_rid_get(self, *, access_token: str, rid: str) -> RidInfo:
        """What WeChat saw of a failed call, by the rid of its errmsg, within 7 days; `access_token` is the
        token of the account that made the call.

        Official: https://developers.weixin.qq.com/doc/service/api/apimanage/api_getridinfo
        See docs/wechat/endpoints.md#openapi_rid_get
        """
        data = self._post("/cgi-bin/openapi/rid/get", query={"access_token": access_token}, payload={"rid": rid})
        return RidInfo.from_response(data)

    def clear_quota(self, *, access_token: str, appid: str) -> None:
        """Resets the daily call counts of the token's account `appid`; spends one of its 10 monthly clears
        (48006 once they are spent).

        Official: https://developers.weixin.qq.com/doc/service/openApi/clear_quota.html
        See docs/wechat/endpoints.md#clear_quota
        """
        self._post("/cgi-bin/clear_quota", query={"access_token": access_token}, payload={"appid": appid})

    def message_custom_send(self, *, access_token: str, touser: str, text: str) -> None:
        """A customer-service text message to a fan who wrote recently, with the authorizer token.

        Official: https://developers.weixin.qq.com/doc/service/api/customer/message/api_sendcustommessage
        See docs/wechat/endpoints.md#message_custom_send
        """
        self._post(
            "/cgi-bin/message/custom/send",
            query={"access_token": access_token},
            payload={"touser": touser, "msgtype": "text", "text": {"content": text}},
        )

    def draft_count(self, *, access_token: str) -> int:
        """The number of drafts in the account's draft box (GET, authorizer access token).

        Official: https://developers.weixin.qq.com/doc/service/api/draftbox/draftmanage/api_draft_count
        See docs/wechat/endpoints.md#draft_count
        """
        data = self._request("GET", "/cgi-bin/draft/count", query={"access_token": access_token}, payload=None)
        return required_int(data, "total_count")

    # --- any endpoint, unchanged (the gateway for the provider's services) ----------------------------

    def forward(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]],
        token_param: str,
        token: str,
        body: bytes | None,
        content_type: str | None,
    ) -> Forwarded:
        """Calls `path` with the caller's query and body as they are, adding the token as `token_param`;
        returns WeChat's answer unchanged. Transport failures raise TransportError, as every call does; what
        WeChat answered (any status, any errcode) is returned, never raised."""
        headers = {"Content-Type": content_type} if content_type else {}
        started = time.perf_counter()
        try:
            response = self._through_bases(
                method,
                path,
                params=[*query, (token_param, token)],
                data=body,
                headers=headers,
                stream=True,
            )
        except requests.RequestException as exc:
            if self._on_call is not None:
                self._on_call(path, "transport", time.perf_counter() - started)
            raise _transport_error(exc) from None
        answer_type = response.headers.get("Content-Type", "")
        length = response.headers.get("Content-Length")
        small = length is not None and length.isdigit() and int(length) <= FORWARD_BUFFER_LIMIT
        if small or "json" in answer_type or answer_type.startswith("text/"):
            try:
                content = response.raw.read(FORWARD_BUFFER_LIMIT + 1, decode_content=True)
            except (requests.RequestException, OSError, ValueError) as exc:
                response.close()
                raise TransportError(f"broken response: {type(exc).__name__}") from None
            if len(content) <= FORWARD_BUFFER_LIMIT:
                response.close()
                errcode = _errcode_of(content)
                if self._on_call is not None:
                    self._on_call(path, str(errcode or 0), time.perf_counter() - started)
                return Forwarded(response.status_code, answer_type, content, errcode=errcode)
            # A text answer larger than the buffer: what was read goes first, the rest streams.
            head: bytes | None = content
        else:
            head = None
        if self._on_call is not None:
            self._on_call(path, "0", time.perf_counter() - started)
        return Forwarded(
            response.status_code,
            answer_type,
            None,
            chunks=_stream(head, response),
            close=response.close,
        )

    # --- transport ---------------------------------------------------------------------------------

    def _post(self, path: str, *, payload: dict[str, Any], query: dict[str, str] | None = None) -> dict[str, Any]:
        return self._request("POST", path, query=query, payload=payload)

    def _request(
        self, method: str, path: str, *, query: dict[str, str] | None, payload: dict[str, Any] | None
    ) -> dict[str, Any]:
        if self._on_call is None and self._on_error is None:
            return self._send(method, path, query=query, payload=payload)
        started = time.perf_counter()
        outcome = "error"
        try:
            data = self._send(method, path, query=query, payload=payload)
            outcome = "0"
            return data
        except WeChatError as exc:
            outcome = call_outcome(exc)
            if self._on_error is not None:
                self._on_error(path, exc)
            raise
        finally:
            if self._on_call is not None:
                self._on_call(path, outcome, time.perf_counter() - started)

    def _send(
        self, method: str, path: str, *, query: dict[str, str] | None, payload: dict[str, Any] | None
    ) -> dict[str, Any]:
        try:
            response = self._through_bases(method, path, params=query, json=payload)
            body = response.content
        except requests.RequestException as exc:
            # requests' messages embed the URL, and the URL carries the token: describe, never quote.
            raise _transport_error(exc) from None
        return parse_body(response.status_code, body)

    def _through_bases(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """The request sent to the first base that takes a connection (wxplatform/wechat/bases.py). A GET moves
        on after any connection failure or timeout; any other method only when the request was never sent (no
        connection made), since WeChat may have executed a request whose answer was lost."""
        failure: requests.RequestException | None = None
        for base in self._bases.order():
            try:
                response = self._session.request(
                    method, base + path, timeout=self._timeout, allow_redirects=False, **kwargs
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                if not (method == "GET" or _never_sent(exc)):
                    raise
                self._bases.failed(base)
                failure = exc
                continue
            self._bases.succeeded(base)
            return response
        assert failure is not None
        raise failure


def _never_sent(exc: requests.RequestException) -> bool:
    """The connection was never made (refused, unreachable, unresolved, connect timeout): nothing reached WeChat."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    return isinstance(reason, MaxRetryError) and isinstance(reason.reason, NewConnectionError)


def call_outcome(error: WeChatError | None) -> str:
    """A short, bounded label for how a call ended, for counting: "0", the errcode, or a transport kind
    ("timeout", "connection", "http_502", "malformed", "broken_response", "transport")."""
    if error is None:
        return "0"
    if error.errcode is not None:
        return str(error.errcode)
    # Transport reasons are built in this package (client.py, bulk.py, http.py), so their wording is known.
    status = getattr(error, "status", None)
    reason = error.errmsg
    if reason == MALFORMED:
        return "malformed"
    if status is not None and reason.startswith("HTTP "):
        return f"http_{status}"
    for kind in ("timeout", "connection", "broken response"):
        if kind in reason:
            return kind.replace(" ", "_")
    return "transport"


def _errcode_of(content: bytes) -> int | None:
    """WeChat's non-zero errcode in a JSON object body, else None (media and successes carry none)."""
    if not content.lstrip().startswith(b"{"):
        return None
    try:
        data = json.loads(content)
    except ValueError:
        return None
    errcode = data.get("errcode") if isinstance(data, dict) else None
    return errcode if isinstance(errcode, int) and not isinstance(errcode, bool) and errcode != 0 else None


def _stream(head: bytes | None, response: requests.Response) -> Iterator[bytes]:
    if head:
        yield head
    try:
        yield from response.raw.stream(_CHUNK, decode_content=True)
    finally:
        response.close()


def _pooled_session(pool_maxsize: int) -> requests.Session:
    # Retry only failures to establish a connection: those never carried the request. A read error or
    # a 5xx may follow a request WeChat already executed (a token refresh invalidates the previous token).
    retry = Retry(
        total=None,
        connect=2,
        read=False,
        status=0,
        other=0,
        redirect=False,
        backoff_factor=0.1,
        respect_retry_after_header=False,
    )
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_maxsize, max_retries=retry)
    session = requests.Session()
    # WECHAT_HTTP_PROXY is the one way out (docs/reference.md), as for the aiohttp fan-out: the environment's
    # HTTP(S)_PROXY, NO_PROXY and .netrc are not consulted, which requests would otherwise do on every call by
    # walking the whole environment (a fifth of the gateway's own forwarding cost, bench/bench_gateway.py).
    session.trust_env = False
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _transport_error(exc: requests.RequestException) -> TransportError:
    # ConnectTimeout is also a ConnectionError, so the timeouts are tested first.
    if isinstance(exc, requests.ConnectTimeout):
        return TransportError("connect timeout")
    if isinstance(exc, requests.ReadTimeout):
        return TransportError("read timeout")
    if isinstance(exc, requests.Timeout):
        return TransportError("timeout")
    if isinstance(exc, requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError):
        label = "broken response"
    elif isinstance(exc, requests.ConnectionError):
        label = "connection error"
    else:
        label = f"request failed ({type(exc).__name__})"
    cause = _root_cause(exc)
    return TransportError(f"{label}: {cause}" if cause else label)


def _root_cause(exc: BaseException) -> str:
    """The OS-level reason under a requests/urllib3 exception ("Connection refused"), which holds no URL."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    innermost = ""
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        if current is not exc:
            innermost = type(current).__name__
        linked = [getattr(current, "reason", None), current.__cause__, current.__context__, *current.args]
        pending.extend(item for item in linked if isinstance(item, BaseException))
    return innermost
