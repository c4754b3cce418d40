"""The sandbox's HTTP face: WeChat's endpoints, its authorization pages, and the /sandbox/ control API.

WeChat answers nearly everything with HTTP 200 and `{"errcode": N, "errmsg": "… rid: …"}` (docs/wechat/errors.md), and
so
does this app, for garbage too: two middlewares make sure no request ends in a bare 500 or an HTML 404. All
state changes go through `SandboxState` on the event loop thread; pushes to the platform's event URL run as
background tasks of the same loop. Several components (third-party platforms) share the one base URL; the routing
middleware picks each request's (components.py).
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from aiohttp import web
from yarl import URL

from wxsandbox.components import Component, Components
from wxsandbox.config import SandboxConfig
from wxsandbox.persistence import Saver
from wxsandbox.pushes import Pusher
from wxsandbox.release import run_release_test
from wxsandbox.ridlog import RidRecord, cut
from wxsandbox.state import (
    CLASSIC_KINDS,
    COMPONENT,
    CUSTOM_SEND_PATH,
    DRAFT_COUNT_PATH,
    ERRMSG,
    FREEPUBLISH_SUBMIT_PATH,
    MASS_SENDALL_PATH,
    OFFICIAL_ACCOUNT_KINDS,
    RELEASE_TEST_OFFICIAL_ACCOUNTS,
    VERIFY_TYPES,
    Clock,
    ControlError,
    Counters,
    DraftJob,
    FaultPlan,
    SandboxState,
    WeChatFault,
)

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

RID_GET_PATH = "/cgi-bin/openapi/rid/get"
QUOTA_GET_PATH = "/cgi-bin/openapi/quota/get"
CLEAR_QUOTA_PATH = "/cgi-bin/clear_quota"
COMPONENT_CLEAR_QUOTA_PATH = f"{COMPONENT}/clear_quota/v2"
API_PATHS = frozenset(
    {
        f"{COMPONENT}/api_component_token",
        f"{COMPONENT}/api_create_preauthcode",
        f"{COMPONENT}/api_query_auth",
        f"{COMPONENT}/api_authorizer_token",
        f"{COMPONENT}/api_get_authorizer_info",
        f"{COMPONENT}/api_get_authorizer_list",
        f"{COMPONENT}/api_start_push_ticket",
        COMPONENT_CLEAR_QUOTA_PATH,
        QUOTA_GET_PATH,
        RID_GET_PATH,
        CLEAR_QUOTA_PATH,
        CUSTOM_SEND_PATH,
        DRAFT_COUNT_PATH,
        FREEPUBLISH_SUBMIT_PATH,
        MASS_SENDALL_PATH,
    }
)
# Component calls that carry no token: their rids belong to the component.
TOKENLESS_COMPONENT_PATHS = frozenset(
    {f"{COMPONENT}/api_component_token", f"{COMPONENT}/api_start_push_ticket", COMPONENT_CLEAR_QUOTA_PATH}
)
# PC page on mp.weixin.qq.com and the two mobile pages in circulation
# (docs/wechat/endpoints.md#authorization-page-links).
PAGE_PATHS = ("/cgi-bin/componentloginpage", "/safe/bindcomponent", "/wxaopen/safe/bindcomponent")
# Counter key for calls to paths WeChat does not have.
UNKNOWN_PATH = "*"

# Every component; STATE and PUSHER are the default one's (the demo seeds its accounts there).
COMPONENTS = web.AppKey("components", Components)
STATE = web.AppKey("state", SandboxState)
PUSHER = web.AppKey("pusher", Pusher)
SAVER = web.AppKey("saver", Saver)
# The component a request belongs to (components.py says how it is found).
ROUTED = web.RequestKey("component", Component)
# Set on WeChat answers: their errcode (for the counters) and, on errors, the rid in their errmsg.
ERRCODE = web.ResponseKey("errcode", int)
RID = web.ResponseKey("rid", str)

# Permission sets offered on the consent page (docs/wechat/permissions.md); the merchant ticks the ones to grant.
FUNC_CATALOG: dict[int, str] = {
    1: "消息管理",
    2: "用户管理",
    3: "账号服务",
    4: "网页服务",
    7: "群发与通知",
    11: "素材管理",
    15: "菜单管理",
    89: "服务号订阅通知",
    100: "未公开权限集100",
}
# verify_type_info ids in words (docs/wechat/permissions.md#verify_type_info), Chinese as WeChat's own pages
# write them, the id after: the consent page's new-account form shows these, never a bare number. WeChat's
# third-party page lists -1, 0, 1, 3 and 4; 2 and 5 are the older Official Account pages' Tencent Weibo kinds.
VERIFY_TYPE_LABELS: dict[int, str] = {
    -1: "未认证",
    0: "微信认证",
    1: "新浪微博认证",
    2: "腾讯微博认证",
    3: "资质认证通过、名称未认证",
    4: "资质认证通过、名称未认证、新浪微博认证",
    5: "资质认证通过、名称未认证、腾讯微博认证",
}
KIND_LABELS = {
    "subscription": "订阅号",
    "service": "服务号",
    "mini_program": "小程序",
    "channels": "视频号",
    "store": "微信小店",
    "talent": "带货助手",
    "supplier": "供货商",
}


# --- responses ---------------------------------------------------------------------------------------


def _rid() -> str:
    # Same shape as WeChat's request ids, e.g. "606d52e0-101a945b-1de9c138".
    raw = os.urandom(12).hex()
    return f"{raw[:8]}-{raw[8:16]}-{raw[16:]}"


def wx_json(payload: dict[str, Any]) -> web.Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    # WeChat's own (odd) content type: clients must not insist on "charset=".
    response = web.Response(body=body, headers={"Content-Type": "application/json; encoding=utf-8"})
    errcode = payload.get("errcode", 0)
    response[ERRCODE] = errcode if isinstance(errcode, int) else 0
    return response


def wx_error(errcode: int, errmsg: str | None = None) -> web.Response:
    fault = WeChatFault(errcode, errmsg)
    rid = _rid()
    response = wx_json({"errcode": errcode, "errmsg": f"{fault.errmsg} rid: {rid}"})
    response[RID] = rid
    return response


def control_json(payload: Any, status: int = 200) -> web.Response:
    return web.json_response(payload, status=status, dumps=lambda obj: json.dumps(obj, ensure_ascii=False))


# --- middlewares -------------------------------------------------------------------------------------


def _is_wechat_api(path: str) -> bool:
    return not path.startswith("/sandbox/") and path != "/sandbox" and path not in PAGE_PATHS


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Whatever goes wrong, the answer is JSON (WeChat-style for WeChat paths), never a bare 500."""
    control = request.path.startswith("/sandbox/")
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if control:
            return control_json({"error": exc.reason}, status=exc.status)
        # aiohttp raises 413 once a body exceeds client_max_size.
        return wx_error(45002 if exc.status == 413 else 40066 if exc.status == 404 else 47001)
    except ControlError as exc:
        return control_json({"error": exc.message}, status=exc.status)
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.exception("sandbox handler failed for %s %s", request.method, request.path)
        if control:
            return control_json({"error": "sandbox internal error (see its log)"}, status=500)
        return wx_error(-1)


