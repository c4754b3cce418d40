"""What a platform's credentials must look like before they are stored (the add_component command and the
admin share these checks). WeChat sets the rules on open.weixin.qq.com (docs/wechat/crypto.md#keys-and-parameters):
a value that breaks them would only fail later, on the first push or the first token refresh."""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from wxplatform.wechat.crypto import CryptoError, MessageCrypto

# "wx" and 16 letters or digits: real appids are hex, the sandbox's are not.
_APPID_RE = re.compile(r"wx[0-9A-Za-z]{16}")
# The open-platform settings form accepts 3 to 32 letters and digits as the message verification token.
_TOKEN_RE = re.compile(r"[0-9A-Za-z]{3,32}")
# AppSecrets are 32 hex characters at WeChat; anything printable without spaces is accepted (the sandbox's).
_SECRET_RE = re.compile(r"[!-~]{1,128}")


def validate_component_appid(value: str) -> None:
    if not _APPID_RE.fullmatch(value):
        raise ValidationError(_("A component AppID is “wx” followed by 16 letters or digits."), code="appid")


def validate_not_default(value: str) -> None:
    """The default platform's credentials come from the WECHAT_COMPONENT_* settings, never from here."""
    if value == settings.WECHAT_COMPONENT_APPID:
        raise ValidationError(
            _(
                "%(appid)s is the default platform: its credentials come from the WECHAT_COMPONENT_* settings "
                "and are changed there."
            )
            % {"appid": value},
            code="default",
        )


def validate_appsecret(value: str) -> None:
    if not _SECRET_RE.fullmatch(value):
        raise ValidationError(_("The AppSecret must be 1 to 128 printable characters without spaces."), code="secret")


def validate_token(value: str) -> None:
    if not _TOKEN_RE.fullmatch(value):
        raise ValidationError(
            _("The message verification token must be 3 to 32 letters or digits (WeChat's rule)."), code="token"
        )


def validate_aes_key(value: str) -> None:
    # The very check the push URLs will make: 43 characters of [A-Za-z0-9] decoding to a 32-byte key.
    try:
        MessageCrypto("token", value, "wx")
    except CryptoError:
        raise ValidationError(
            _("The EncodingAESKey must be 43 letters or digits (a 32-byte key in base64, without the “=”)."),
            code="aes_key",
        ) from None
