"""Verifying, decrypting and answering a push to either WeChat URL, apart from HTTP, so that the views and
the push log's replay run the same code.

Order matters: msg_signature is verified before anything else is looked at, then the message is
decrypted (the appid inside must be the component's, on both URLs: docs/wechat/message-url.md#message-request),
then its age is checked, then the handler acts. Nothing changes unless all of that passed.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

from django.conf import settings
from django.utils.translation import gettext as _

from tenants.events import APPID, UNIX_SECONDS, authorization_event_handle
from tenants.messages import authorizer_message_handle, message_kind
from tenants.models import PushEndpoint, PushOutcome
from wxplatform.component.clients import message_crypto
from wxplatform.component.models import Platform
from wxplatform.wechat.crypto import AppIdMismatchError, CryptoError, SignatureError, build_xml, parse_xml

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    """What to answer a push, and what the push log records about it."""

    status: int
    outcome: PushOutcome
    content: bytes = b""
    content_type: str = "text/plain"
    error_code: str = ""
    error_message: str = ""
    kind: str = ""
    authorizer_appid: str = ""
    signature_ok: bool | None = None
    decrypted: bool | None = None


def rejected(status: int, code: str, message: str, facts: Answer | None = None) -> Answer:
    """A 4xx in the error shape, keeping what was learnt about the push before it was refused."""
    base = facts if facts is not None else Answer(status=status, outcome=PushOutcome.REJECTED)
    return replace(base, status=status, outcome=PushOutcome.REJECTED, error_code=code, error_message=message)


def receive_push(
    component: Platform,
    *,
    endpoint: PushEndpoint,
    body: bytes,
    query: Mapping[str, str],
    authorizer_appid: str = "",
    check_age: bool = True,
) -> Answer:
    """Verifies, decrypts and handles one push to one platform's URL, with that platform's token and key: a
    push for another platform fails verification and changes nothing. `check_age=False` is for replaying a
    stored push, whose timestamp is old by design."""
    if endpoint == PushEndpoint.MESSAGE and not APPID.fullmatch(authorizer_appid):
        return rejected(400, "invalid_appid", _("The AppID in the URL is not an AppID."))
    timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
    msg_signature = query.get("msg_signature", "")
    if not (UNIX_SECONDS.fullmatch(timestamp) and nonce and msg_signature):
        return rejected(400, "missing_parameters", _("timestamp, nonce and msg_signature are required."))
    facts = Answer(status=0, outcome=PushOutcome.REJECTED, authorizer_appid=authorizer_appid)
    try:
        inner = message_crypto(component).decrypt_message(
            body, msg_signature=msg_signature, timestamp=timestamp, nonce=nonce
        )
    except SignatureError:
        logger.warning("push rejected: bad msg_signature")
        facts = replace(facts, signature_ok=False)
        return rejected(401, "bad_signature", _("The message signature does not verify."), facts)
    except AppIdMismatchError:
        logger.warning("push rejected: encrypted for another appid")
        facts = replace(facts, signature_ok=True, decrypted=False)
        return rejected(400, "wrong_appid", _("The message is not addressed to this platform."), facts)
    except CryptoError as exc:
        # Also raised before the signature check, when the envelope is not XML with an Encrypt element.
        logger.warning("push rejected: %s", type(exc).__name__)
        return rejected(400, "bad_message", _("The message cannot be decrypted or parsed."), facts)
    facts = replace(facts, signature_ok=True, decrypted=True)
    try:
        fields = parse_xml(inner)
    except CryptoError as exc:
        logger.warning("push rejected: %s", type(exc).__name__)
        return rejected(400, "bad_message", _("The message cannot be decrypted or parsed."), facts)
    # The signature covers the timestamp: a push that verifies but is older than this is a replay.
    if check_age and abs(time.time() - int(timestamp)) > settings.WECHAT_PUSH_MAX_AGE:
        logger.warning("push rejected: timestamp outside the accepted window")
        return rejected(400, "stale_message", _("The message timestamp is outside the accepted window."), facts)
    if endpoint == PushEndpoint.COMPONENT:
        return _component_push(component, fields, facts)
    return _message_push(component, fields, facts)


def _component_push(component: Platform, fields: dict[str, str], facts: Answer) -> Answer:
    appid = fields.get("AuthorizerAppid", "")
    facts = replace(
        facts, authorizer_appid=appid if APPID.fullmatch(appid) else "", kind=fields.get("InfoType", "")[:80]
    )
    if fields.get("AppId", component.component_appid) != component.component_appid:
        return rejected(400, "wrong_appid", _("The message is not addressed to this platform."), facts)
    authorization_event_handle(component, fields=fields)
    return replace(facts, status=200, outcome=PushOutcome.SUCCESS, content=b"success")


def _message_push(component: Platform, fields: dict[str, str], facts: Answer) -> Answer:
    facts = replace(facts, kind=message_kind(fields))
    answer = authorizer_message_handle(component, authorizer_appid=facts.authorizer_appid, fields=fields)
    if answer.outcome == PushOutcome.EMPTY:
        return replace(facts, status=200, outcome=PushOutcome.EMPTY, content=b"")
    if answer.outcome != PushOutcome.REPLY:
        return replace(facts, status=200, outcome=PushOutcome.SUCCESS, content=b"success")
    reply = passive_text_reply(component, fields, answer.content).encode()
    return replace(facts, status=200, outcome=PushOutcome.REPLY, content=reply, content_type="text/xml")


def passive_text_reply(component: Platform, fields: dict[str, str], content: str) -> str:
    """A passive text reply to the sender in WeChat's encrypted reply envelope: to the message's FromUserName,
    from its ToUserName (docs/wechat/message-url.md#passive-replies, docs/wechat/crypto.md#reply-envelope)."""
    now = int(time.time())
    plain = build_xml(
        {
            "ToUserName": fields.get("FromUserName", ""),
            "FromUserName": fields.get("ToUserName", ""),
            "CreateTime": now,
            "MsgType": "text",
            "Content": content,
        }
    )
    timestamp, nonce = str(now), str(int.from_bytes(os.urandom(4), "big"))
    encrypt, signature = message_crypto(component).encrypt_message(plain, timestamp=timestamp, nonce=nonce)
    return build_xml({"Encrypt": encrypt, "MsgSignature": signature, "TimeStamp": now, "Nonce": nonce})