def _state(request: web.Request) -> SandboxState:
    return request[ROUTED].state


def _pusher(request: web.Request) -> Pusher:
    return request[ROUTED].pusher


async def _named_component_appid(request: web.Request) -> str | None:
    """The component_appid a tokenless request names: in the JSON body of an API call, in the query or the
    form of an authorization page. A body that cannot be read is left to the handler to refuse."""
    if request.path in PAGE_PATHS:
        if request.method == "POST":
            value = (await request.post()).get("component_appid")
        else:
            value = request.query.get("component_appid")
        return value if isinstance(value, str) else None
    length = request.content_length
    # A body over the limit, or of unknown length, is not read here: the handler answers 45002 for it.
    if request.method != "POST" or length is None or length > request.app[STATE].config.max_body_bytes:
        return None
    try:
        data = json.loads(await request.read())
    except (ValueError, RecursionError):
        return None
    value = data.get("component_appid") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


@web.middleware
async def routing_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Finds the component the request is for (components.py): ?component= on control calls; the token, the
    body's or the page's component_appid on WeChat's."""
    components = request.app[COMPONENTS]
    control = request.path.startswith("/sandbox/")
    if control:
        component = components.addressed(request.query.get("component"))
    else:
        found = components.issuer_of(_component_token(request))
        if found is None:
            found = components.get(await _named_component_appid(request))
        component = found or components.default
    request[ROUTED] = component
    # Anything but a read may change the state (draft/count spends quota): the state file is due a write.
    if request.method != "GET" or not control:
        component.state.version += 1
    return await handler(request)


@web.middleware
async def wechat_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Latency, fault injection and counters for the WeChat API paths."""
    path = request.path
    if not _is_wechat_api(path):
        return await handler(request)
    state = _state(request)
    key = path if path in API_PATHS else UNKNOWN_PATH
    started = time.monotonic()
    delay = state.latency_for(key)
    if delay > 0:
        await asyncio.sleep(delay)
    response: web.StreamResponse | None = None
    outcome: int | str | None = None
    plan = state.faults
    if plan is not None:
        fault = plan.pick(key)
        if fault is not None:
            state.counters.fault(fault)
            if fault == "timeout":
                # Hold the connection like a stuck WeChat front end, then answer normally.
                await asyncio.sleep(plan.timeout_seconds)
            else:
                response, outcome = _fault_response(fault, request), fault
    if response is None:
        try:
            response = await handler(request)
        except WeChatFault as exc:
            response = wx_error(exc.errcode, exc.errmsg)
        outcome = response.get(ERRCODE)
    state.counters.record(key, outcome)
    rid = response.get(RID)
    if rid is not None and isinstance(response, web.Response):
        await _remember_rid(request, state, key, rid, response, started)
    return response


async def _remember_rid(
    request: web.Request, state: SandboxState, key: str, rid: str, response: web.Response, started: float
) -> None:
    """Keep the call behind an error's rid for openapi/rid/get: only error answers pay for this."""
    raw = b""
    # A body refused for its size (45002) is not read again.
    if request.body_exists and response.get(ERRCODE) != 45002:
        try:
            raw = await request.read()
        except web.HTTPException:
            raw = b""
    owner = state.token_owner(request.query.get("access_token") or request.query.get("component_access_token"))
    if owner is None and key in TOKENLESS_COMPONENT_PATHS:
        owner = state.config.component_appid
    body = response.body if isinstance(response.body, bytes) else b""
    state.record_rid(
        RidRecord(
            rid=rid,
            owner=owner,
            invoke_time=int(state.clock()),
            cost_in_ms=round((time.monotonic() - started) * 1000),
            request_url=cut(request.query_string),
            request_body=cut(raw.decode("utf-8", "replace")),
            response_body=cut(body.decode("utf-8", "replace")),
            client_ip=request.remote or "",
            path=request.path,
        )
    )


def _fault_response(fault: int | str, request: web.Request) -> web.Response:
    if isinstance(fault, int) and fault == 61004:
        # WeChat names the address it saw, for the operator to add to the platform's whitelist
        # (docs/wechat/flow.md#ip-whitelist): "access clientip is not registered requestIP: 1.2.3.4 rid: …".
        return wx_error(fault, f"{ERRMSG[fault]} requestIP: {request.remote or 'unknown'}")
    if isinstance(fault, int):
        return wx_error(fault)
    if fault.startswith("http_"):
        status = int(fault.removeprefix("http_"))
        return web.Response(
            status=status, text=f"<html><body><h1>{status}</h1></body></html>", content_type="text/html"
        )
    # "malformed": a body cut short, as from a proxy that dropped the connection mid-answer.
    return web.Response(text='{"errcode":0,"errms', content_type="application/json")


# --- request helpers ---------------------------------------------------------------------------------


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.method != "POST":
        raise WeChatFault(43002)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise WeChatFault(45002) from None
    if not raw.strip():
        raise WeChatFault(44002)
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise WeChatFault(47001) from None
    if not isinstance(data, dict):
        raise WeChatFault(47001)
    return data


def _str(data: dict[str, Any], name: str, *, missing: int = 47001) -> str:
    value = data.get(name)
    if value is None:
        raise WeChatFault(missing)
    if not isinstance(value, str):
        raise WeChatFault(47001)
    return value


