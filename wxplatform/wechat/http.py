"""The one place where an HTTP answer from WeChat becomes data or a typed error.

Shared by the requests client and the aiohttp fan-out so both classify failures identically. WeChat reports
almost every failure as HTTP 200 with a non-zero `errcode` (docs/wechat/errors.md); success bodies may carry
`errcode: 0` or none at all (draft/count answers just `{"total_count": 15}`).
"""

from __future__ import annotations

import json
from typing import Any

from wxplatform.wechat.errors import TransportError, error_for

__all__ = [
    "MALFORMED",
    "malformed",
    "nested_id",
    "optional_int",
    "optional_obj",
    "optional_str",
    "parse_body",
    "required_int",
    "required_obj",
    "required_str",
    "text",
]

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


# Lenient field access (docs/wechat/endpoints.md#api_get_authorizer_info: payload shapes vary by account age and kind).
# Missing optional data is
# None or empty; missing or mistyped required data means the answer is unusable, reported as MALFORMED.


def malformed() -> TransportError:
    """A 200 answer without the fields a success must carry."""
    return TransportError(MALFORMED, status=200)


def required_str(data: dict[str, Any], key: str) -> str:
    value = optional_str(data, key)
    if value is None:
        raise malformed()
    return value


def optional_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) and value else None


def text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""


def required_int(data: dict[str, Any], key: str) -> int:
    value = optional_int(data, key)
    if value is None:
        raise malformed()
    return value


def optional_int(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def required_obj(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = optional_obj(data, key)
    if value is None:
        raise malformed()
    return value


def optional_obj(data: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = data.get(key)
    return value if isinstance(value, dict) else None


def nested_id(data: dict[str, Any], key: str) -> int | None:
    nested = optional_obj(data, key)
    return None if nested is None else optional_int(nested, "id")
