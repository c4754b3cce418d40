"""A stand-in for the TLS-terminating proxy in front of production: it forwards every request to gunicorn with
the public Host, X-Forwarded-Proto: https and X-Forwarded-For, as nginx or a cloud load balancer would.
From 127.0.0.1 (in TRUSTED_PROXIES) Django believes those headers; nothing else about the request changes."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class FrontProxy:
    def __init__(self, upstream: str, public_host: str) -> None:
        session = requests.Session()

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                headers.update(
                    {"Host": public_host, "X-Forwarded-Proto": "https", "X-Forwarded-For": self.client_address[0]}
                )
                answer = session.request(
                    self.command, f"{upstream}{self.path}", data=body, headers=headers,
                    allow_redirects=False, stream=True, timeout=60,
                )  # fmt: skip
                content = answer.raw.read(decode_content=False)
                self.send_response(answer.status_code)
                for name, value in answer.raw.headers.items():
                    if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _forward

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> FrontProxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
