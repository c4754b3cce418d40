"""Authorization event receiving URL (授权事件接收URL): POST /wechat/component/events.

WeChat expects the bare string `success` quickly (protocol §1.2), so slow work (exchanging an
authorization code) goes to Celery after commit. Nothing changes unless msg_signature verifies.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from wxplatform.component.clients import message_crypto
from wxplatform.component.services import component_push_record, component_ticket_store
from wxplatform.queueing import enqueue_on_commit
from wxplatform.wechat.crypto import AppIdMismatchError, CryptoError, SignatureError, parse_xml

logger = logging.getLogger(__name__)

# WeChat pushes are a few hundred bytes; anything near this is not from WeChat.
MAX_PUSH_BYTES = 64 * 1024
# Unix seconds as WeChat sends them (timestamp, CreateTime). Not str.isdigit(), which also accepts "²" (that
# int() refuses), and at most 10 digits, so that the value fits a float and a datetime.
_UNIX_SECONDS = re.compile(r"[0-9]{1,10}")
# An AppID as stored (Tenant.authorizer_appid, AuthorizationCode.authorizer_appid: 64 characters at most).
_APPID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


@csrf_exempt
@require_POST
def component_events(request: HttpRequest) -> HttpResponse:
    if int(request.META.get("CONTENT_LENGTH") or 0) > MAX_PUSH_BYTES:
        return _error(413, "payload_too_large", _("The request body is too large."))
    try:
        body = request.body
    except RequestDataTooBig:
        return _error(413, "payload_too_large", _("The request body is too large."))
    if len(body) > MAX_PUSH_BYTES:
        return _error(413, "payload_too_large", _("The request body is too large."))
    params = request.GET
    timestamp, nonce, msg_signature = (
        params.get("timestamp", ""),
        params.get("nonce", ""),
        params.get("msg_signature", ""),
    )
    if not (_UNIX_SECONDS.fullmatch(timestamp) and nonce and msg_signature):
        return _error(400, "missing_parameters", _("timestamp, nonce and msg_signature are required."))
    try:
        inner = message_crypto().decrypt_message(body, msg_signature=msg_signature, timestamp=timestamp, nonce=nonce)
        fields = parse_xml(inner)
    except SignatureError:
        logger.warning("push rejected: bad msg_signature")
        return _error(401, "bad_signature", _("The message signature does not verify."))
    except AppIdMismatchError:
        logger.warning("push rejected: encrypted for another appid")
        return _error(400, "wrong_appid", _("The message is not addressed to this platform."))
    except CryptoError as exc:
        logger.warning("push rejected: %s", type(exc).__name__)
        return _error(400, "bad_message", _("The message cannot be decrypted or parsed."))
    # The signature covers the timestamp: a push that verifies but is older than this is a replay.
    if abs(time.time() - int(timestamp)) > settings.WECHAT_PUSH_MAX_AGE:
        logger.warning("push rejected: timestamp outside the accepted window")
        return _error(400, "stale_message", _("The message timestamp is outside the accepted window."))
    if fields.get("AppId", settings.WECHAT_COMPONENT_APPID) != settings.WECHAT_COMPONENT_APPID:
        return _error(400, "wrong_appid", _("The message is not addressed to this platform."))
    _dispatch(fields)
    return HttpResponse("success", content_type="text/plain")


def _create_time(fields: dict[str, str]) -> datetime:
    raw = fields.get("CreateTime", "")
    seconds = int(raw) if _UNIX_SECONDS.fullmatch(raw) else int(time.time())
    return datetime.fromtimestamp(seconds, tz=UTC)


def _dispatch(fields: dict[str, str]) -> None:
    # Imported here: tenants depends on the component app, not the other way round at import time.
    from tenants.services import authorization_code_receive, tenant_revoke
    from tenants.tasks import authorize_from_push

    info_type = fields.get("InfoType", "")
    created_at = _create_time(fields)
    # Verified, yet checked before it reaches a column: a value that cannot be an AppID is treated as absent
    # (api_query_auth names the account anyway) instead of failing the insert with a 500.
    appid = fields.get("AuthorizerAppid", "")
    appid = appid if _APPID.fullmatch(appid) else ""
    if info_type == "component_verify_ticket":
        ticket = fields.get("ComponentVerifyTicket", "")
        if ticket:
            component_ticket_store(ticket=ticket, created_at=created_at)
        return
    component_push_record(info_type=info_type or "unknown")
    if info_type in ("authorized", "updateauthorized"):
        code = fields.get("AuthorizationCode", "")
        if not code:
            return
        with transaction.atomic():
            row = authorization_code_receive(code=code, authorizer_appid=appid)
            if row.processed_at is None:
                enqueue_on_commit(authorize_from_push, row.pk)
    elif info_type == "unauthorized":
        if appid:
            tenant_revoke(authorizer_appid=appid, revoked_at=created_at)
    else:
        # Other InfoTypes (e.g. notify_third_fasteregister) share this URL; acknowledged and ignored.
        logger.info("push ignored: InfoType %s", info_type[:64])