def _optional_str(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise WeChatFault(47001)
    return value


def _parse_int(text: str) -> int | None:
    # str.isdigit() also accepts digits such as "²" that int() refuses, so parse and catch instead.
    try:
        return int(text.strip(), 10) if text.strip().isascii() else None
    except ValueError:
        return None


def _int(data: dict[str, Any], name: str, default: int) -> int:
    value = data.get(name, default)
    # WeChat accepts numbers sent as strings; anything else is a format error.
    if isinstance(value, str):
        value = _parse_int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise WeChatFault(47001)
    return value


def _component_token(request: web.Request) -> str | None:
    # Legacy docs spell it component_access_token, newer pages access_token (docs/wechat/endpoints.md): both are
    # accepted.
    return request.query.get("component_access_token") or request.query.get("access_token")


# --- WeChat endpoints --------------------------------------------------------------------------------


async def api_component_token(request: web.Request) -> web.Response:
    data = await _json_body(request)
    state = _state(request)
    return wx_json(
        state.component_access_token(
            _optional_str(data, "component_appid"),
            _optional_str(data, "component_appsecret"),
            _optional_str(data, "component_verify_ticket"),
        )
    )


async def api_create_preauthcode(request: web.Request) -> web.Response:
    token = _component_token(request)
    data = await _json_body(request)
    return wx_json(_state(request).create_pre_auth_code(token, _optional_str(data, "component_appid")))


async def api_query_auth(request: web.Request) -> web.Response:
    token = _component_token(request)
    data = await _json_body(request)
    return wx_json(
        _state(request).query_auth(token, _optional_str(data, "component_appid"), _str(data, "authorization_code"))
    )


async def api_authorizer_token(request: web.Request) -> web.Response:
    token = _component_token(request)
    data = await _json_body(request)
    return wx_json(
        _state(request).authorizer_token(
            token,
            _optional_str(data, "component_appid"),
            _str(data, "authorizer_appid"),
            _str(data, "authorizer_refresh_token"),
        )
    )


async def api_get_authorizer_info(request: web.Request) -> web.Response:
    token = _component_token(request)
    data = await _json_body(request)
    return wx_json(
        _state(request).authorizer_info(token, _optional_str(data, "component_appid"), _str(data, "authorizer_appid"))
    )


async def api_get_authorizer_list(request: web.Request) -> web.Response:
    token = _component_token(request)
    data = await _json_body(request)
    return wx_json(
        _state(request).authorizer_list(
            token, _optional_str(data, "component_appid"), _int(data, "offset", 0), _int(data, "count", 500)
        )
    )


async def api_start_push_ticket(request: web.Request) -> web.Response:
    data = await _json_body(request)
    state = _state(request)
    # Note the field name: component_secret, not component_appsecret (docs/wechat/flow.md#ticket-timing).
    state.start_push_ticket(_optional_str(data, "component_appid"), _optional_str(data, "component_secret"))
    _pusher(request).push_soon(state.issue_ticket())
    return wx_json({"errcode": 0, "errmsg": "ok"})


async def quota_get(request: web.Request) -> web.Response:
    # The authorizer's token for an account's APIs, the component's for the component's own
    # (docs/wechat/endpoints.md#openapi_quota_get).
    token = _component_token(request)
    data = await _json_body(request)
    return wx_json(_state(request).quota_get(token, _str(data, "cgi_path")))


async def rid_get(request: web.Request) -> web.Response:
    token = _component_token(request)
    data = await _json_body(request)
    # A missing rid is "rid is error" (76002), not a format error.
    return wx_json(_state(request).rid_get(token, _optional_str(data, "rid")))


async def clear_quota(request: web.Request) -> web.Response:
    token = _component_token(request)
    data = await _json_body(request)
    return wx_json(_state(request).clear_quota(token, _optional_str(data, "appid")))


async def component_clear_quota(request: web.Request) -> web.Response:
    # No token: the component's secret stands in for it, for when the tokens themselves are spent
    # (docs/wechat/quota.md).
    data = await _json_body(request)
    return wx_json(
        _state(request).clear_quota_v2(
            _optional_str(data, "component_appid"), _optional_str(data, "appsecret"), _optional_str(data, "appid")
        )
    )


async def custom_send(request: web.Request) -> web.Response:
    token = request.query.get("access_token")
    data = await _json_body(request)
    return wx_json(_state(request).custom_send(token, data))


async def draft_count(request: web.Request) -> web.Response:
    if request.method != "GET":
        raise WeChatFault(43001)
    return wx_json(_state(request).draft_count(request.query.get("access_token")))


def _finish_later(request: web.Request, job: DraftJob, delay: float | None = None) -> asyncio.Task[dict[str, Any]]:
    """The job's end event, pushed to the message URL after the configured delay (docs/wechat/draft-events.md)."""
    state = _state(request)
    wait = state.config.draft_event_delay if delay is None else delay
    return _pusher(request).send_message_later(job.appid, job.event, wait)


async def freepublish_submit(request: web.Request) -> web.Response:
    if request.method != "POST":
        raise WeChatFault(43002)
    data = await _json_body(request)
    answer, job = _state(request).freepublish_submit(request.query.get("access_token"), data)
    _finish_later(request, job)
    return wx_json(answer)


async def mass_sendall(request: web.Request) -> web.Response:
    if request.method != "POST":
        raise WeChatFault(43002)
    data = await _json_body(request)
    answer, job = _state(request).mass_sendall(request.query.get("access_token"), data)
    _finish_later(request, job)
    return wx_json(answer)


async def unknown_api(request: web.Request) -> web.Response:
    return wx_error(40066)


# --- authorization pages (docs/wechat/endpoints.md#authorization-page-links)
# -----------------------------------------------------------------------

_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:40em;margin:2em auto}}fieldset{{margin:1em 0}}
label{{display:block;margin:.3em 0}}#wx-error{{color:#c00}}</style></head>
<body><h1>{title}</h1>{body}</body></html>"""


def _page(title: str, body: str, status: int = 200) -> web.Response:
    return web.Response(text=_PAGE.format(title=html.escape(title), body=body), content_type="text/html", status=status)


def _error_page(message: str, reason: str) -> web.Response:
    # WeChat shows its refusals as ordinary pages; the stable id lets browser tests find the reason.
    body = f'<p id="wx-error" data-reason="{html.escape(reason)}">{html.escape(message)}</p>'
    return _page("授权失败", body)


def _check_link(state: SandboxState, params: Mapping[str, str]) -> tuple[web.Response | None, int | None]:
    """Validates the link parameters shared by the page and its form; returns (error page, auth_type)."""
    if params.get("component_appid", "") != state.config.component_appid:
        return _error_page("第三方平台 component_appid 无效", "component_appid"), None
    redirect_uri = params.get("redirect_uri", "")
    if not redirect_uri.startswith(("http://", "https://")):
        return _error_page("redirect_uri 无效", "redirect_uri"), None
    raw_auth_type = params.get("auth_type", "") or "3"
    auth_type = _parse_int(raw_auth_type)
    if auth_type is None:
        return _error_page("auth_type 无效", "auth_type"), None
    try:
        state.check_pre_auth_code(params.get("pre_auth_code"))
    except ControlError as exc:
        return _error_page(f"授权链接已失效: {exc.message}", "pre_auth_code"), None
    return None, auth_type


def _eligible(kind: str, auth_type: int) -> bool:
    if auth_type == 1:
        return kind in OFFICIAL_ACCOUNT_KINDS
    if auth_type == 2:
        return kind == "mini_program"
    return True


async def authorization_page(request: web.Request) -> web.StreamResponse:
    if request.method == "POST":
        return await _consent_submit(request)
    state = _state(request)
    # The platform must link here from its own page; a bare server redirect carries no Referer
    # (docs/wechat/endpoints.md#authorization-page-links).
    if not request.headers.get("Referer"):
        # WeChat's exact wording, fullwidth colon included.
        return _error_page("授权入口页所在域名：空", "referer")  # noqa: RUF001
    error, auth_type = _check_link(state, request.query)
    if error is not None or auth_type is None:
        return error or _error_page("参数错误", "params")
    q = request.query
    biz_appid = q.get("biz_appid", "")
    accounts = [
        a
        for a in state.authorizers.values()
        # WeChat's own release-test accounts are not the merchant's to pick.
        if not a.test_account and _eligible(a.kind, auth_type) and (not biz_appid or a.appid == biz_appid)
    ]
    options = ['<option value="__new__" data-func-ids="1,11">创建新的沙箱账号</option>']
    for account in accounts:
        state_label = "已授权" if account.authorized else "未授权"
        label = f"{account.nickname} ({KIND_LABELS[account.kind]}, {account.appid}, {state_label})"
        selected = " selected" if biz_appid == account.appid else ""
        funcs = ",".join(str(f) for f in account.func_ids)
        options.append(
            f'<option value="{html.escape(account.appid)}" data-func-ids="{funcs}"{selected}>'
            f"{html.escape(label)}</option>"
        )
    kinds = [k for k in CLASSIC_KINDS if _eligible(k, auth_type)]
    kind_options = "".join(
        f'<option value="{k}"{" selected" if k == "service" else ""}>{KIND_LABELS[k]}</option>' for k in kinds
    )
    verify_options = "".join(
        f'<option value="{v}"{" selected" if v == 0 else ""}>{VERIFY_TYPE_LABELS.get(v, "认证类型")} ({v})</option>'
        for v in sorted(VERIFY_TYPES)
    )
    initial_funcs = {1, 11}
    if biz_appid and accounts:
        initial_funcs = set(accounts[0].func_ids)
    catalog = dict(FUNC_CATALOG)
    for account in accounts:
        for func_id in account.func_ids:
            catalog.setdefault(func_id, f"权限集{func_id}")
    checkboxes = "".join(
        f'<label><input type="checkbox" name="func_id" id="func-{i}" value="{i}"'
        f"{' checked' if i in initial_funcs else ''}> {i} {html.escape(name)}</label>"
        for i, name in sorted(catalog.items())
    )
    hidden = "".join(
        f'<input type="hidden" name="{name}" value="{html.escape(q.get(name, ""))}">'
        for name in ("component_appid", "pre_auth_code", "redirect_uri", "auth_type", "biz_appid")
    )
    body = f"""
