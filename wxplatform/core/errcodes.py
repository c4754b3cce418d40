"""What WeChat's errcodes mean, for the people who read them in the console (docs/wechat/errors.md).

Staff see a code with its meaning, never a bare number. The WeChat boundary (wxplatform/wechat/errors.py)
classifies codes by what to do about them; this table says in words what each one means, translated.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

MEANINGS = {
    -1: _("WeChat is busy; retried later"),
    40001: _("token invalid or replaced; refreshed once"),
    40013: _("invalid AppID"),
    40014: _("token malformed; refreshed once"),
    40125: _("platform secret rejected"),
    40164: _("this server's IP is not on the account's whitelist"),
    41001: _("token missing"),
    41002: _("AppID missing"),
    42001: _("token expired; refreshed once"),
    45009: _("daily quota used up; paused until it resets"),
    45011: _("calling too fast; retried next minute"),
    47001: _("request format rejected"),
    48001: _("the account may not use this API (type or verification)"),
    48006: _("this month's 10 quota clears are used"),
    50001: _("the account did not authorize this API"),
    50002: _("the account is restricted"),
    61003: _("the account no longer authorizes this platform"),
    61004: _("this server's IP is not on the platform's whitelist"),
    61005: _("verify ticket expired"),
    61006: _("verify ticket invalid"),
    61007: _("permission set not granted to this platform"),
    61009: _("authorization code invalid"),
    61010: _("authorization code expired"),
    61011: _("not a third-party platform AppID"),
    61023: _("refresh token invalid; the merchant must authorize again"),
    76001: _("rid not found, or older than 7 days"),
    76002: _("malformed rid"),
    76003: _("this account may not see this rid"),
}


def errcode_label(code: int | None) -> str:
    """'45009 daily quota used up; …' for a known code, the bare number otherwise, 'network' without one."""
    if code is None:
        return str(_("no errcode (network)"))
    meaning = MEANINGS.get(code)
    return f"{code} {meaning}" if meaning else str(code)


# What the WeChat client records when no answer came (wxplatform/wechat/client.py, bulk.py: "<label>: <OS
# reason>"), in words. getaddrinfo's failures read "Unknown error -2" or "Name or service not known".
TRANSPORT_LABELS = {
    "connection error": _("WeChat could not be reached"),
    "connect timeout": _("WeChat did not accept the connection in time"),
    "read timeout": _("WeChat did not answer in time"),
    "timeout": _("WeChat did not answer in time"),
    "broken response": _("WeChat's answer was cut off"),
}
OS_REASONS = {
    "Unknown error -2": _("the host name does not resolve (DNS)"),
    "Name or service not known": _("the host name does not resolve (DNS)"),
    "Temporary failure in name resolution": _("the host name does not resolve (DNS)"),
    "name resolution failed": _("the host name does not resolve (DNS)"),
    "Connection refused": _("the connection was refused"),
    "Network is unreachable": _("the network is unreachable"),
    "No route to host": _("no route to the host"),
    "Connection reset by peer": _("the connection was reset"),
}


def transport_error_label(message: str) -> str:
    """'connection error: Unknown error -2' → 'WeChat could not be reached: the host name does not resolve
    (DNS)', translated; anything else (WeChat's own errmsg) as it is."""
    label, _sep, reason = message.partition(": ")
    words = TRANSPORT_LABELS.get(label)
    if words is None:
        return message
    if not reason:
        return str(words)
    return str(_("%(what)s: %(why)s") % {"what": words, "why": OS_REASONS.get(reason, reason)})
