"""The WeChat gateway: the provider's other services call WeChat through this service, with their service key
and without ever holding a token (README "WeChat gateway").

A call names its platform, optionally an account, and a WeChat path. The key must be allowed the platform (as
for hand-outs) and the path (one of its `allowed_paths` patterns), both checked before any WeChat call. The
token is the one this service keeps: the account's authorizer access token (`access_token=`) or the
platform's component token (`component_access_token=`, docs/wechat/endpoints.md#conventions). WeChat's answer
goes back unchanged. When WeChat says the token is invalid or expired (40001, 40014, 42001) the token is
refreshed once, single-flight with every other refresher (the row lock and the version compare-and-set of the
sync), and the call is repeated once; a second refusal goes back as WeChat said it.

Every call is counted: `wxp_gateway_calls_total` and one GatewayUsage row per day, key, account and path
(one upsert per call), which the console shows and the quota attribution reads as this provider's own use.
A token never reaches the caller or a log: the caller's own token parameters are dropped, and a read answer
that would quote the token has it replaced.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase

from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext as _

from tenants.models import Tenant
from tenants.quota import quota_day_of
from wxplatform.authority.models import GatewayUsage, HandoutOutcome, ServiceKey
from wxplatform.authority.services import (
    HandoutRefused,
    authorizer_token_refresh,
    component_token_for,
    key_account,
    key_platform,
    usable_authorizer_token,
)
from wxplatform.component.clients import wechat_client
from wxplatform.component.models import Platform
from wxplatform.component.services import component_token_refresh
from wxplatform.core import metrics
from wxplatform.wechat.client import Forwarded
from wxplatform.wechat.errors import TokenError, WeChatError, error_for

logger = logging.getLogger(__name__)

AUTHORIZER_TOKEN_PARAM = "access_token"  # noqa: S105 - parameter names, not secrets
COMPONENT_TOKEN_PARAM = "component_access_token"  # noqa: S105
# Never passed on from the caller: the gateway adds the one token the call needs.
_TOKEN_PARAMS = frozenset({AUTHORIZER_TOKEN_PARAM, COMPONENT_TOKEN_PARAM, "authorizer_access_token"})
# WeChat's API paths: /cgi-bin/…, /wxa/…, /datacube/…, /card/…, /merchant/…; ASCII, no dot segments.
_PATH = re.compile(r"^/(?:[A-Za-z0-9_\-]+/)*[A-Za-z0-9_\-.]+$")
PATH_MAX = 128
METHODS = frozenset({"GET", "POST"})


@dataclass(frozen=True)
class GatewayCall:
    method: str
    path: str
    query: list[tuple[str, str]]
    body: bytes | None
    content_type: str | None


class GatewayUnreachable(Exception):
    """No answer from WeChat (a transport failure), after the one retry a token refusal allows."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def _token_refused(answer: Forwarded) -> bool:
    """WeChat says the token is invalid, stale or expired (40001, 40014, 42001: the boundary's TokenError)."""
    return answer.errcode is not None and isinstance(error_for(answer.errcode), TokenError)


def allowed_pattern(key: ServiceKey, path: str) -> str | None:
    """The first of the key's patterns that allows `path`, or None."""
    for pattern in key.allowed_paths or []:
        if isinstance(pattern, str) and fnmatchcase(path, pattern):
            return pattern
    return None


def _refused_path(path: str) -> HandoutRefused | None:
    if len(path) > PATH_MAX or not _PATH.match(path) or "/../" in path or path.endswith("/.."):
        return HandoutRefused(
            HandoutOutcome.NOT_FOUND, "wechat_path_invalid", _("This is not a WeChat API path the gateway can call.")
        )
    return None


