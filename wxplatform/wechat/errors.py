"""WeChat errors, typed by what the caller should do about them.

WeChat answers almost every failure as HTTP 200 with `{"errcode": N, "errmsg": "... rid: ..."}`; success
bodies may carry `errcode: 0` or no errcode at all. The class of an error is decided by its errcode alone:
errmsg (with its ` rid:` suffix, which WeChat support asks for) is kept verbatim and never string-matched to
classify; the one thing read out of it is the IP a 61004 names (refused_ip), to tell the operator.
Codes and their meaning: docs/wechat/errors.md.
"""

from __future__ import annotations

import ipaddress
import re
from typing import ClassVar

# WeChat ends every error's errmsg with " rid: XXXXXXXX-XXXXXXXX-XXXXXXXX", the request id that
# openapi/rid/get explains for 7 days (docs/wechat/errors.md#rid).
_RID = re.compile(r"\brid:\s*([0-9A-Za-z]+(?:-[0-9A-Za-z]+)*)\s*$")


def rid_of(errmsg: str) -> str:
    """The rid at the end of a WeChat errmsg, or "" when it carries none (transport failures)."""
    match = _RID.search(errmsg)
    return match.group(1)[:64] if match else ""


class WeChatError(Exception):
    """A call to WeChat did not succeed. `errcode` is None for transport-level failures."""

    kind: ClassVar[str] = "unknown"
    retryable: ClassVar[bool] = False

    def __init__(self, errcode: int | None, errmsg: str = "") -> None:
        self.errcode = errcode
        self.errmsg = errmsg
        self.rid = rid_of(errmsg) if errcode is not None else ""
        super().__init__(f"WeChat error {errcode}: {errmsg}" if errcode is not None else errmsg)

    def __reduce__(self) -> tuple[type[WeChatError], tuple[int | None, str]]:
        # Keeps the subclass and both fields across pickling (multiprocessing, Celery eager mode).
        return (type(self), (self.errcode, self.errmsg))


class RetryableError(WeChatError):
    """WeChat is busy or unreachable (-1, 45011, network errors, timeouts, HTTP 5xx, a body that is not JSON).
    Retry with capped exponential backoff and jitter."""

    kind = "retryable"
    retryable = True


_UNREACHABLE = ("connect timeout", "read timeout", "timeout", "connection error")


class TransportError(RetryableError):
    """The request did not produce a usable WeChat answer (connection error, timeout, 5xx, garbage)."""

    kind = "transport"

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(None, reason)

    @property
    def unreachable(self) -> bool:
        """No answer came back (a connection error or a timeout), as opposed to a 5xx or a garbled answer.
        The reasons are built in this package (client.py, bulk.py), so their wording is known."""
        return self.status is None and self.errmsg.startswith(_UNREACHABLE)


class TokenError(WeChatError):
    """The access token is invalid, stale or expired (40001, 40014, 42001): refresh once, retry once."""

    kind = "token"


class AccountStateError(WeChatError):
    """The account may not make this call (48001, 50001, 50002, 61003, 61007). Never retried."""

    kind = "permission"


class QuotaError(WeChatError):
    """The account's daily quota for this API is spent (45009): no calls until it resets."""

    kind = "quota"


class ClearQuotaLimitError(WeChatError):
    """clear_quota refused: this month's 10 clears of the account are used (48006)."""

    kind = "clear_quota_limit"


class ConfigurationError(WeChatError):
    """The platform itself is misconfigured (61004, 40164, 40125, 61011, 40013). Alert; never retried."""

    kind = "configuration"


class TicketError(WeChatError):
    """The component_verify_ticket is expired or invalid (61005, 61006): ask WeChat to push a new one."""

    kind = "ticket"


class RefreshTokenError(WeChatError):
    """The authorizer refresh token is invalid (61023): recover it from the authorizer list or re-authorize."""

    kind = "refresh_token"


class AuthorizationCodeError(WeChatError):
    """The authorization code is invalid or expired (61009, 61010): the merchant must authorize again."""

    kind = "authorization_code"


class UnknownError(WeChatError):
    """An errcode this service has no rule for. Recorded and not retried."""

    kind = "unknown"


_BY_CODE: dict[int, type[WeChatError]] = {
    -1: RetryableError,
    45011: RetryableError,
    40001: TokenError,
    40014: TokenError,
    42001: TokenError,
    48001: AccountStateError,
    50001: AccountStateError,
    50002: AccountStateError,
    61003: AccountStateError,
    61007: AccountStateError,
    45009: QuotaError,
    48006: ClearQuotaLimitError,
    61004: ConfigurationError,
    40164: ConfigurationError,
    40125: ConfigurationError,
    61011: ConfigurationError,
    40013: ConfigurationError,
    61005: TicketError,
    61006: TicketError,
    61023: RefreshTokenError,
    61009: AuthorizationCodeError,
    61010: AuthorizationCodeError,
}

# Codes for which the account itself has lost the right to call draft/count.
REVOKED_CODES = frozenset({61003})
INELIGIBLE_CODES = frozenset({48001, 61007})


def error_for(errcode: int, errmsg: str = "") -> WeChatError:
    """The typed error for a non-zero errcode."""
    return _BY_CODE.get(errcode, UnknownError)(errcode, errmsg)


WHITELIST_REFUSED = 61004
# "access clientip is not registered requestIP: 1.2.3.4 rid: …" (docs/wechat/flow.md#ip-whitelist)
_REQUEST_IP = re.compile(r"requestIP:\s*([0-9A-Fa-f:.]{2,45})")


def refused_ip(error: WeChatError) -> str | None:
    """The IP WeChat saw and refused, named in a 61004 errmsg; None for other errors or when it names none."""
    if error.errcode != WHITELIST_REFUSED:
        return None
    match = _REQUEST_IP.search(error.errmsg)
    if match is None:
        return None
    try:
        return str(ipaddress.ip_address(match.group(1).rstrip(".:")))
    except ValueError:
        return None
