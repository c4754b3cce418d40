"""The platform's own credentials: the verify ticket WeChat pushes, and the component access token.

The database row (Platform) is the source of truth; a refresh locks it, checks again, and only
then calls WeChat, so that exactly one process refreshes however many ask at once (docs/wechat/tokens.md: a second
refresher's token would invalidate the first after the grace window).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from wxplatform.component.clients import component_client
from wxplatform.component.consumer import AuthorityRefused, authority_component_token, authority_configured
from wxplatform.component.models import Platform
from wxplatform.core import metrics
from wxplatform.core.freshness import COMPONENT_REFRESH_MARGIN, token_is_fresh
from wxplatform.wechat.errors import ConfigurationError, TicketError, TokenError, WeChatError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Ask WeChat to restart ticket pushes at most this often.
PUSH_TICKET_INTERVAL = timedelta(minutes=5)
# A ticket is valid 12 hours after WeChat created it (docs/wechat/flow.md#ticket-timing).
TICKET_LIFETIME = timedelta(hours=12)


class ComponentNotReady(Exception):
    """The platform cannot obtain a component access token now (no ticket yet, ticket rejected, bad
    configuration). `reason` is safe to show to staff; `errcode` is WeChat's, when there was one."""

    def __init__(self, reason: str, errcode: int | None = None) -> None:
        self.reason = reason
        self.errcode = errcode
        super().__init__(reason)


class ComponentUnknown(Exception):
    """No platform with that component appid is configured here."""


def _default_secrets() -> dict[str, str]:
    return {
        "appsecret": settings.WECHAT_COMPONENT_APPSECRET,
        "token": settings.WECHAT_COMPONENT_TOKEN,
        "aes_key": settings.WECHAT_COMPONENT_AES_KEY,
    }


def default_component() -> Platform:
    """The platform configured by the WECHAT_COMPONENT_* settings, created or brought up to date from them
    (the settings win: an operator changes the default platform's secrets by changing its environment)."""
    appid = settings.WECHAT_COMPONENT_APPID
    secrets = _default_secrets()
    credential, _ = Platform.objects.get_or_create(component_appid=appid, defaults=secrets)
    changed = [name for name, value in secrets.items() if getattr(credential, name) != value]
    if changed:
        for name in changed:
            setattr(credential, name, secrets[name])
        credential.save(update_fields=changed)
    return credential


def active_components() -> QuerySet[Platform]:
    """The platforms that refresh, sync and reconcile (the default one created from the settings first)."""
    default_component()
    return Platform.objects.filter(active=True).order_by("pk")


def is_default(component: Platform) -> bool:
    return component.component_appid == settings.WECHAT_COMPONENT_APPID


def component_list() -> list[Platform]:
    """Every platform, switched-off ones included: the default first, then the others by name (the status page,
    the console's landing page)."""
    default = default_component()
    others = Platform.objects.exclude(pk=default.pk).order_by("name", "component_appid")
    return [default, *others]


def component_get(appid: str) -> Platform:
    """The platform with this component appid (the default one is kept up to date from the settings).
    Raises ComponentUnknown."""
    if appid == settings.WECHAT_COMPONENT_APPID:
        return default_component()
    credential = Platform.objects.filter(component_appid=appid).first()
    if credential is None:
        raise ComponentUnknown(appid)
    return credential


class DefaultComponentLocked(Exception):
    """The default platform's credentials and its active flag follow the settings; they are not changed here."""


@transaction.atomic
def component_add(
    *, appid: str, secret: str, token: str, aes_key: str, name: str = "", active: bool | None = None
) -> Platform:
    """Adds a platform, or updates the credentials of an existing one (add_component, the admin); `active`
    switches it on or off (None: a new platform is on, an existing one stays as it is). Raises
    DefaultComponentLocked for the default platform's appid."""
    if appid == settings.WECHAT_COMPONENT_APPID:
        raise DefaultComponentLocked(appid)
    credential, _ = Platform.objects.select_for_update().get_or_create(
        component_appid=appid, defaults={"active": active if active is not None else True}
    )
    credential.appsecret, credential.token, credential.aes_key = secret, token, aes_key
    if name:
        credential.name = name
    if active is not None:
        credential.active = active
    credential.save()
    return credential


@transaction.atomic
def component_update(
    component: Platform,
    *,
    name: str | None = None,
    active: bool | None = None,
    secret: str = "",
    token: str = "",
    aes_key: str = "",
) -> list[str]:
    """Changes what staff may change about a platform (the admin): its name, whether it is active, and each
    secret given (an empty one is kept). The default platform takes a name only (DefaultComponentLocked
    otherwise): switched off, the deployment's own platform would stop refreshing while /readyz, which
    ignores switched-off platforms, still said all was well. Returns the names of the fields changed."""
    credential = Platform.objects.select_for_update().get(pk=component.pk)
    wanted: dict[str, object] = {"appsecret": secret, "token": token, "aes_key": aes_key}
    wanted = {field: value for field, value in wanted.items() if value}
    if active is not None:
        wanted["active"] = active
    if is_default(credential) and any(getattr(credential, f) != v for f, v in wanted.items()):
        raise DefaultComponentLocked(credential.component_appid)
    if name is not None:
        wanted["name"] = name
    changed = [field for field, value in wanted.items() if getattr(credential, field) != value]
    for field in changed:
        setattr(credential, field, wanted[field])
    if changed:
        credential.save(update_fields=changed)
    return changed