<p>第三方平台 <b>{html.escape(state.config.component_appid)}</b> 请求获得你的账号授权。</p>
<form method="post" action="{html.escape(request.path)}" id="consent-form">{hidden}
<fieldset><legend>选择要授权的账号</legend>
<select name="authorizer_appid" id="authorizer_appid">{"".join(options)}</select></fieldset>
<fieldset id="new-account"><legend>新账号 (选择"创建新的沙箱账号"时使用)</legend>
<label>名称 <input name="new_nickname" id="new-nickname" value=""></label>
<label>类型 <select name="new_kind" id="new-kind">{kind_options}</select></label>
<label>认证类型 <select name="new_verify_type" id="new-verify-type">{verify_options}</select></label>
<label>草稿数 <input name="new_draft_count" id="new-draft-count" type="number" min="0" value="3"></label>
</fieldset>
<fieldset><legend>授权权限集</legend>{checkboxes}</fieldset>
<button type="submit" name="action" value="agree" id="agree">同意授权</button>
</form>
<script>
// Tick the chosen account's current permission sets, as WeChat's page does.
document.getElementById("authorizer_appid").addEventListener("change", function (e) {{
  var ids = e.target.selectedOptions[0].dataset.funcIds.split(",");
  document.querySelectorAll("input[name=func_id]").forEach(function (box) {{
    box.checked = ids.indexOf(box.value) >= 0;
  }});
}});
</script>"""
    return _page("公众号授权", body)


async def _consent_submit(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    form = await request.post()
    params = {k: v for k, v in form.items() if isinstance(v, str)}
    error, auth_type = _check_link(state, params)
    if error is not None or auth_type is None:
        return error or _error_page("参数错误", "params")
    try:
        func_ids = [int(v) for v in form.getall("func_id", []) if isinstance(v, str)]
    except ValueError:
        return _error_page("权限集无效", "func_id")
    appid = params.get("authorizer_appid", "__new__") or "__new__"
    biz_appid = params.get("biz_appid") or None
    if biz_appid and appid != biz_appid:
        return _error_page(f"该授权链接仅限账号 {biz_appid}", "biz_appid")
    try:
        if appid == "__new__":
            kind = params.get("new_kind", "service")
            if not _eligible(kind, auth_type):
                return _error_page("该授权链接不支持此类账号", "kind")
            verify_type = _parse_int(params.get("new_verify_type", "0"))
            draft_count = _parse_int(params.get("new_draft_count", "0") or "0")
            if verify_type is None or draft_count is None:
                return _error_page("认证类型或草稿数无效", "new_account")
            account = state.create_authorizer(
                nickname=params.get("new_nickname") or None,
                kind=kind,
                verify_type=verify_type,
                draft_count=draft_count,
                func_ids=func_ids,
                authorized=False,
            )
            appid = account.appid
        consent = state.consent(
            pre_auth_code=params.get("pre_auth_code"),
            authorizer_appid=appid,
            func_ids=func_ids,
            auth_type=auth_type,
            biz_appid=biz_appid,
        )
    except ControlError as exc:
        return _error_page(exc.message, "consent")
    # Like WeChat, the push and the browser redirect race each other; platforms must handle either order.
    _pusher(request).push_soon(consent.event)
    target = URL(params["redirect_uri"]).extend_query(auth_code=consent.auth_code, expires_in=consent.expires_in)
    raise web.HTTPFound(location=str(target))


# --- control API -------------------------------------------------------------------------------------


async def _control_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise ControlError(400, "body is not JSON") from None
    if not isinstance(data, dict):
        raise ControlError(400, "body must be a JSON object")
    return data


def _only(data: dict[str, Any], allowed: set[str]) -> dict[str, Any]:
    unknown = set(data) - allowed
    if unknown:
        raise ControlError(400, f"unknown fields {sorted(unknown)}; allowed: {sorted(allowed)}")
    return data


def _bool(data: dict[str, Any], name: str, default: bool) -> bool:
    value = data.get(name, default)
    if not isinstance(value, bool):
        raise ControlError(400, f"{name} must be true or false")
    return value


def _opt_list(data: dict[str, Any], name: str) -> list[Any] | None:
    value = data.get(name)
    if value is not None and not isinstance(value, list):
        raise ControlError(400, f"{name} must be a list")
    return value


def _opt_text(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise ControlError(400, f"{name} must be a string")
    return value


def _number(data: dict[str, Any], name: str, default: float | None = None) -> float:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ControlError(400, f"{name} must be a non-negative number")
    return float(value)


async def control_health(request: web.Request) -> web.Response:
    return control_json({"ok": True})


async def control_reset(request: web.Request) -> web.Response:
    await request.app[COMPONENTS].reset()
    saver = request.app.get(SAVER)
    if saver is not None:
        await saver.reset()
    return control_json({"ok": True})


async def control_config(request: web.Request) -> web.Response:
    state = _state(request)
    if request.method == "PATCH":
        before = state.config.ticket_interval
        state.update_config(await _control_body(request))
        if state.config.ticket_interval != before:
            _pusher(request).restart_ticket_loop()
    return control_json(state.config.to_dict())


async def control_latency(request: web.Request) -> web.Response:
    state = _state(request)
    data = _only(await _control_body(request), {"seconds", "endpoint"})
    state.set_latency(_number(data, "seconds"), _opt_text(data, "endpoint"))
    return control_json({"latency": state.config.latency, "endpoint_latency": state.config.endpoint_latency})


async def control_faults(request: web.Request) -> web.Response:
    state = _state(request)
    if request.method == "DELETE":
        state.set_faults(None)
    elif request.method == "PUT":
        data = _only(
            await _control_body(request), {"rate", "kinds", "endpoints", "seed", "max_faults", "timeout_seconds"}
        )
        kinds = _opt_list(data, "kinds")
        endpoints = _opt_list(data, "endpoints")
        seed, max_faults = data.get("seed"), data.get("max_faults")
        for name, value in (("seed", seed), ("max_faults", max_faults)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise ControlError(400, f"{name} must be an integer")
        if endpoints is not None and not all(isinstance(e, str) for e in endpoints):
            raise ControlError(400, "endpoints must be paths")
        state.set_faults(
            FaultPlan(
                rate=_number(data, "rate"),
                kinds=kinds or [],
                endpoints=endpoints,
                seed=seed,
                max_faults=max_faults,
                timeout_seconds=_number(data, "timeout_seconds", 30.0),
            )
        )
    return control_json({"faults": state.faults.describe() if state.faults is not None else None})


async def control_counters(request: web.Request) -> web.Response:
    state = _state(request)
    if request.method == "DELETE":
        state.counters = Counters()
    return control_json(state.counters.snapshot())


def _merge_counts(total: dict[str, int], counts: dict[str, int]) -> None:
    for key, value in counts.items():
        total[key] = total.get(key, 0) + value


async def control_counters_total(request: web.Request) -> web.Response:
    """Every component's counters and their sum (same shape as GET /sandbox/counters)."""
    registry = request.app[COMPONENTS]
    components = list(registry)
    if request.method == "DELETE":
        for component in components:
            component.state.counters = Counters()
    snapshots = {c.appid: c.state.counters.snapshot() for c in components}
    total: dict[str, Any] = {
        "endpoints": {},
        "faults_injected": {},
        "draft_count_calls": {},
        "authorizer_token_calls": {},
    }
    for snapshot in snapshots.values():
        for path, entry in snapshot["endpoints"].items():
            summed = total["endpoints"].setdefault(path, {"calls": 0, "ok": 0, "errors": {}})
            summed["calls"] += entry["calls"]
            summed["ok"] += entry["ok"]
            _merge_counts(summed["errors"], entry["errors"])
        for name in ("faults_injected", "draft_count_calls", "authorizer_token_calls"):
            _merge_counts(total[name], snapshot[name])
    return control_json({"total": total, "components": snapshots})


