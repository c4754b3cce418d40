"""The one place where an HTTP answer from WeChat becomes data or a typed error.

Shared by the requests client and the aiohttp fan-out so both classify failures identically. WeChat reports
almost every failure as HTTP 200 with a non-zero `errcode` (protocol §6); success bodies may carry
`errcode: 0` or none at all (draft/count answers just `{"total_count": 15}`).
"""

from __future__ import annotations

import json
from typing import Any

from wxplatform.wechat.errors import TransportError, error_for

__all__ = ["MALFORMED", "parse_body"]

MALFORMED = "malformed body"


def parse_body(status: int, body: bytes) -> dict[str, Any]:
    """The JSON object of a successful answer; otherwise raises the matching WeChatError subclass."""
    if status >= 500:
        raise TransportError(f"HTTP {status}", status=status)
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        # ValueError covers JSONDecodeError and undecodable bytes (UnicodeDecodeError).
        raise TransportError(MALFORMED, status=status) from None
    if not isinstance(data, dict):
        raise TransportError(MALFORMED, status=status)
    errcode = data.get("errcode", 0)
    if isinstance(errcode, bool) or not isinstance(errcode, int):
        raise TransportError(MALFORMED, status=status)
    if errcode != 0:
        errmsg = data.get("errmsg", "")
        raise error_for(errcode, errmsg if isinstance(errmsg, str) else str(errmsg))
    if status != 200:
        raise TransportError(f"HTTP {status}", status=status)
    return data
