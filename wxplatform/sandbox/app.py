"""The sandbox's HTTP face: WeChat's endpoints, its authorization pages, and the /sandbox/ control API.

WeChat answers nearly everything with HTTP 200 and `{"errcode": N, "errmsg": "… rid: …"}` (protocol §6), and so
does this app, for garbage too: two middlewares make sure no request ends in a bare 500 or an HTML 404. All
state changes go through `SandboxState` on the event loop thread; pushes to the platform's event URL run as
background tasks of the same loop.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from wxplatform.sandbox.config import SandboxConfig
from wxplatform.sandbox.state import (
    DRAFT_COUNT_PATH,
    ERRMSG,
    KINDS,
    VERIFY_TYPES,
    Clock,
    ControlError,
    Counters,
    FaultPlan,
    SandboxState,
    WeChatFault,
)
from wxplatform.wechat.crypto import MessageCrypto, build_xml

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

COMPONENT = "/cgi-bin/component"
API_PATHS = frozenset(
    {
        f"{COMPONENT}/api_component_token",
        f"{COMPONENT}/api_create_preauthcode",
        f"{COMPONENT}/api_query_auth",
        f"{COMPONENT}/api_authorizer_token",
        f"{COMPONENT}/api_get_authorizer_info",
        f"{COMPONENT}/api_get_authorizer_list",
        f"{COMPONENT}/api_start_push_ticket",
        "/cgi-bin/openapi/quota/get",
        DRAFT_COUNT_PATH,
    }
)
# PC page on mp.weixin.qq.com and the two mobile pages in circulation (§3.3).
PAGE_PATHS = ("/cgi-bin/componentloginpage", "/safe/bindcomponent", "/wxaopen/safe/bindcomponent")
# Counter key for calls to paths WeChat does not have.
UNKNOWN_PATH = "*"

STATE = web.AppKey("state", SandboxState)

# Permission sets offered on the consent page (§5); the merchant ticks the ones to grant.
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
KIND_LABELS = {"subscription": "订阅号", "service": "服务号", "mini_program": "小程序"}


# --- responses ---------------------------------------------------------------------------------------


def _rid() -> str:
    # Same shape as WeChat's request ids, e.g. "606d52e0-101a945b-1de9c138".
    raw = os.urandom(12).hex()
    return f"{raw[:8]}-{raw[8:16]}-{raw[16:]}"


def wx_json(payload: dict[str, Any]) -> web.Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    # WeChat's own (odd) content type: clients must not insist on "charset=".
    response = web.Response(body=body, headers={"Content-Type": "application/json; encoding=utf-8"})
    response["errcode"] = payload.get("errcode", 0)
    return response


def wx_error(errcode: int, errmsg: str | None = None) -> web.Response:
    fault = WeChatFault(errcode, errmsg)
    return wx_json({"errcode": errcode, "errmsg": f"{fault.errmsg} rid: {_rid()}"})


def control_json(payload: Any, status: int = 200) -> web.Response:
    return web.json_response(payload, status=status, dumps=lambda obj: json.dumps(obj, ensure_ascii=False))


# --- middlewares -------------------------------------------------------------------------------------


def _is_wechat_api(path: str) -> bool:
    return not path.startswith("/sandbox/") and path not in PAGE_PATHS


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


@web.middleware
async def wechat_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Latency, fault injection and counters for the WeChat API paths."""
    path = request.path
    if not _is_wechat_api(path):
        return await handler(request)
    state = request.app[STATE]
    key = path if path in API_PATHS else UNKNOWN_PATH
    delay = state.latency_for(key)
    if delay > 0:
        await asyncio.sleep(delay)
    plan = state.faults
    if plan is not None:
        fault = plan.pick(key)
        if fault is not None:
            state.counters.fault(fault)
            if fault == "timeout":
                # Hold the connection like a stuck WeChat front end, then answer normally.
                await asyncio.sleep(plan.timeout_seconds)
            else:
                state.counters.record(key, fault)
                return _fault_response(fault, request)
    try:
        response = await handler(request)
    except WeChatFault as exc:
        response = wx_error(exc.errcode, exc.errmsg)
    errcode = response.get("errcode") if isinstance(response, web.Response) else None
    state.counters.record(key, errcode if isinstance(errcode, int) else None)
    return response


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