async def control_components(request: web.Request) -> web.Response:
    components = request.app[COMPONENTS]
    if request.method == "POST":
        component = components.add(await _control_body(request))
        # The server is running: the new component's pushes (and its scheduled tickets) start now.
        await component.pusher.start()
        return control_json(component.view(default=False), status=201)
    return control_json({"components": components.views()})


async def control_pushes(request: web.Request) -> web.Response:
    return control_json({"pushes": _state(request).pushes})


async def control_ticket(request: web.Request) -> web.Response:
    state = _state(request)
    ticket = state.current_ticket
    return control_json({"ticket": ticket, "issued_at": state.tickets.get(ticket) if ticket else None})


async def control_push_ticket(request: web.Request) -> web.Response:
    state = _state(request)
    fields = state.issue_ticket()
    attempt = await _pusher(request).push(fields)
    return control_json({"ticket": fields["ComponentVerifyTicket"], "push": attempt})


async def control_expire_component_token(request: web.Request) -> web.Response:
    return control_json({"expired": _state(request).expire_component_tokens()})


async def control_reset_quotas(request: web.Request) -> web.Response:
    _state(request).reset_quotas()
    return control_json({"ok": True})


async def control_consent(request: web.Request) -> web.Response:
    state = _state(request)
    data = _only(
        await _control_body(request),
        {"pre_auth_code", "authorizer_appid", "func_ids", "redirect_uri", "auth_type", "push"},
    )
    appid = _opt_text(data, "authorizer_appid")
    if not appid:
        raise ControlError(400, "authorizer_appid is required")
    auth_type = data.get("auth_type")
    if auth_type is not None and (not isinstance(auth_type, int) or isinstance(auth_type, bool)):
        raise ControlError(400, "auth_type must be an integer")
    redirect_uri = _opt_text(data, "redirect_uri")
    consent = state.consent(
        pre_auth_code=_opt_text(data, "pre_auth_code"),
        authorizer_appid=appid,
        func_ids=_opt_list(data, "func_ids"),
        auth_type=auth_type,
    )
    redirect_url = None
    if redirect_uri:
        redirect_url = str(URL(redirect_uri).extend_query(auth_code=consent.auth_code, expires_in=consent.expires_in))
    push = await _pusher(request).push(consent.event) if _bool(data, "push", True) else None
    return control_json(
        {
            "appid": consent.appid,
            "auth_code": consent.auth_code,
            "expires_in": consent.expires_in,
            "info_type": consent.info_type,
            "redirect_url": redirect_url,
            "push": push,
        }
    )


