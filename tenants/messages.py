"""What the service does with a verified message or event pushed to the message-and-event URL
(消息与事件接收URL, docs/wechat/message-url.md).

The service serves draft counts, not fans: for merchants' accounts every message is acknowledged with
`success`. The events that follow a change of the draft box (docs/wechat/draft-events.md) are announced
(tenants.signals.draft_box_changed), so that the drafts app reads the count again. Only WeChat's
full-release test accounts (settings.WECHAT_RELEASE_TEST_APPIDS) get the answers the test expects
(docs/wechat/message-url.md#message-cases). The slow case (QUERY_AUTH_CODE) is recorded once per message (a
unique key, so that WeChat's retries are no-ops) and queued for a worker.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction

from tenants.models import AuthorizerMessage, PushOutcome
from tenants.signals import draft_box_changed
from tenants.tasks import answer_query_auth_code
from wxplatform.component.models import Platform
from wxplatform.core.queueing import enqueue_on_commit

logger = logging.getLogger(__name__)

TEXT_CASE = "TESTCOMPONENT_MSG_TYPE_TEXT"
QUERY_AUTH_CODE_PREFIX = "QUERY_AUTH_CODE:"
# Authorization codes are ~100 characters; events are short names such as LOCATION or subscribe.
_MAX_CODE = 512
_MAX_EVENT = 64
# Events after which the account's draft box holds fewer drafts: a publish or a mass send of a draft ended
# (docs/wechat/draft-events.md). FREEPUBLISHJOBFINISH is the name in one of WeChat's own samples; what WeChat
# sends is PUBLISHJOBFINISH (docs/wechat/draft-events.md#publishjobfinish), both are taken.
DRAFT_BOX_EVENTS = frozenset({"PUBLISHJOBFINISH", "FREEPUBLISHJOBFINISH", "MASSSENDJOBFINISH"})


@dataclass(frozen=True)
class MessageAnswer:
    outcome: PushOutcome
    # The Content of a passive text reply, when outcome is REPLY.
    content: str = ""


SUCCESS = MessageAnswer(PushOutcome.SUCCESS)


def message_kind(fields: dict[str, str]) -> str:
    """What the push log shows as the kind: the MsgType, or "event:<Event>"."""
    msg_type = fields.get("MsgType", "")[:32]
    if msg_type == "event":
        return f"event:{fields.get('Event', '')[:_MAX_EVENT]}"
    return msg_type


def dedup_key(fields: dict[str, str]) -> str:
    """MsgId for messages; events have none, so their sender and CreateTime
    (docs/wechat/message-url.md#retries-and-deduplication)."""
    msg_id = fields.get("MsgId", "")
    if msg_id:
        return f"msg:{msg_id[:64]}"
    return f"event:{fields.get('FromUserName', '')[:128]}:{fields.get('CreateTime', '')[:16]}"


def authorizer_message_handle(component: Platform, *, authorizer_appid: str, fields: dict[str, str]) -> MessageAnswer:
    """The answer to one verified, decrypted message for `authorizer_appid` through `component`'s URL; queues
    slow work after commit."""
    if fields.get("MsgType") == "event" and fields.get("Event") in DRAFT_BOX_EVENTS:
        draft_box_changed.send(
            sender=Platform, component_id=component.pk, authorizer_appid=authorizer_appid, event=fields["Event"]
        )
    if authorizer_appid not in settings.WECHAT_RELEASE_TEST_APPIDS:
        return SUCCESS
    msg_type = fields.get("MsgType", "")
    if msg_type == "event":
        event = fields.get("Event", "")
        if not event or len(event) > _MAX_EVENT:
            return SUCCESS
        # The older wording of the test, which WeChat still uses: no separator.
        return MessageAnswer(PushOutcome.REPLY, f"{event}from_callback")
    if msg_type != "text":
        return SUCCESS
    content = fields.get("Content", "")
    if content == TEXT_CASE:
        return MessageAnswer(PushOutcome.REPLY, f"{TEXT_CASE}_callback")
    if content.startswith(QUERY_AUTH_CODE_PREFIX):
        code = content[len(QUERY_AUTH_CODE_PREFIX) :]
        if code and len(code) <= _MAX_CODE and fields.get("FromUserName"):
            _query_auth_code_receive(component, authorizer_appid=authorizer_appid, fields=fields, code=code)
        # An empty answer at once; the customer-service message follows from the worker.
        return MessageAnswer(PushOutcome.EMPTY)
    return SUCCESS


def _query_auth_code_receive(component: Platform, *, authorizer_appid: str, fields: dict[str, str], code: str) -> None:
    try:
        with transaction.atomic():
            message = AuthorizerMessage.objects.create(
                component_appid=component.component_appid,
                authorizer_appid=authorizer_appid,
                dedup_key=dedup_key(fields),
                from_user=fields["FromUserName"][:128],
                query_auth_code=code,
            )
            enqueue_on_commit(answer_query_auth_code, message.pk)
    except IntegrityError:
        # WeChat's retry of a message already taken: the first delivery's task does the work.
        logger.info("message retry ignored", extra={"appid": authorizer_appid})