# --- pushes ------------------------------------------------------------------------------------------


class Pusher:
    """Sends encrypted component pushes (§1.1) to the event URL and records every attempt."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        config = state.config
        self.crypto = MessageCrypto(config.component_token, config.component_aes_key, config.component_appid)
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ticket_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        self.restart_ticket_loop()

    async def close(self) -> None:
        self._cancel_all()
        if self._session is not None:
            await self._session.close()

    def _cancel_all(self) -> None:
        for task in [*self._tasks, self._ticket_task]:
            if task is not None:
                task.cancel()
        self._tasks.clear()
        self._ticket_task = None

    def reset(self) -> None:
        """After a state reset: drop pending pushes and restart the ticket schedule from the new config."""
        self._cancel_all()
        self.restart_ticket_loop()

    def restart_ticket_loop(self) -> None:
        if self._ticket_task is not None:
            self._ticket_task.cancel()
            self._ticket_task = None
        interval = self.state.config.ticket_interval
        if interval > 0:
            self._ticket_task = asyncio.get_running_loop().create_task(self._ticket_loop(interval))

    async def _ticket_loop(self, interval: float) -> None:
        while True:
            try:
                await self.push(self.state.issue_ticket())
            except Exception:
                logger.exception("scheduled ticket push failed")
            await asyncio.sleep(interval)

    def push_soon(self, fields: dict[str, str | int]) -> None:
        task = asyncio.get_running_loop().create_task(self.push(fields))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def push(self, fields: dict[str, str | int]) -> dict[str, Any]:
        """POST one push and return the recorded attempt (also when nothing could be sent)."""
        state = self.state
        epoch = state.epoch
        url = state.config.event_url
        started = time.monotonic()
        attempt: dict[str, Any] = {
            "info_type": fields["InfoType"],
            "authorizer_appid": fields.get("AuthorizerAppid"),
            "fields": dict(fields),
            "url": url,
            "time": state.clock(),
            "status": None,
            "body": None,
            "error": None,
            "ok": False,
        }
        if url is None:
            attempt["error"] = "event_url is not set"
        elif self._session is None:
            attempt["error"] = "sandbox is not running"
        else:
            timestamp = str(int(state.clock()))
            nonce = str(int.from_bytes(os.urandom(4), "big"))
            encrypt, msg_signature = self.crypto.encrypt_message(build_xml(fields), timestamp=timestamp, nonce=nonce)
            query = {
                # The classic signature over (token, timestamp, nonce) is sent too; platforms must verify
                # msg_signature (§1.1).
                "signature": self.crypto.signature(timestamp, nonce, ""),
                "timestamp": timestamp,
                "nonce": nonce,
                "encrypt_type": "aes",
                "msg_signature": msg_signature,
            }
            body = build_xml({"AppId": state.config.component_appid, "Encrypt": encrypt})
            try:
                async with self._session.post(
                    URL(url).extend_query(query),
                    data=body.encode(),
                    headers={"Content-Type": "text/xml"},
                    timeout=aiohttp.ClientTimeout(total=state.config.push_timeout),
                    allow_redirects=False,
                ) as response:
                    text = (await response.content.read(2048)).decode("utf-8", "replace")
                    attempt["status"] = response.status
                    attempt["body"] = text[:200]
                    # The platform must answer the bare string "success" (§1.2).
                    attempt["ok"] = response.status == 200 and text.strip() == "success"
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                attempt["error"] = f"{type(exc).__name__}: {exc}"
        attempt["duration"] = round(time.monotonic() - started, 4)
        # A push that was in flight across a reset belongs to the previous test: it is not recorded.
        if state.epoch == epoch:
            state.record_push(attempt)
        return attempt


PUSHER = web.AppKey("pusher", Pusher)


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
    # Legacy docs spell it component_access_token, newer pages access_token (§3): both are accepted.
    return request.query.get("component_access_token") or request.query.get("access_token")


# --- WeChat endpoints --------------------------------------------------------------------------------


async def api_component_token(request: web.Request) -> web.Response:
    data = await _json_body(request)
    state = request.app[STATE]
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
    return wx_json(request.app[STATE].create_pre_auth_code(token, _optional_str(data, "component_appid")))


async def api_query_auth(request: web.Request) -> web.Response:
    token = _component_token(request)
    data = await _json_body(request)
    return wx_json(
        request.app[STATE].query_auth(token, _optional_str(data, "component_appid"), _str(data, "authorization_code"))
    )


async def api_authorizer_token(request: web.Request) -> web.Response:
    token = _component_token(request)
    data = await _json_body(request)
    return wx_json(
        request.app[STATE].authorizer_token(
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
        request.app[STATE].authorizer_info(
            token, _optional_str(data, "component_appid"), _str(data, "authorizer_appid")
        )
    )


async def api_get_authorizer_list(request: web.Request) -> web.Response:
    token = _component_token(request)
    data = await _json_body(request)
    return wx_json(
        request.app[STATE].authorizer_list(
            token, _optional_str(data, "component_appid"), _int(data, "offset", 0), _int(data, "count", 500)
        )
    )


async def api_start_push_ticket(request: web.Request) -> web.Response:
    data = await _json_body(request)
    state = request.app[STATE]
    # Note the field name: component_secret, not component_appsecret (§1.4).
    state.start_push_ticket(_optional_str(data, "component_appid"), _optional_str(data, "component_secret"))
    request.app[PUSHER].push_soon(state.issue_ticket())
    return wx_json({"errcode": 0, "errmsg": "ok"})


async def quota_get(request: web.Request) -> web.Response:
    token = request.query.get("access_token")
    data = await _json_body(request)
    return wx_json(request.app[STATE].quota_get(token, _str(data, "cgi_path")))


async def draft_count(request: web.Request) -> web.Response:
    if request.method != "GET":
        raise WeChatFault(43001)
    return wx_json(request.app[STATE].draft_count(request.query.get("access_token")))


async def unknown_api(request: web.Request) -> web.Response:
    return wx_error(40066)


# --- authorization pages (§3.3) -----------------------------------------------------------------------

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
        return kind != "mini_program"
    if auth_type == 2:
        return kind == "mini_program"
    return True


async def authorization_page(request: web.Request) -> web.StreamResponse:
    if request.method == "POST":
        return await _consent_submit(request)
    state = request.app[STATE]
    # The platform must link here from its own page; a bare server redirect carries no Referer (§3.3).
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
        if _eligible(a.kind, auth_type) and (not biz_appid or a.appid == biz_appid)
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
    kinds = [k for k in KINDS if _eligible(k, auth_type)]
    kind_options = "".join(
        f'<option value="{k}"{" selected" if k == "service" else ""}>{KIND_LABELS[k]}</option>' for k in kinds
    )
    verify_options = "".join(
        f'<option value="{v}"{" selected" if v == 0 else ""}>{v}</option>' for v in sorted(VERIFY_TYPES)
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
    state = request.app[STATE]
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
    request.app[PUSHER].push_soon(consent.event)
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
    request.app[STATE].reset()
    request.app[PUSHER].reset()
    return control_json({"ok": True})


async def control_config(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if request.method == "PATCH":
        before = state.config.ticket_interval
        state.update_config(await _control_body(request))
        if state.config.ticket_interval != before:
            request.app[PUSHER].restart_ticket_loop()
    return control_json(state.config.to_dict())


async def control_latency(request: web.Request) -> web.Response:
    state = request.app[STATE]
    data = _only(await _control_body(request), {"seconds", "endpoint"})
    state.set_latency(_number(data, "seconds"), _opt_text(data, "endpoint"))
    return control_json({"latency": state.config.latency, "endpoint_latency": state.config.endpoint_latency})


async def control_faults(request: web.Request) -> web.Response:
    state = request.app[STATE]
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
    state = request.app[STATE]
    if request.method == "DELETE":
        state.counters = Counters()
    return control_json(state.counters.snapshot())


async def control_pushes(request: web.Request) -> web.Response:
    return control_json({"pushes": request.app[STATE].pushes})


async def control_ticket(request: web.Request) -> web.Response:
    state = request.app[STATE]
    ticket = state.current_ticket
    return control_json({"ticket": ticket, "issued_at": state.tickets.get(ticket) if ticket else None})


async def control_push_ticket(request: web.Request) -> web.Response:
    state = request.app[STATE]
    fields = state.issue_ticket()
    attempt = await request.app[PUSHER].push(fields)
    return control_json({"ticket": fields["ComponentVerifyTicket"], "push": attempt})


async def control_expire_component_token(request: web.Request) -> web.Response:
    return control_json({"expired": request.app[STATE].expire_component_tokens()})


async def control_reset_quotas(request: web.Request) -> web.Response:
    request.app[STATE].reset_quotas()
    return control_json({"ok": True})


async def control_consent(request: web.Request) -> web.Response:
    state = request.app[STATE]
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
    push = await request.app[PUSHER].push(consent.event) if _bool(data, "push", True) else None
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
}


async def control_authorizers(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if request.method == "GET":
        return control_json({"authorizers": [state.authorizer_view(a) for a in state.authorizers.values()]})
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
    state = request.app[STATE]
    data = _only(await _control_body(request), {"count", "prefix", "kind", "func_ids", "draft_count", "authorized"})
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
    state = request.app[STATE]
    appid = request.match_info["appid"]
    if request.method == "PATCH":
        authorizer = state.update_authorizer(appid, await _control_body(request))
    elif request.method == "GET":
        authorizer = state.get_authorizer(appid)
    else:
        raise ControlError(405, "use GET or PATCH")
    return control_json(state.authorizer_view(authorizer))


async def control_revoke(request: web.Request) -> web.Response:
    state = request.app[STATE]
    data = _only(await _control_body(request), {"push"})
    appid = request.match_info["appid"]
    fields = state.revoke(appid)
    push = await request.app[PUSHER].push(fields) if _bool(data, "push", False) else None
    return control_json({"authorizer": state.authorizer_view(state.get_authorizer(appid)), "push": push})


async def control_update_authorized(request: web.Request) -> web.Response:
    state = request.app[STATE]
    data = _only(await _control_body(request), {"func_ids", "rotate_refresh_token", "push"})
    consent = state.update_authorization(
        request.match_info["appid"],
        func_ids=_opt_list(data, "func_ids"),
        rotate_refresh_token=_bool(data, "rotate_refresh_token", True),
    )
    push = await request.app[PUSHER].push(consent.event) if _bool(data, "push", True) else None
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
    consent = request.app[STATE].issue_auth_code(request.match_info["appid"])
    return control_json({"auth_code": consent.auth_code, "expires_in": consent.expires_in})


async def control_expire_tokens(request: web.Request) -> web.Response:
    return control_json({"expired": request.app[STATE].expire_authorizer_tokens(request.match_info["appid"])})


async def control_invalidate_tokens(request: web.Request) -> web.Response:
    return control_json({"invalidated": request.app[STATE].invalidate_authorizer_tokens(request.match_info["appid"])})


async def control_quota(request: web.Request) -> web.Response:
    state = request.app[STATE]
    appid = request.match_info["appid"]
    data = _only(await _control_body(request), {"used", "cgi_path"})
    cgi_path = _opt_text(data, "cgi_path") or DRAFT_COUNT_PATH
    used = data.get("used")
    if not isinstance(used, int) or isinstance(used, bool):
        raise ControlError(400, "used must be an integer")
    state.set_quota_used(appid, used, cgi_path)
    return control_json(state.authorizer_view(state.get_authorizer(appid)))


async def control_unknown(request: web.Request) -> web.Response:
    raise ControlError(404, f"no control call {request.method} {request.path}")


# --- application -------------------------------------------------------------------------------------


def create_app(config: SandboxConfig | None = None, *, clock: Clock = time.time) -> web.Application:
    config = config or SandboxConfig()
    state = SandboxState(config, clock=clock)
    app = web.Application(middlewares=[errors_middleware, wechat_middleware], client_max_size=config.max_body_bytes)
    app[STATE] = state
    app[PUSHER] = Pusher(state)

    async def start_pusher(app: web.Application) -> None:
        await app[PUSHER].start()

    async def close_pusher(app: web.Application) -> None:
        await app[PUSHER].close()

    app.on_startup.append(start_pusher)
    app.on_cleanup.append(close_pusher)

    wechat: dict[str, Handler] = {
        f"{COMPONENT}/api_component_token": api_component_token,
        f"{COMPONENT}/api_create_preauthcode": api_create_preauthcode,
        f"{COMPONENT}/api_query_auth": api_query_auth,
        f"{COMPONENT}/api_authorizer_token": api_authorizer_token,
        f"{COMPONENT}/api_get_authorizer_info": api_get_authorizer_info,
        f"{COMPONENT}/api_get_authorizer_list": api_get_authorizer_list,
        f"{COMPONENT}/api_start_push_ticket": api_start_push_ticket,
        "/cgi-bin/openapi/quota/get": quota_get,
        DRAFT_COUNT_PATH: draft_count,
    }
    assert set(wechat) == API_PATHS
    router = app.router
    # Method checks happen in the handlers, which answer with WeChat's 43001/43002 instead of HTTP 405.
    for path, handler in wechat.items():
        router.add_route("*", path, handler)
    for path in PAGE_PATHS:
        router.add_route("*", path, authorization_page)

    s = "/sandbox"
    router.add_get(f"{s}/health", control_health)
    router.add_post(f"{s}/reset", control_reset)
    router.add_route("GET", f"{s}/config", control_config)
    router.add_route("PATCH", f"{s}/config", control_config)
    router.add_put(f"{s}/latency", control_latency)
    for method in ("GET", "PUT", "DELETE"):
        router.add_route(method, f"{s}/faults", control_faults)
    router.add_get(f"{s}/counters", control_counters)
    router.add_delete(f"{s}/counters", control_counters)
    router.add_get(f"{s}/pushes", control_pushes)
    router.add_get(f"{s}/ticket", control_ticket)
    router.add_post(f"{s}/ticket/push", control_push_ticket)
    router.add_post(f"{s}/component_token/expire", control_expire_component_token)
    router.add_post(f"{s}/quota/reset", control_reset_quotas)
    router.add_post(f"{s}/consent", control_consent)
    router.add_route("GET", f"{s}/authorizers", control_authorizers)
    router.add_route("POST", f"{s}/authorizers", control_authorizers)
    router.add_post(f"{s}/authorizers/bulk", control_bulk_authorizers)
    router.add_route("GET", f"{s}/authorizers/{{appid}}", control_authorizer)
    router.add_route("PATCH", f"{s}/authorizers/{{appid}}", control_authorizer)
    router.add_post(f"{s}/authorizers/{{appid}}/revoke", control_revoke)
    router.add_post(f"{s}/authorizers/{{appid}}/updateauthorized", control_update_authorized)
    router.add_post(f"{s}/authorizers/{{appid}}/auth_code", control_auth_code)
    router.add_post(f"{s}/authorizers/{{appid}}/expire_tokens", control_expire_tokens)
    router.add_post(f"{s}/authorizers/{{appid}}/invalidate_tokens", control_invalidate_tokens)
    router.add_put(f"{s}/authorizers/{{appid}}/quota", control_quota)
    router.add_route("*", f"{s}/{{tail:.*}}", control_unknown)
    # Everything else is a path WeChat does not have.
    router.add_route("*", "/{tail:.*}", unknown_api)
    return app
