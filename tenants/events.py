"""What the service does with the pushes WeChat sends to the authorization event URL (授权事件接收URL).

The view (tenants.views.component_events) verifies, decrypts and answers; this module acts on the verified
fields. Slow work (exchanging an authorization code) is queued after commit, so that WeChat gets its answer
within 5 s (docs/wechat/flow.md).
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime

from django.db import transaction

from tenants.services import authorization_code_receive, tenant_revoke
from tenants.tasks import authorize_from_push
from wxplatform.component.models import Platform
from wxplatform.component.services import component_push_record, component_ticket_store
from wxplatform.core.queueing import enqueue_on_commit

logger = logging.getLogger(__name__)

# Unix seconds as WeChat sends them (timestamp, CreateTime). Not str.isdigit(), which also accepts "²" (that
# int() refuses), and at most 10 digits, so that the value fits a float and a datetime.
UNIX_SECONDS = re.compile(r"[0-9]{1,10}")
# An AppID as stored (Tenant.authorizer_appid, AuthorizationCode.authorizer_appid: 64 characters at most).
APPID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _create_time(fields: dict[str, str]) -> datetime:
    raw = fields.get("CreateTime", "")
    seconds = int(raw) if UNIX_SECONDS.fullmatch(raw) else int(time.time())
    return datetime.fromtimestamp(seconds, tz=UTC)


def authorization_event_handle(component: Platform, *, fields: dict[str, str]) -> None:
    """Acts on one verified, decrypted push to the authorization event URL (docs/wechat/flow.md): stores a
    ticket, records a code and queues its exchange, or revokes a tenant, all of `component` (the platform whose
    URL and keys the push came through). Quick: WeChat waits 5 s at most."""
    info_type = fields.get("InfoType", "")
    created_at = _create_time(fields)
    # Verified, yet checked before it reaches a column: a value that cannot be an AppID is treated as absent
    # (api_query_auth names the account anyway) instead of failing the insert with a 500.
    appid = fields.get("AuthorizerAppid", "")
    appid = appid if APPID.fullmatch(appid) else ""
    if info_type == "component_verify_ticket":
        ticket = fields.get("ComponentVerifyTicket", "")
        if ticket:
            component_ticket_store(component, ticket=ticket, created_at=created_at)
        return
    component_push_record(component, info_type=info_type or "unknown")
    if info_type in ("authorized", "updateauthorized"):
        code = fields.get("AuthorizationCode", "")
        if not code:
            return
        with transaction.atomic():
            row = authorization_code_receive(component=component, code=code, authorizer_appid=appid, pushed=True)
            if row.processed_at is None:
                enqueue_on_commit(authorize_from_push, row.pk)
    elif info_type == "unauthorized":
        if appid:
            tenant_revoke(component_id=component.pk, authorizer_appid=appid, revoked_at=created_at)
    else:
        # Other InfoTypes (e.g. notify_third_fasteregister) share this URL; acknowledged and ignored.
        logger.info("push ignored: InfoType %s", info_type[:64])
