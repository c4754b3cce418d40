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
