"""A minimal third-party platform for the sandbox's own tests of message pushes and the full-release test.

It serves the two URLs WeChat calls (authorization events, messages and events), verifies and decrypts what
arrives with the component's token and key, and does what WeChat's release test expects
(docs/wechat/message-url.md#full-release-test). Knobs turn
each behaviour wrong, so that every row of the release test can be seen failing.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests

from wxplatform.wechat.crypto import MessageCrypto, build_xml, parse_xml
from wxsandbox.config import SandboxConfig


@dataclass
class Knobs:
    answer_pushes: bytes = b"success"
    query_auth_on_push: bool = True
    reply_text: str = "{content}_callback"
    reply_event: str = "{event}from_callback"
    sign_badly: bool = False
    encrypt_replies: bool = True
    # QUERY_AUTH_CODE: what to answer at once, whether to call api_query_auth, what to send back and how late.
    query_answer: bytes = b""
    query_the_code: bool = True
    send_with_old_token: bool = False
    custom_content: str = "{code}_from_api"
    custom_delay: float = 0.0
    message_delay: float = 0.0


@dataclass
class FakePlatform:
    sandbox_url: str
    config: SandboxConfig
    knobs: Knobs = field(default_factory=Knobs)
    base_url: str = ""
    ticket: str | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    events: list[dict[str, str]] = field(default_factory=list)
    messages: list[dict[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.crypto = MessageCrypto(
            self.config.component_token, self.config.component_aes_key, self.config.component_appid
        )
        self.http = requests.Session()
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    # --- URLs -------------------------------------------------------------------------------------------

    @property
    def event_url(self) -> str:
        return f"{self.base_url}/wechat/component/events"

    @property
    def message_url(self) -> str:
        return f"{self.base_url}/wechat/authorizers/$APPID$/events"

    # --- WeChat calls -----------------------------------------------------------------------------------

    def component_token(self) -> str:
        answer = self.http.post(
            f"{self.sandbox_url}/cgi-bin/component/api_component_token",
            json={
                "component_appid": self.config.component_appid,
                "component_appsecret": self.config.component_appsecret,
                "component_verify_ticket": self.ticket,
            },
            timeout=10,
        ).json()
        token: str = answer["component_access_token"]
        return token

    def query_auth(self, code: str) -> str:
        answer = self.http.post(
            f"{self.sandbox_url}/cgi-bin/component/api_query_auth",
            params={"component_access_token": self.component_token()},
            json={"component_appid": self.config.component_appid, "authorization_code": code},
            timeout=10,
        ).json()
        info = answer["authorization_info"]
        token: str = info["authorizer_access_token"]
        self.tokens[info["authorizer_appid"]] = token
        return token

    def custom_send(self, token: str, openid: str, content: str) -> dict[str, Any]:
        body = {"touser": openid, "msgtype": "text", "text": {"content": content}}
        data: dict[str, Any] = self.http.post(
            f"{self.sandbox_url}/cgi-bin/message/custom/send", params={"access_token": token}, json=body, timeout=10
        ).json()
        return data

    # --- what WeChat sends ------------------------------------------------------------------------------

    def _open(self, query: dict[str, str], body: bytes) -> dict[str, str]:
        inner = self.crypto.decrypt_message(
            body, msg_signature=query["msg_signature"], timestamp=query["timestamp"], nonce=query["nonce"]
        )
        return parse_xml(inner)

    def on_event(self, query: dict[str, str], body: bytes) -> bytes:
        event = self._open(query, body)
        self.events.append(event)
        if event["InfoType"] == "component_verify_ticket":
            self.ticket = event["ComponentVerifyTicket"]
        elif event["InfoType"] in ("authorized", "updateauthorized") and self.knobs.query_auth_on_push:
            self.query_auth(event["AuthorizationCode"])
        return self.knobs.answer_pushes

    def on_message(self, query: dict[str, str], body: bytes) -> bytes:
        message = self._open(query, body)
        self.messages.append(message)
        knobs = self.knobs
        if knobs.message_delay:
            time.sleep(knobs.message_delay)
        content = message.get("Content", "")
        if message["MsgType"] == "text" and content.startswith("QUERY_AUTH_CODE:"):
            code = content.removeprefix("QUERY_AUTH_CODE:")
            self._later(self._answer_with_api, code, message["FromUserName"])
            return knobs.query_answer
        if message["MsgType"] == "text":
            return self.reply(message, knobs.reply_text.format(content=content))
        if message["MsgType"] == "event":
            return self.reply(message, knobs.reply_event.format(event=message["Event"]))
        return b"success"

    def _answer_with_api(self, code: str, openid: str) -> None:
        old = next(iter(self.tokens.values()), None)
        token = self.query_auth(code) if self.knobs.query_the_code else old
        time.sleep(self.knobs.custom_delay)
        if self.knobs.send_with_old_token:
            token = old
        if token is None:
            self.errors.append("no token to send with")
            return
        answer = self.custom_send(token, openid, self.knobs.custom_content.format(code=code))
        if answer.get("errcode") != 0:
            self.errors.append(f"custom send: {answer}")

    def reply(self, message: dict[str, str], content: str) -> bytes:
        fields: dict[str, str | int] = {
            "ToUserName": message["FromUserName"],
            "FromUserName": message["ToUserName"],
            "CreateTime": int(time.time()),
            "MsgType": "text",
            "Content": content,
        }
        if not self.knobs.encrypt_replies:
            return build_xml(fields).encode()
        timestamp, nonce = str(int(time.time())), "271828"
        encrypt, signature = self.crypto.encrypt_message(build_xml(fields), timestamp=timestamp, nonce=nonce)
        if self.knobs.sign_badly:
            signature = "0" * 40
        envelope: dict[str, str | int] = {
            "Encrypt": encrypt,
            "MsgSignature": signature,
            "TimeStamp": int(timestamp),
            "Nonce": nonce,
        }
        return build_xml(envelope).encode()

    def _later(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=self._guarded, args=(target, *args), daemon=True)
        self._threads.append(thread)
        thread.start()

    def _guarded(self, target: Any, *args: Any) -> None:
        try:
            target(*args)
        except Exception as exc:  # noqa: BLE001 - a failure must show in the test, not vanish with the thread
            self.errors.append(f"{type(exc).__name__}: {exc}")

    # --- serving ----------------------------------------------------------------------------------------

    def start(self) -> None:
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                parts = urlsplit(self.path)
                query = dict(parse_qsl(parts.query))
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    if parts.path == "/wechat/component/events":
                        reply = platform.on_event(query, body)
                    else:
                        reply = platform.on_message(query, body)
                    status = 200
                except Exception as exc:  # noqa: BLE001 - reported to the test through `errors`
                    platform.errors.append(f"{parts.path}: {type(exc).__name__}: {exc}")
                    status, reply = 500, b"error"
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def stop(self) -> None:
        for thread in self._threads:
            thread.join(timeout=10)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