def _locked_credential(component: Platform) -> Platform:
    with metrics.lock_wait("component_token"):
        return Platform.objects.select_for_update().get(pk=component.pk)


@transaction.atomic
def component_ticket_store(component: Platform, *, ticket: str, created_at: datetime) -> bool:
    """Keeps the newest ticket. A replayed or late push carrying an older ticket changes nothing.
    Returns whether the ticket was stored."""
    credential = _locked_credential(component)
    now = timezone.now()
    credential.last_push_at = now
    credential.last_push_info_type = "component_verify_ticket"
    fields = ["last_push_at", "last_push_info_type"]
    stored = credential.ticket_created_at is None or created_at >= credential.ticket_created_at
    if stored:
        credential.verify_ticket = ticket
        credential.ticket_created_at = created_at
        credential.ticket_received_at = now
        fields += ["verify_ticket", "ticket_created_at", "ticket_received_at"]
        if credential.problem_code in (61005, 61006) or credential.problem == _NO_TICKET:
            credential.problem_code, credential.problem, credential.problem_at = None, "", None
            fields += ["problem_code", "problem", "problem_at"]
    credential.save(update_fields=fields)
    return stored


def component_push_record(component: Platform, *, info_type: str) -> None:
    """Remembers when WeChat last pushed anything (shown on the platform status page)."""
    Platform.objects.filter(pk=component.pk).update(last_push_at=timezone.now(), last_push_info_type=info_type[:64])


_NO_TICKET = "no component_verify_ticket received yet"


@dataclass(frozen=True)
class _Outcome:
    token: str | None = None
    problem: ComponentNotReady | None = None
    request_push: bool = False


class ComponentInactive(ComponentNotReady):
    """The platform is switched off here: it refreshes nothing and syncs nothing."""

    def __init__(self) -> None:
        super().__init__(_INACTIVE)


_INACTIVE = "platform switched off"


def component_access_token(component: Platform) -> str:
    """A component access token valid for at least COMPONENT_REFRESH_MARGIN, refreshing it if needed."""
    return component_token_with_expiry(component)[0]


def component_token_with_expiry(component: Platform) -> tuple[str, datetime]:
    """The stored component token and its expiry, refreshed first (single-flight) when within its margin."""
    credential = Platform.objects.get(pk=component.pk)
    if not credential.active:
        raise ComponentInactive()
    if not _is_fresh(credential):
        component_token_refresh(credential)
        credential = Platform.objects.get(pk=component.pk)
    assert credential.access_token_expires_at is not None
    return str(credential.access_token), credential.access_token_expires_at


def with_component_token(component: Platform, call: Callable[[str], T]) -> T:
    """Runs `call(component_access_token)`; if WeChat says the token is invalid or expired (40001/40014/
    42001: revoked by a refresh elsewhere, or a restored database), refreshes once and retries once."""
    token = component_access_token(component)
    try:
        return call(token)
    except TokenError:
        return call(component_token_refresh(component, stale_token=token))


def _is_fresh(credential: Platform) -> bool:
    return token_is_fresh(credential.access_token, credential.access_token_expires_at, margin=COMPONENT_REFRESH_MARGIN)


def component_token_refresh(component: Platform, *, force: bool = False, stale_token: str | None = None) -> str:
    """Obtains a new component access token, single-flight across processes.

    `stale_token`: the token a caller saw rejected (40001); if another process has already replaced it,
    the newer token is returned without calling WeChat. `force` refreshes even a fresh token.
    """
    outcome = _refresh_locked(component, force=force, stale_token=stale_token)
    if outcome.request_push:
        component_request_ticket_push(component)
    if outcome.problem is not None:
        raise outcome.problem
    assert outcome.token is not None
    return outcome.token


@transaction.atomic
def _refresh_locked(component: Platform, *, force: bool, stale_token: str | None) -> _Outcome:
    credential = _locked_credential(component)
    if not credential.active:
        return _Outcome(problem=ComponentInactive())
    # Check again now that we hold the lock: another process may have refreshed meanwhile.
    replaced = stale_token is not None and credential.access_token not in ("", stale_token)
    if not force and _is_fresh(credential) and (stale_token is None or replaced):
        return _Outcome(token=credential.access_token)
    now = timezone.now()
    if authority_configured():
        return _refresh_from_authority(credential, now)
    if not credential.verify_ticket:
        _record_problem(credential, ComponentNotReady(_NO_TICKET))
        return _Outcome(problem=ComponentNotReady(_NO_TICKET), request_push=True)
    try:
        result = component_client(credential).api_component_token(component_verify_ticket=credential.verify_ticket)
    except TicketError as exc:
        problem = ComponentNotReady("component_verify_ticket rejected by WeChat", exc.errcode)
        _record_problem(credential, problem)
        return _Outcome(problem=problem, request_push=True)
    except ConfigurationError as exc:
        problem = ComponentNotReady("platform configuration rejected by WeChat", exc.errcode)
        _record_problem(credential, problem)
        return _Outcome(problem=problem)
    _store_token(credential, result.access_token, now + timedelta(seconds=result.expires_in), now)
    logger.info(
        "component access token refreshed",
        extra={"component_appid": credential.component_appid, "expires_in": result.expires_in},
    )
    return _Outcome(token=result.access_token)