_CREATE_FIELDS = {
    "appid",
    "nickname",
    "kind",
    "verify_type",
    "func_ids",
    "draft_count",
    "principal_name",
    "account_status",
    "authorized",
    "omit_refresh_token_in_list",
    "alias",
    "signature",
    "head_img",
    "qrcode_url",
    "service_type",
    "kind_info",
    "basic_config",
}


async def control_authorizers(request: web.Request) -> web.Response:
    state = _state(request)
    if request.method == "GET":
        # WeChat's release-test accounts are listed only on request: tests compare this list with theirs.
        with_test_accounts = request.query.get("test_accounts", "") in ("1", "true")
        accounts = [a for a in state.authorizers.values() if with_test_accounts or not a.test_account]
        return control_json({"authorizers": [state.authorizer_view(a) for a in accounts]})
    if request.method != "POST":
        raise ControlError(405, "use GET or POST")
    data = _only(await _control_body(request), _CREATE_FIELDS)
    for name in ("appid", "nickname", "principal_name"):
        _opt_text(data, name)
    _opt_list(data, "func_ids")
    for name in ("authorized", "omit_refresh_token_in_list"):
        if name in data:
            _bool(data, name, False)
    authorizer = state.create_authorizer(**data)
    return control_json(state.authorizer_view(authorizer), status=201)


async def control_bulk_authorizers(request: web.Request) -> web.Response:
    state = _state(request)
    data = _only(
        await _control_body(request),
        {"count", "prefix", "kind", "func_ids", "draft_count", "authorized", "omit_refresh_token_every"},
    )
    if "count" not in data:
        raise ControlError(400, "count is required")
    _opt_text(data, "prefix")
    _opt_list(data, "func_ids")
    if "authorized" in data:
        _bool(data, "authorized", True)
    created = state.bulk_create_authorizers(**data)
    ttl = state.config.authorizer_token_ttl
    return control_json(
        {
            "authorizers": [
                {
                    "appid": a.appid,
                    "authorizer_access_token": a.current_token,
                    "expires_in": ttl if a.current_token else None,
                    "authorizer_refresh_token": a.refresh_token,
                    "draft_count": a.draft_count,
                    "kind": a.kind,
                    "func_ids": a.func_ids,
                }
                for a in created
            ]
        },
        status=201,
    )


async def control_authorizer(request: web.Request) -> web.Response:
    state = _state(request)
    appid = request.match_info["appid"]
    if request.method == "PATCH":
        authorizer = state.update_authorizer(appid, await _control_body(request))
    elif request.method == "GET":
        authorizer = state.get_authorizer(appid)
    else:
        raise ControlError(405, "use GET or PATCH")
    return control_json(state.authorizer_view(authorizer))


async def control_revoke(request: web.Request) -> web.Response:
    state = _state(request)
    data = _only(await _control_body(request), {"push"})
    appid = request.match_info["appid"]
    fields = state.revoke(appid)
    push = await _pusher(request).push(fields) if _bool(data, "push", False) else None
    return control_json({"authorizer": state.authorizer_view(state.get_authorizer(appid)), "push": push})


async def control_update_authorized(request: web.Request) -> web.Response:
    state = _state(request)
    data = _only(await _control_body(request), {"func_ids", "rotate_refresh_token", "push"})
    consent = state.update_authorization(
        request.match_info["appid"],
        func_ids=_opt_list(data, "func_ids"),
        rotate_refresh_token=_bool(data, "rotate_refresh_token", True),
    )
    push = await _pusher(request).push(consent.event) if _bool(data, "push", True) else None
    authorizer = state.get_authorizer(consent.appid)
    return control_json(
        {
            "auth_code": consent.auth_code,
            "expires_in": consent.expires_in,
            "authorizer_refresh_token": authorizer.refresh_token,
            "push": push,
        }
    )


async def control_auth_code(request: web.Request) -> web.Response:
    consent = _state(request).issue_auth_code(request.match_info["appid"])
    return control_json({"auth_code": consent.auth_code, "expires_in": consent.expires_in})


async def control_expire_tokens(request: web.Request) -> web.Response:
    return control_json({"expired": _state(request).expire_authorizer_tokens(request.match_info["appid"])})


async def control_invalidate_tokens(request: web.Request) -> web.Response:
    return control_json({"invalidated": _state(request).invalidate_authorizer_tokens(request.match_info["appid"])})


_QUOTA_FIELDS = {"used", "cgi_path", "daily_limit", "rate_limit", "component_rate_limit", "clears"}


def _set_quota(state: SandboxState, appid: str, data: dict[str, Any], default_path: str) -> None:
    _only(data, _QUOTA_FIELDS)
    if not set(data) - {"cgi_path"}:
        raise ControlError(400, f"give at least one of {sorted(_QUOTA_FIELDS - {'cgi_path'})}")
    for name in ("used", "daily_limit", "clears"):
        value = data.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ControlError(400, f"{name} must be an integer")
    state.set_quota(
        appid,
        _opt_text(data, "cgi_path") or default_path,
        used=data.get("used"),
        daily_limit=data.get("daily_limit"),
        rate_limit=data.get("rate_limit"),
        component_rate_limit=data.get("component_rate_limit"),
        clears=data.get("clears"),
    )


async def control_quota(request: web.Request) -> web.Response:
    state = _state(request)
    appid = request.match_info["appid"]
    _set_quota(state, appid, await _control_body(request), DRAFT_COUNT_PATH)
    return control_json(state.authorizer_view(state.get_authorizer(appid)))


async def control_component(request: web.Request) -> web.Response:
    return control_json(_state(request).component_view())


async def control_component_quota(request: web.Request) -> web.Response:
    state = _state(request)
    _set_quota(state, state.config.component_appid, await _control_body(request), f"{COMPONENT}/api_authorizer_token")
    return control_json(state.component_view())


async def control_custom_messages(request: web.Request) -> web.Response:
    authorizer = _state(request).get_authorizer(request.match_info["appid"])
    return control_json({"messages": authorizer.custom_messages})


