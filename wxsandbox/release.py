"""WeChat's automated full-release test (全网发布), run against the platform's configured URLs
(docs/wechat/message-url.md#full-release-test).

WeChat authorizes one of its own test accounts to the platform, sends it the three message cases and revokes the
authorization again, then reports one row per step. Steps that depend on the platform's own calls
(api_query_auth with the pushed code, message/custom/send) wait up to `window` real seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from wxsandbox.pushes import Pusher
from wxsandbox.state import (
    MESSAGE_FUNC_ID,
    RELEASE_TEST_OFFICIAL_ACCOUNTS,
    Authorizer,
    ControlError,
    SandboxState,
)

TEXT_CASE = "TESTCOMPONENT_MSG_TYPE_TEXT"
QUERY_AUTH_CODE_PREFIX = "QUERY_AUTH_CODE:"
EVENT_CASE = "LOCATION"
_POLL = 0.02

# The rows of WeChat's result table (WxJava issue #494), in the order the test runs them.
STEPS: dict[str, str] = {
    "ticket": "验证票据 (component_verify_ticket) 推送",
    "pre_auth_code": "预授权码创建",
    "authorized": "授权成功事件推送",
    "query_auth": "使用授权码获取授权信息",
    "text_message": "普通文本消息",
    "api_text_message": "API 文本消息 (客服消息)",
    "event_message": "事件消息",
    "unauthorized": "取消授权事件推送",
}
MESSAGE_STEPS = ("text_message", "api_text_message", "event_message")


class _Run:
    def __init__(self, state: SandboxState, pusher: Pusher, window: float) -> None:
        self.state = state
        self.pusher = pusher
        self.window = window
        self.epoch = state.epoch
        self.rows: list[dict[str, Any]] = []

    def row(self, step: str, result: str, detail: str) -> None:
        self.rows.append({"step": step, "name": STEPS[step], "result": result, "detail": detail})

    def check(self, step: str, ok: bool, detail: str) -> None:
        self.row(step, "pass" if ok else "fail", detail)

    def alive(self) -> None:
        if self.state.epoch != self.epoch:
            raise ControlError(409, "the sandbox was reset while the release test ran")

    async def wait_for(self, condition: Callable[[], bool]) -> bool:
        deadline = time.monotonic() + self.window
        while True:
            self.alive()
            if condition():
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_POLL)

    async def message(self, account: Authorizer, **kwargs: Any) -> tuple[dict[str, str | int], dict[str, Any]]:
        _, inner = self.state.fan_message(account.appid, **kwargs)
        result = await self.pusher.send_message(account.appid, inner)
        self.alive()
        return inner, result


def _answer_problem(result: dict[str, Any]) -> str | None:
    if not result["answered"]:
        return f"no answer: {result['error']}"
    if result["status"] != 200:
        return f"HTTP {result['status']}"
    if len(result["attempts"]) > 1:
        return f"answered only on try {len(result['attempts'])}: WeChat waits 5 s per try"
    return None


def _passive_text_problem(result: dict[str, Any], account: Authorizer, openid: str, content: str) -> str | None:
    """Why an answer is not the expected encrypted passive text reply, or None when it is."""
    problem = _answer_problem(result)
    if problem is not None:
        return problem
    if result["reply_kind"] != "encrypted":
        return f"expected an encrypted passive reply, got {result['reply_kind']}: {result['body'][:80]!r}"
    if not result["signature_ok"]:
        return "the reply's MsgSignature does not verify"
    reply = result["reply"]
    if reply is None:
        return result.get("error") or "the reply cannot be decrypted"
    expected = {"ToUserName": openid, "FromUserName": account.user_name, "MsgType": "text", "Content": content}
    wrong = {name: reply.get(name) for name, value in expected.items() if reply.get(name) != value}
    if wrong:
        return f"reply fields {wrong} differ from {expected}"
    return None


async def run_release_test(
    state: SandboxState, pusher: Pusher, *, group: int | None = None, window: float | None = None
) -> dict[str, Any]:
    if group is None:
        group = state.rng.randrange(len(RELEASE_TEST_OFFICIAL_ACCOUNTS))
    run = _Run(state, pusher, window if window is not None else state.config.release_test_window)
    account = state.release_test_account(group)
    started, began = time.monotonic(), state.clock()

    # (a) The platform must answer the ticket push with "success".
    attempt = await pusher.push(state.issue_ticket())
    run.alive()
    run.check("ticket", attempt["ok"], "answered success" if attempt["ok"] else _push_problem(attempt))

    # (b) A platform that serves merchants creates pre_auth_codes; WeChat's own authorization makes its own.
    created = state.platform_pre_auth_code(since=began - state.config.pre_auth_code_ttl)
    run.check(
        "pre_auth_code",
        True,
        "the platform created one through api_create_preauthcode"
        if created is not None
        else "the platform has created none lately; the test created its own",
    )

    # (c) WeChat authorizes its own test account: a code no merchant session started.
    consent = state.release_authorize(account.appid)
    attempt = await pusher.push(consent.event)
    run.alive()
    run.check("authorized", attempt["ok"], "answered success" if attempt["ok"] else _push_problem(attempt))

    # (d) The platform must exchange the pushed code by itself.
    code = state.auth_codes[consent.auth_code]
    used = await run.wait_for(lambda: code.used)
    run.check(
        "query_auth",
        used,
        "api_query_auth called with the pushed code"
        if used
        else f"api_query_auth was not called with the pushed code within {run.window:g} s",
    )

    # (e) The message cases, when the platform asked for 消息管理.
    if MESSAGE_FUNC_ID not in state.config.platform_func_ids:
        for step in MESSAGE_STEPS:
            run.row(step, "skipped", "the platform's permission sets do not include set 1 (消息管理)")
    else:
        await _message_cases(run, account)

    # (f) WeChat revokes the authorization again.
    fields = state.revoke(account.appid)
    attempt = await pusher.push(fields)
    run.alive()
    run.check("unauthorized", attempt["ok"], "answered success" if attempt["ok"] else _push_problem(attempt))

    return state.record_release_test(
        {
            "passed": all(row["result"] != "fail" for row in run.rows),
            "group": group,
            "authorizer_appid": account.appid,
            "user_name": account.user_name,
            "started_at": began,
            "duration_ms": round((time.monotonic() - started) * 1000),
            "rows": run.rows,
        }
    )


def _push_problem(attempt: dict[str, Any]) -> str:
    if attempt["error"]:
        return str(attempt["error"])
    return f"answered HTTP {attempt['status']} {attempt['body']!r}, not success"


async def _message_cases(run: _Run, account: Authorizer) -> None:
    state = run.state
    if state.config.message_url is None:
        for step in MESSAGE_STEPS:
            run.row(step, "fail", "message_url is not set")
        return

    # 1. Ordinary text: a passive reply with "_callback" appended, to the sender.
    openid = state.new_openid()
    _, result = await run.message(account, msg_type="text", content=TEXT_CASE, from_openid=openid)
    problem = _passive_text_problem(result, account, openid, f"{TEXT_CASE}_callback")
    run.check("text_message", problem is None, problem or "passive reply received")

    # 2. QUERY_AUTH_CODE: empty answer at once, then api_query_auth on the code and a customer-service message
    # with "<code>_from_api", sent with the token that code gave.
    openid = state.new_openid()
    issued = state.issue_auth_code(account.appid)
    code = issued.auth_code
    sent_after = len(account.custom_messages)
    _, result = await run.message(
        account, msg_type="text", content=f"{QUERY_AUTH_CODE_PREFIX}{code}", from_openid=openid
    )
    problem = _answer_problem(result)
    if problem is None and result["reply_kind"] not in ("empty", "success"):
        problem = f"expected an empty answer at once, got {result['reply_kind']}: {result['body'][:80]!r}"
    if problem is None:

        def sent() -> bool:
            return any(m["touser"] == openid for m in account.custom_messages[sent_after:])

        auth_code = state.auth_codes[code]
        if not await run.wait_for(lambda: auth_code.used and sent()):
            problem = (
                f"api_query_auth was not called with the code within {run.window:g} s"
                if not auth_code.used
                else f"no message/custom/send to the sender within {run.window:g} s"
            )
        else:
            message = next(m for m in account.custom_messages[sent_after:] if m["touser"] == openid)
            if message["msgtype"] != "text" or message["content"] != f"{code}_from_api":
                problem = f"the customer-service message says {message['content']!r}, not {code + '_from_api'!r}"
            elif message["auth_code"] != code:
                problem = "the customer-service message was sent with a token not obtained from this code"
    run.check("api_text_message", problem is None, problem or "customer-service message received")

    # 3. An event: a passive reply "<Event>from_callback".
    openid = state.new_openid()
    _, result = await run.message(account, msg_type="event", event=EVENT_CASE, from_openid=openid)
    problem = _passive_text_problem(result, account, openid, f"{EVENT_CASE}from_callback")
    run.check("event_message", problem is None, problem or "passive reply received")