def gateway_call(
    *, key: ServiceKey, component_appid: str, authorizer_appid: str | None, call: GatewayCall
) -> Forwarded:
    """Calls WeChat for the key with the right token and returns its answer; HandoutRefused before any WeChat
    call when the key, platform, account or path is refused; GatewayUnreachable when WeChat did not answer."""
    pattern = "refused"
    known = False
    outcome = "0"
    try:
        refused = _refused_path(call.path)
        if refused is not None:
            raise refused
        matched = allowed_pattern(key, call.path)
        if matched is None:
            raise HandoutRefused(
                HandoutOutcome.FORBIDDEN,
                "wechat_path_not_allowed",
                _("This service key may not call %(path)s through the gateway.") % {"path": call.path},
            )
        pattern = matched
        if authorizer_appid is None:
            platform = key_platform(key, component_appid)
            known = True
            forwarded = _call_component(platform, call)
        else:
            tenant = key_account(key, component_appid, authorizer_appid)
            known = True
            forwarded = _call_authorizer(tenant, call)
        outcome = _outcome(forwarded)
        return forwarded
    except HandoutRefused as refusal:
        outcome = refusal.code
        raise
    except GatewayUnreachable:
        outcome = "transport"
        raise
    finally:
        metrics.record_gateway_call(key.prefix, component_appid if known else "unknown", pattern, outcome)
        if known:
            _count(key, component_appid, authorizer_appid or "", call.path, failed=outcome != "0")


def _call_component(platform: Platform, call: GatewayCall) -> Forwarded:
    query = _query(call)
    token = component_token_for(platform).access_token
    answer = _send(call, query, COMPONENT_TOKEN_PARAM, token)
    if _token_refused(answer):
        # Refreshed once, single-flight: a caller that finds a newer token than the one refused uses it.
        try:
            token = component_token_refresh(platform, stale_token=token)
        except WeChatError as exc:
            logger.warning("gateway: component token refresh failed: %s", type(exc).__name__)
            return answer
        answer = _send(call, query, COMPONENT_TOKEN_PARAM, token)
    return _scrubbed(answer, token)


def _call_authorizer(tenant: Tenant | None, call: GatewayCall) -> Forwarded:
    query = _query(call)
    tenant, handed, version = usable_authorizer_token(tenant)
    answer = _send(call, query, AUTHORIZER_TOKEN_PARAM, handed.access_token)
    if _token_refused(answer):
        handed, version = authorizer_token_refresh(tenant, stale_version=version)
        answer = _send(call, query, AUTHORIZER_TOKEN_PARAM, handed.access_token)
    return _scrubbed(answer, handed.access_token)


def _query(call: GatewayCall) -> list[tuple[str, str]]:
    return [(name, value) for name, value in call.query if name not in _TOKEN_PARAMS]


def _send(call: GatewayCall, query: list[tuple[str, str]], token_param: str, token: str) -> Forwarded:
    try:
        return wechat_client().forward(
            call.method,
            call.path,
            query=query,
            token_param=token_param,
            token=token,
            body=call.body,
            content_type=call.content_type,
        )
    except WeChatError as exc:
        # Built by the boundary, which never quotes a URL (the URL holds the token).
        raise GatewayUnreachable(exc.errmsg) from None


def _scrubbed(answer: Forwarded, token: str) -> Forwarded:
    """The answer with the token replaced, should WeChat ever quote it in a read body."""
    if answer.body is None or not token or token.encode() not in answer.body:
        return answer
    return Forwarded(
        answer.status,
        answer.content_type,
        answer.body.replace(token.encode(), b"***"),
        errcode=answer.errcode,
    )


def _outcome(answer: Forwarded) -> str:
    if answer.errcode is not None:
        return str(answer.errcode)
    if not 200 <= answer.status < 300:
        return f"http_{answer.status}"
    return "0"


def _count(key: ServiceKey, component_appid: str, authorizer_appid: str, path: str, *, failed: bool) -> None:
    """One upsert: the day's row for this key, account and path gains a call (and a failure)."""
    table = GatewayUsage._meta.db_table
    # ON CONFLICT … DO UPDATE is PostgreSQL's and SQLite's (3.24+): one round trip, no read, no race.
    sql = (
        f"INSERT INTO {table} (day, key_id, component_appid, authorizer_appid, path, calls, failures) "  # noqa: S608
        "VALUES (%s, %s, %s, %s, %s, 1, %s) "
        "ON CONFLICT (day, key_id, component_appid, authorizer_appid, path) "
        f"DO UPDATE SET calls = {table}.calls + 1, failures = {table}.failures + EXCLUDED.failures"
    )
    # WeChat's quota day (DRAFT_QUOTA_TIMEZONE), so that the quota attribution adds the same day's calls.
    day = quota_day_of(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(sql, [day, key.pk, component_appid[:64], authorizer_appid[:64], path[:PATH_MAX], int(failed)])