async def control_send_message(request: web.Request) -> web.Response:
    state = _state(request)
    appid = request.match_info["appid"]
    data = _only(
        await _control_body(request),
        {"msg_type", "content", "event", "from_openid", "fields", "msg_id", "tries", "timeout"},
    )
    fields = data.get("fields")
    if fields is not None and not isinstance(fields, dict):
        raise ControlError(400, "fields must be an object")
    tries, msg_id = data.get("tries"), data.get("msg_id")
    for name, value in (("tries", tries), ("msg_id", msg_id)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ControlError(400, f"{name} must be a positive integer")
    timeout = _number(data, "timeout") if data.get("timeout") is not None else None
    if timeout is not None and timeout <= 0:
        raise ControlError(400, "timeout must be positive")
    _, inner = state.fan_message(
        appid,
        msg_type=_opt_text(data, "msg_type") or "text",
        content=_opt_text(data, "content"),
        event=_opt_text(data, "event"),
        from_openid=_opt_text(data, "from_openid"),
        fields=fields,
        msg_id=msg_id,
    )
    return control_json(await _pusher(request).send_message(appid, inner, tries=tries, timeout=timeout))


async def _control_draft_job(request: web.Request, kind: Literal["publish", "mass_send"]) -> web.Response:
    state = _state(request)
    data = _only(await _control_body(request), {"media_id", "delay", "wait"})
    delay = _number(data, "delay") if data.get("delay") is not None else None
    if delay is not None and delay < 0:
        raise ControlError(400, "delay must not be negative")
    wait = _bool(data, "wait", False)
    job = state.draft_job(request.match_info["appid"], kind=kind, media_id=data.get("media_id"))
    task = _finish_later(request, job, delay)
    view = job.view()
    # wait: answer once the event was pushed, with the platform's answer to it (tests, benches).
    view["push"] = await task if wait else None
    return control_json(view)


async def control_publish(request: web.Request) -> web.Response:
    return await _control_draft_job(request, "publish")


async def control_mass_send(request: web.Request) -> web.Response:
    return await _control_draft_job(request, "mass_send")


async def control_drafts(request: web.Request) -> web.Response:
    state = _state(request)
    data = _only(await _control_body(request), {"count"})
    authorizer = state.drafts_add(request.match_info["appid"], data.get("count", 1))
    return control_json({"draft_count": authorizer.draft_count, "draft_media_ids": list(state.draft_ids(authorizer))})


async def control_messages(request: web.Request) -> web.Response:
    return control_json({"messages": list(_state(request).messages)})


async def control_release_test(request: web.Request) -> web.Response:
    state = _state(request)
    if request.method == "GET":
        return control_json({"results": list(state.release_tests)})
    data = _only(await _control_body(request), {"group", "window"})
    group = data.get("group")
    if group is not None and (
        not isinstance(group, int) or isinstance(group, bool) or not 0 <= group < len(RELEASE_TEST_OFFICIAL_ACCOUNTS)
    ):
        raise ControlError(400, f"group must be 0 to {len(RELEASE_TEST_OFFICIAL_ACCOUNTS) - 1}")
    window = _number(data, "window") if data.get("window") is not None else None
    lock = request[ROUTED].release_lock
    if lock.locked():
        raise ControlError(409, "a release test is already running")
    async with lock:
        result = await run_release_test(state, _pusher(request), group=group, window=window)
    return control_json(result)


async def control_rids(request: web.Request) -> web.Response:
    state = _state(request)
    rid = request.match_info.get("rid")
    if rid is None:
        return control_json({"rids": [r.to_dict() for r in state.rids.records()[-100:]]})
    record = state.rids.get(rid)
    if record is None:
        raise ControlError(404, f"no call remembered for rid {rid!r}")
    return control_json(record.to_dict())


async def control_index(request: web.Request) -> web.StreamResponse:
    calls = [{"method": m, "path": p, "summary": summary} for m, p, _, summary in CONTROL_ROUTES]
    accept = request.headers.get("Accept", "")
    # JSON only when asked for; browsers (text/html) and curl (*/*) get the page.
    if "application/json" in accept and "text/html" not in accept:
        return control_json({"calls": calls, "wechat_endpoints": sorted(API_PATHS), "pages": list(PAGE_PATHS)})
    rows = "".join(
        f"<tr><td>{c['method']}</td><td><code>{html.escape(c['path'])}</code></td>"
        f"<td>{html.escape(c['summary'])}</td></tr>"
        for c in calls
    )
    endpoints = "".join(f"<li><code>{html.escape(p)}</code></li>" for p in sorted(API_PATHS))
    body = (
        "<p>Control API of the WeChat sandbox. JSON bodies in and out; "
        "<code>Accept: application/json</code> gives this list as JSON.</p>"
        f'<table id="calls"><tr><th>method</th><th>path</th><th>what it does</th></tr>{rows}</table>'
        f"<h2>WeChat endpoints</h2><ul>{endpoints}</ul>"
    )
    return _page("WeChat sandbox", body)


async def control_unknown(request: web.Request) -> web.Response:
    raise ControlError(404, f"no control call {request.method} {request.path}")


# --- application -------------------------------------------------------------------------------------

_S = "/sandbox"
_A = f"{_S}/authorizers/{{appid}}"
# Every control call, with the one line GET /sandbox/ shows for it.
CONTROL_ROUTES: list[tuple[str, str, Handler, str]] = [
    ("GET", f"{_S}/", control_index, "this list (HTML, or JSON with Accept: application/json)"),
    ("GET", f"{_S}/health", control_health, "liveness: {ok: true}"),
    ("POST", f"{_S}/reset", control_reset,
     "forget everything, every component's (and clear the state file): a fresh sandbox"),
    ("GET", f"{_S}/config", control_config, "the running config"),
    ("PATCH", f"{_S}/config", control_config, "change run-time settings (event_url, message_url, lifetimes, ...)"),
    ("PUT", f"{_S}/latency", control_latency, "{seconds, endpoint?}: latency added to WeChat answers"),
    ("GET", f"{_S}/faults", control_faults, "the fault plan"),
    ("PUT", f"{_S}/faults", control_faults, "{rate, kinds, endpoints?, seed?, max_faults?, timeout_seconds?}"),
    ("DELETE", f"{_S}/faults", control_faults, "no more faults"),
    ("GET", f"{_S}/components", control_components,
     "every component (third-party platform): appid, URLs; ?component=APPID addresses one in the other calls"),
    ("POST", f"{_S}/components", control_components,
     "{appid, appsecret, token, aes_key, event_url?, message_url?, platform_func_ids?}: one more component"),
    ("GET", f"{_S}/counters", control_counters, "calls per endpoint and errcode, faults, per-account calls"),
    ("DELETE", f"{_S}/counters", control_counters, "zero the counters"),
    ("GET", f"{_S}/counters/total", control_counters_total, "{total, components: {appid: counters}}"),
    ("DELETE", f"{_S}/counters/total", control_counters_total, "zero every component's counters"),
    ("GET", f"{_S}/pushes", control_pushes, "every push to the authorization event URL, with the answer"),
    ("GET", f"{_S}/ticket", control_ticket, "the current component_verify_ticket"),
    ("POST", f"{_S}/ticket/push", control_push_ticket, "issue a ticket and push it now"),
    ("GET", f"{_S}/component", control_component, "the component: token, ticket, quota use, limits, clears"),
    ("PUT", f"{_S}/component/quota", control_component_quota,
     "{cgi_path, used?, daily_limit?, rate_limit?, component_rate_limit?, clears?} of the component"),
    ("POST", f"{_S}/component_token/expire", control_expire_component_token, "component tokens answer 42001"),
    ("POST", f"{_S}/quota/reset", control_reset_quotas, "a new quota day for every account"),
    ("POST", f"{_S}/consent", control_consent, "what the consent page does: authorize with a pre_auth_code"),
    ("GET", f"{_S}/authorizers", control_authorizers, "all accounts (?test_accounts=1: WeChat's test accounts too)"),
    ("POST", f"{_S}/authorizers", control_authorizers, "create an account (authorized or not)"),
    ("POST", f"{_S}/authorizers/bulk", control_bulk_authorizers, "create many authorized accounts at once"),
    ("GET", _A, control_authorizer, "one account, tokens and quotas included"),
    ("PATCH", _A, control_authorizer, "change profile, status, kind or granted sets without any push"),
    ("POST", f"{_A}/revoke", control_revoke, "{push?}: the merchant cancels (push=false: no unauthorized push)"),
    ("POST", f"{_A}/updateauthorized", control_update_authorized, "new sets, new code, updateauthorized push"),
    ("POST", f"{_A}/auth_code", control_auth_code, "an authorization code for api_query_auth, no push"),
    ("POST", f"{_A}/expire_tokens", control_expire_tokens, "the account's access tokens answer 42001"),
    ("POST", f"{_A}/invalidate_tokens", control_invalidate_tokens, "the account's access tokens answer 40001"),
    ("PUT", f"{_A}/quota", control_quota,
     "{cgi_path?, used?, daily_limit?, rate_limit?, component_rate_limit?, clears?} of the account"),
    ("POST", f"{_A}/messages", control_send_message,
     "{msg_type, content?, event?, from_openid?, ...}: a fan writes; returns the platform's answer"),
    ("GET", f"{_A}/custom_messages", control_custom_messages, "the message/custom/send calls made for the account"),
    ("POST", f"{_A}/publish", control_publish,
     "{media_id?, delay?, wait?}: publish a draft (the oldest by default): it leaves the box, PUBLISHJOBFINISH next"),
    ("POST", f"{_A}/mass_send", control_mass_send,
     "{media_id?, delay?, wait?}: mass-send a draft: it leaves the box, MASSSENDJOBFINISH follows"),
    ("POST", f"{_A}/drafts", control_drafts, "{count?}: drafts saved in WeChat's web editor: the box grows, no push"),
    ("GET", f"{_S}/messages", control_messages, "every push to the message-and-event URL, with the answer"),
    ("POST", f"{_S}/release_test", control_release_test, "{group?, window?}: run WeChat's full-release test"),
    ("GET", f"{_S}/release_test", control_release_test, "the results of earlier release tests"),
    ("GET", f"{_S}/rids", control_rids, "the last 100 remembered error calls"),
    ("GET", f"{_S}/rids/{{rid}}", control_rids, "the call behind a rid, its owner included"),
]  # fmt: skip


def create_app(config: SandboxConfig | None = None, *, clock: Clock = time.time) -> web.Application:
    config = config or SandboxConfig()
    components = Components(config, clock=clock)
    app = web.Application(
        middlewares=[errors_middleware, routing_middleware, wechat_middleware], client_max_size=config.max_body_bytes
    )
    app[COMPONENTS] = components
    app[STATE] = components.default.state
    app[PUSHER] = components.default.pusher
    saver: Saver | None = None
    if config.state_file:
        saver = app[SAVER] = Saver(components, config.state_file, config.state_save_interval)
        # Before serving: the first request already sees the restored accounts.
        saver.load()

    async def start(app: web.Application) -> None:
        await components.start()
        if saver is not None:
            await saver.start()

    async def close(app: web.Application) -> None:
        await components.close()
        if saver is not None:
            await saver.close()

    app.on_startup.append(start)
    app.on_cleanup.append(close)

    wechat: dict[str, Handler] = {
        f"{COMPONENT}/api_component_token": api_component_token,
        f"{COMPONENT}/api_create_preauthcode": api_create_preauthcode,
        f"{COMPONENT}/api_query_auth": api_query_auth,
        f"{COMPONENT}/api_authorizer_token": api_authorizer_token,
        f"{COMPONENT}/api_get_authorizer_info": api_get_authorizer_info,
        f"{COMPONENT}/api_get_authorizer_list": api_get_authorizer_list,
        f"{COMPONENT}/api_start_push_ticket": api_start_push_ticket,
        COMPONENT_CLEAR_QUOTA_PATH: component_clear_quota,
        QUOTA_GET_PATH: quota_get,
        RID_GET_PATH: rid_get,
        CLEAR_QUOTA_PATH: clear_quota,
        CUSTOM_SEND_PATH: custom_send,
        DRAFT_COUNT_PATH: draft_count,
        FREEPUBLISH_SUBMIT_PATH: freepublish_submit,
        MASS_SENDALL_PATH: mass_sendall,
    }
    assert set(wechat) == API_PATHS
    router = app.router
    # Method checks happen in the handlers, which answer with WeChat's 43001/43002 instead of HTTP 405.
    for path, handler in wechat.items():
        router.add_route("*", path, handler)
    for path in PAGE_PATHS:
        router.add_route("*", path, authorization_page)
    router.add_get(_S, control_index)
    for method, path, handler, _ in CONTROL_ROUTES:
        router.add_route(method, path, handler)
    router.add_route("*", f"{_S}/{{tail:.*}}", control_unknown)
    # Everything else is a path WeChat does not have.
    router.add_route("*", "/{tail:.*}", unknown_api)
    return app
