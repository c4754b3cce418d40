"""What the sandbox's WeChat sends to the platform: component pushes to the authorization event URL
(docs/wechat/flow.md#authorization-event-url) and
fans' messages and events to the message-and-event URL (docs/wechat/message-url.md), encrypted with the component's
token and key.

Every attempt is recorded in the state; pushes run on the server's event loop, awaited by control calls or as
background tasks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
from yarl import URL

from wxplatform.wechat.crypto import CryptoError, MessageCrypto, XmlValue, build_xml, parse_xml
from wxsandbox.state import SandboxState

logger = logging.getLogger(__name__)

# Answers are read up to this many bytes; the recorded body is cut shorter.
_READ_LIMIT = 65536
_BODY_KEPT = 4096


def _nonce() -> str:
    return str(int.from_bytes(os.urandom(4), "big"))


class Pusher:
    """Sends encrypted pushes and records every attempt."""

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

    def _signed_query(self, encrypt: str, timestamp: str, nonce: str) -> dict[str, str]:
        return {
            # The classic signature over (token, timestamp, nonce) is sent too; platforms must verify
            # msg_signature (docs/wechat/flow.md#push-request).
            "signature": self.crypto.signature(timestamp, nonce, ""),
            "timestamp": timestamp,
            "nonce": nonce,
            "encrypt_type": "aes",
            "msg_signature": self.crypto.signature(timestamp, nonce, encrypt),
        }

    async def push(self, fields: dict[str, str | int]) -> dict[str, Any]:
        """POST one component push and return the recorded attempt (also when nothing could be sent)."""
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
            timestamp, nonce = str(int(state.clock())), _nonce()
            encrypt = self.crypto.encrypt(build_xml(fields))
            body = build_xml({"AppId": state.config.component_appid, "Encrypt": encrypt})
            try:
                async with self._session.post(
                    URL(url).extend_query(self._signed_query(encrypt, timestamp, nonce)),
                    data=body.encode(),
                    headers={"Content-Type": "text/xml"},
                    timeout=aiohttp.ClientTimeout(total=state.config.push_timeout),
                    allow_redirects=False,
                ) as response:
                    text = (await response.content.read(2048)).decode("utf-8", "replace")
                    attempt["status"] = response.status
                    attempt["body"] = text[:200]
                    # The platform must answer the bare string "success" (docs/wechat/flow.md#push-reply).
                    attempt["ok"] = response.status == 200 and text.strip() == "success"
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                attempt["error"] = f"{type(exc).__name__}: {exc}"
        attempt["duration"] = round(time.monotonic() - started, 4)
        # A push that was in flight across a reset belongs to the previous test: it is not recorded.
        if state.epoch == epoch:
            state.record_push(attempt)
        return attempt

    # --- the message-and-event URL (docs/wechat/message-url.md)
    # ---------------------------------------------------------------

    def send_message_later(self, appid: str, inner: dict[str, XmlValue], delay: float) -> asyncio.Task[dict[str, Any]]:
        """send_message after `delay` seconds, in the background (a job's end event); a reset cancels it."""

        async def later() -> dict[str, Any]:
            if delay > 0:
                await asyncio.sleep(delay)
            # The event is raised when the job ends.
            inner["CreateTime"] = int(self.state.clock())
            return await self.send_message(appid, inner)

        task = asyncio.get_running_loop().create_task(later())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def send_message(
        self, appid: str, inner: Mapping[str, XmlValue], *, tries: int | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """POST a fan's message or event to the message URL, as WeChat does, and describe the answer.

        Like WeChat, an attempt with no answer within `timeout` (5 s) is sent again, `tries` (3) times in all,
        with the same message (same MsgId and CreateTime) newly encrypted; any HTTP answer ends the retries."""
        state = self.state
        epoch = state.epoch
        config = state.config
        tries = tries if tries is not None else config.message_tries
        timeout = timeout if timeout is not None else config.message_timeout
        template = config.message_url
        url = template.replace("$APPID$", appid) if template is not None else None
        result: dict[str, Any] = {
            "appid": appid,
            "url": url,
            "time": state.clock(),
            "message": dict(inner),
            "attempts": [],
            "answered": False,
            "status": None,
            "elapsed_ms": None,
            "body": None,
            "reply_kind": None,
            "encrypted": False,
            "signature_ok": None,
            "reply": None,
            "error": None,
        }
        if url is None:
            result["error"] = "message_url is not set"
        elif self._session is None:
            result["error"] = "sandbox is not running"
        else:
            plain = build_xml(inner)
            for number in range(1, tries + 1):
                attempt = await self._message_attempt(url, inner, plain, timeout)
                attempt["try"] = number
                result["attempts"].append(attempt)
                if attempt["status"] is not None:
                    result.update(answered=True, status=attempt["status"], elapsed_ms=attempt["elapsed_ms"])
                    result.update(self.read_reply(attempt.pop("text")))
                    break
            else:
                result["error"] = result["attempts"][-1]["error"]
        if state.epoch == epoch:
            state.record_message(result)
        return result

    async def _message_attempt(
        self, url: str, inner: Mapping[str, XmlValue], plain: str, timeout: float
    ) -> dict[str, Any]:
        assert self._session is not None
        timestamp, nonce = str(int(self.state.clock())), _nonce()
        encrypt = self.crypto.encrypt(plain)
        query = {**self._signed_query(encrypt, timestamp, nonce), "openid": str(inner["FromUserName"])}
        # Messages for an account carry ToUserName = its 原始ID instead of the component's AppId
        # (docs/wechat/message-url.md#the-url-and-appid).
        body = build_xml({"ToUserName": str(inner["ToUserName"]), "Encrypt": encrypt})
        started = time.monotonic()
        # Wall-clock time the POST started, whatever the state's clock: benches measure from it.
        attempt: dict[str, Any] = {"status": None, "elapsed_ms": None, "error": None, "sent_at": time.time()}
        try:
            async with self._session.post(
                URL(url).extend_query(query),
                data=body.encode(),
                headers={"Content-Type": "text/xml"},
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as response:
                raw = await response.content.read(_READ_LIMIT)
                attempt["status"] = response.status
                attempt["text"] = raw.decode("utf-8", "replace")
        except TimeoutError:
            attempt["error"] = f"no answer within {timeout:g} s"
        except (aiohttp.ClientError, ValueError) as exc:
            attempt["error"] = f"{type(exc).__name__}: {exc}"
        attempt["elapsed_ms"] = round((time.monotonic() - started) * 1000)
        return attempt

    def read_reply(self, text: str) -> dict[str, Any]:
        """What a platform's answer to a message says: nothing (empty or "success"), an encrypted passive reply
        (docs/wechat/message-url.md#the-url-and-appid: Encrypt, MsgSignature, TimeStamp, Nonce), a plain XML reply, or
        something unreadable."""
        info: dict[str, Any] = {"body": text[:_BODY_KEPT], "encrypted": False, "signature_ok": None, "reply": None}
        stripped = text.strip()
        if stripped == "":
            return {**info, "reply_kind": "empty"}
        if stripped == "success":
            return {**info, "reply_kind": "success"}
        try:
            envelope = parse_xml(stripped)
        except CryptoError as exc:
            return {**info, "reply_kind": "invalid", "error": f"not XML: {exc}"}
        encrypt = envelope.get("Encrypt")
        if encrypt is None:
            # WeChat in safe mode wants the reply encrypted; a plain one is reported as such.
            return {**info, "reply_kind": "plain", "reply": envelope}
        info.update(reply_kind="encrypted", encrypted=True)
        signature = envelope.get("MsgSignature", "")
        expected = self.crypto.signature(envelope.get("TimeStamp", ""), envelope.get("Nonce", ""), encrypt)
        info["signature_ok"] = signature == expected
        try:
            info["reply"] = parse_xml(self.crypto.decrypt(encrypt))
        except CryptoError as exc:
            info["error"] = f"cannot decrypt the reply: {type(exc).__name__}: {exc}"
        return info