def _refresh_from_authority(credential: Platform, now: datetime) -> _Outcome:
    """Consumer mode (wxplatform.component.consumer): the token comes from the token authority, under the
    same row lock; no ticket is needed and WeChat is never asked for a ticket push."""
    try:
        handed = authority_component_token(credential.component_appid)
    except AuthorityRefused as exc:
        problem = ComponentNotReady(f"token authority refused: {exc.code}")
        _record_problem(credential, problem)
        return _Outcome(problem=problem)
    _store_token(credential, handed.access_token, handed.expires_at, now)
    logger.info(
        "component access token obtained from the token authority",
        extra={"component_appid": credential.component_appid},
    )
    return _Outcome(token=handed.access_token)


def _store_token(credential: Platform, token: str, expires_at: datetime, now: datetime) -> None:
    credential.access_token = token
    credential.access_token_expires_at = expires_at
    credential.token_refreshed_at = now
    credential.token_version += 1
    credential.problem_code, credential.problem, credential.problem_at = None, "", None
    credential.save(
        update_fields=[
            "access_token",
            "access_token_expires_at",
            "token_refreshed_at",
            "token_version",
            "problem_code",
            "problem",
            "problem_at",
        ]
    )


def _record_problem(credential: Platform, problem: ComponentNotReady) -> None:
    if credential.problem_code != problem.errcode or credential.problem != problem.reason:
        credential.problem_at = timezone.now()
    credential.problem_code, credential.problem = problem.errcode, problem.reason
    credential.save(update_fields=["problem_code", "problem", "problem_at"])
    logger.warning(
        "component token unavailable: %s (errcode %s)",
        problem.reason,
        problem.errcode,
        extra={"component_appid": credential.component_appid},
    )


def component_request_ticket_push(component: Platform) -> bool:
    """Asks WeChat to (re)start ticket pushes, at most once per PUSH_TICKET_INTERVAL across processes.
    Returns whether WeChat was asked. Never in consumer mode: the token authority's deployment holds the ticket."""
    if authority_configured():
        return False
    now = timezone.now()
    claimed = (
        Platform.objects.filter(pk=component.pk, active=True)
        .exclude(push_ticket_requested_at__gt=now - PUSH_TICKET_INTERVAL)
        .update(push_ticket_requested_at=now)
    )
    if not claimed:
        return False
    try:
        component_client(component).api_start_push_ticket()
    except WeChatError as exc:
        logger.warning("api_start_push_ticket failed: errcode %s", exc.errcode)
        return False
    return True


def component_status(component: Platform) -> dict[str, object]:
    """What staff and /readyz need to know about a platform's credentials, from the row as given (callers pass
    one they have just read). Never includes secrets."""
    credential = component
    now = timezone.now()
    ticket_age = (now - credential.ticket_received_at).total_seconds() if credential.ticket_received_at else None
    return {
        "component_appid": credential.component_appid,
        "name": credential.name,
        "active": credential.active,
        "default": is_default(credential),
        "has_ticket": bool(credential.verify_ticket),
        "ticket_received_at": credential.ticket_received_at,
        "ticket_age_seconds": ticket_age,
        "ticket_expired": bool(credential.ticket_created_at and now - credential.ticket_created_at > TICKET_LIFETIME),
        "token_expires_at": credential.access_token_expires_at,
        "token_valid": bool(
            credential.access_token and credential.access_token_expires_at and credential.access_token_expires_at > now
        ),
        "problem": credential.problem,
        "problem_code": credential.problem_code,
        "problem_at": credential.problem_at,
        "last_push_at": credential.last_push_at,
        "last_push_info_type": credential.last_push_info_type,
    }


def platforms_readiness() -> str | None:
    """The condition reported by /readyz: None when every active platform can call WeChat, else each one's
    problem (named by its component appid when there are several)."""
    active = list(active_components())
    problems = []
    for component in active:
        problem = component_readiness(component)
        if problem is not None:
            problems.append(f"{component.component_appid}: {problem}" if len(active) > 1 else problem)
    return "; ".join(problems) or None


def component_readiness(component: Platform) -> str | None:
    """The condition reported by /readyz for one platform: None when it can call WeChat (or is switched off,
    which is a decision, not a fault)."""
    status = component_status(component)
    if not status["active"]:
        return None
    if status["problem"]:
        code = status["problem_code"]
        return f"{status['problem']}" + (f" (errcode {code})" if code is not None else "")
    # A consumer of the token authority needs no ticket of its own.
    if not status["has_ticket"] and not authority_configured():
        return _NO_TICKET
    return None
