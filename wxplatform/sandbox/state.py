"""The sandbox's WeChat, as a synchronous state machine.

Everything WeChat remembers lives here: the component's tickets and tokens, pre-auth and authorization codes,
the authorized accounts with their tokens, permission sets, draft counts and daily quotas. It knows no HTTP:
app.py turns requests into calls and `WeChatFault`s into errcode answers, so that these rules can be unit
tested against a `ManualClock`. The server touches one instance from its event loop thread only.

Rules follow ../shared/wechat-protocol.md (§ numbers below refer to it); where the protocol is UNCONFIRMED,
the choice made here is noted.
"""

from __future__ import annotations

import random
import string
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from itertools import islice
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from wxplatform.sandbox.config import MUTABLE_FIELDS, SandboxConfig

Clock = Callable[[], float]
Kind = Literal["subscription", "service", "mini_program"]
KINDS: tuple[Kind, ...] = ("subscription", "service", "mini_program")
OFFICIAL_ACCOUNT_KINDS = frozenset({"subscription", "service"})
# service_type_info.id (§3.6): 0 subscription, 2 service; Mini Programs report 0 as well.
SERVICE_TYPE_ID: dict[str, int] = {"subscription": 0, "service": 2, "mini_program": 0}
VERIFY_TYPES = frozenset({-1, 0, 1, 2, 3, 4, 5})
# account_status (§3.6): 1 normal, 14 deregistered, 16 banned, 18 warned, 19 frozen.
ACCOUNT_STATUSES = frozenset({1, 14, 16, 18, 19})
LIMITED_STATUSES = frozenset({14, 16, 19})
# Either permission set allows draft/count (§5).
DRAFT_FUNC_IDS = frozenset({11, 100})

DRAFT_COUNT_PATH = "/cgi-bin/draft/count"
# Default daily limits of the draft APIs (§8); only draft/count is emulated, the others can be queried.
QUOTA_LIMITS: dict[str, int] = {
    DRAFT_COUNT_PATH: 1000,
    "/cgi-bin/draft/add": 1000,
    "/cgi-bin/draft/get": 500,
    "/cgi-bin/draft/delete": 1000,
    "/cgi-bin/draft/update": 1000,
    "/cgi-bin/draft/batchget": 1000,
}

ERRMSG: dict[int, str] = {
    -1: "system error",
    0: "ok",
    40001: "invalid credential, access_token is invalid or not latest",
    40013: "invalid appid",
    40066: "invalid url",
    40097: "invalid args",
    40125: "invalid appsecret",
    41001: "access_token missing",
    41004: "appsecret missing",
    41018: "missing component_appid",
    42001: "access_token expired",
    43001: "require GET method",
    43002: "require POST method",
    44002: "empty post data",
    45002: "content size out of limit",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit, must slower, retry next minute",
    47001: "data format error",
    48001: "api unauthorized",
    50002: "user limited",
    61003: "component is not authorized by this account",
    61004: "access clientip is not registered",
    61005: "component ticket is expired",
    61006: "component ticket is invalid",
    61009: "code is invalid",
    61010: "code is expired",
    61011: "invalid component",
    61014: "must use component token for component api",
    61023: "refresh_token is invalid",
    76021: "cgi_path not found, please check",
}

FAULT_NAMES = frozenset({"timeout", "http_500", "http_502", "http_503", "malformed"})

_TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_"
# Expired tokens are dropped this long after expiry (then they answer 40001 instead of 42001), so that a
# long-running sandbox does not grow without bound.
_TOKEN_RETENTION = 86400.0
_PRUNE_EVERY = 20000


class WeChatFault(Exception):
    """A WeChat errcode answer. The HTTP layer adds the ` rid: …` suffix."""

    def __init__(self, errcode: int, errmsg: str | None = None) -> None:
        self.errcode = errcode
        self.errmsg = errmsg if errmsg is not None else ERRMSG.get(errcode, "error")
        super().__init__(f"{errcode}: {self.errmsg}")


class ControlError(Exception):
    """A control-API (or consent page) request that cannot be honoured: HTTP status and a message."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


class ManualClock:
    """A clock that only moves when told to, for tests of lifetimes."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(slots=True)
class Token:
    value: str
    owner: str  # the component appid or an authorizer appid
    expires_at: float
    # End of the grace window once a newer token replaced this one.
    superseded_until: float | None = None
    invalidated: bool = False


@dataclass(slots=True)
class PreAuthCode:
    value: str
    expires_at: float
    used: bool = False


@dataclass(slots=True)
class AuthCode:
    value: str
    appid: str
    # The authorization this code belongs to; a later (re-)authorization or revocation voids it.
    generation: int
    expires_at: float
    pre_auth_code: str
    used: bool = False


@dataclass(slots=True)
class Authorizer:
    """An account in the sandbox's WeChat, authorized to the component or not."""

    appid: str
    nickname: str
    kind: Kind
    verify_type: int
    principal_name: str
    user_name: str
    alias: str
    signature: str
    account_status: int
    draft_count: int
    # The permission sets this account grants (or would grant, on the consent page) to the component.
    func_ids: list[int]
    omit_refresh_token_in_list: bool = False
    authorized: bool = False
    refresh_token: str | None = None
    auth_time: int | None = None
    generation: int = 0
    current_token: str | None = None
    tokens: list[str] = field(default_factory=list)
    quota_day: date | None = None
    quota_used: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Consent:
    """The result of an authorization: the code for api_query_auth and the push that announces it."""

    appid: str
    auth_code: str
    expires_in: int
    info_type: str
    event: dict[str, str | int]


class Counters:
    """Per-endpoint call counts, as the control API reports them."""

    def __init__(self) -> None:
        self.endpoints: dict[str, dict[str, Any]] = {}
        self.faults_injected: dict[str, int] = {}
        self.draft_count_calls: dict[str, int] = {}
        self.authorizer_token_calls: dict[str, int] = {}

    def record(self, path: str, outcome: int | str | None) -> None:
        """`outcome` is an errcode, a fault name such as "http_502", or None/0 for success."""
        entry = self.endpoints.get(path)
        if entry is None:
            entry = self.endpoints[path] = {"calls": 0, "ok": 0, "errors": {}}
        entry["calls"] += 1
        if outcome is None or outcome == 0:
            entry["ok"] += 1
        else:
            errors: dict[str, int] = entry["errors"]
            key = str(outcome)
            errors[key] = errors.get(key, 0) + 1

    def fault(self, kind: int | str) -> None:
        key = str(kind)
        self.faults_injected[key] = self.faults_injected.get(key, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "endpoints": {
                path: {"calls": e["calls"], "ok": e["ok"], "errors": dict(e["errors"])}
                for path, e in self.endpoints.items()
            },
            "faults_injected": dict(self.faults_injected),
            "draft_count_calls": dict(self.draft_count_calls),
            "authorizer_token_calls": dict(self.authorizer_token_calls),
        }


class FaultPlan:
    """Which WeChat calls fail, and how: each matching call fails with probability `rate`."""

    def __init__(
        self,
        *,
        rate: float,
        kinds: list[int | str],
        endpoints: Iterable[str] | None = None,
        seed: int | None = None,
        max_faults: int | None = None,
        timeout_seconds: float = 30.0,
    ) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ControlError(400, "rate must be between 0 and 1")
        if not kinds:
            raise ControlError(400, "kinds must name at least one fault")
        for kind in kinds:
            if isinstance(kind, bool) or not (
                (isinstance(kind, int) and kind != 0) or (isinstance(kind, str) and kind in FAULT_NAMES)
            ):
                raise ControlError(
                    400, f"unknown fault kind {kind!r}: use a non-zero errcode or one of {sorted(FAULT_NAMES)}"
                )
        if max_faults is not None and max_faults < 0:
            raise ControlError(400, "max_faults must not be negative")
        if timeout_seconds < 0:
            raise ControlError(400, "timeout_seconds must not be negative")
        self.rate = rate
        self.kinds = list(kinds)
        self.endpoints = frozenset(endpoints) if endpoints is not None else None
        self.seed = seed
        self.max_faults = max_faults
        self.timeout_seconds = timeout_seconds
        self.injected = 0
        self._rng = random.Random(seed)

    def pick(self, path: str) -> int | str | None:
        """The fault to inject into this call, if any."""
        if self.endpoints is not None and path not in self.endpoints:
            return None
        if self.max_faults is not None and self.injected >= self.max_faults:
            return None
        if self._rng.random() >= self.rate:
            return None
        self.injected += 1
        return self._rng.choice(self.kinds)

    def describe(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "kinds": self.kinds,
            "endpoints": sorted(self.endpoints) if self.endpoints is not None else None,
            "seed": self.seed,
            "max_faults": self.max_faults,
            "timeout_seconds": self.timeout_seconds,
            "injected": self.injected,
        }


def _check_appid(appid: str) -> None:
    if not appid or len(appid) > 32 or not all(c.isascii() and (c.isalnum() or c in "_-") for c in appid):
        raise ControlError(400, f"invalid appid {appid!r}: 1-32 ASCII letters, digits, '_' or '-'")


def _check_func_ids(func_ids: Iterable[Any]) -> list[int]:
    ids = list(func_ids)
    if not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ids):
        raise ControlError(400, "func_ids must be positive integers")
    return sorted(set(ids))


def _check_kind(kind: Any) -> Kind:
    if kind not in KINDS:
        raise ControlError(400, f"kind must be one of {list(KINDS)}")
    return cast(Kind, kind)


def _check_int(name: str, value: Any, *, allowed: Iterable[int] | None = None, minimum: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ControlError(400, f"{name} must be an integer")
    if allowed is not None and value not in allowed:
        raise ControlError(400, f"{name} must be one of {sorted(allowed)}")
    if minimum is not None and value < minimum:
        raise ControlError(400, f"{name} must be at least {minimum}")
    return value


class SandboxState:
    def __init__(self, config: SandboxConfig | None = None, *, clock: Clock = time.time) -> None:
        self._initial_config = replace(config) if config is not None else SandboxConfig()
        self.clock = clock
        self.reset()

    # --- lifecycle ----------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything: accounts, tokens, codes, tickets, quotas, counters, faults, pushes, config changes."""
        # Work begun before a reset (an in-flight push) checks the epoch so that it cannot leak into after.
        self.epoch = getattr(self, "epoch", 0) + 1
        self.config = replace(self._initial_config, endpoint_latency=dict(self._initial_config.endpoint_latency))
        self.rng = random.Random(self.config.seed)
        self.authorizers: dict[str, Authorizer] = {}
        # Currently authorized appids in order of first authorization (api_get_authorizer_list order).
        self.authorized_order: dict[str, None] = {}
        self.component_tokens: dict[str, Token] = {}
        self.current_component_token: str | None = None
        self.authorizer_tokens: dict[str, Token] = {}
        self.pre_auth_codes: dict[str, PreAuthCode] = {}
        self.auth_codes: dict[str, AuthCode] = {}
        self.tickets: dict[str, float] = {}
        self.current_ticket: str | None = None
        self.counters = Counters()
        self.faults: FaultPlan | None = None
        self.pushes: list[dict[str, Any]] = []
        self._issued_since_prune = 0

    def update_config(self, changes: dict[str, Any]) -> SandboxConfig:
        unknown = set(changes) - MUTABLE_FIELDS
        if unknown:
            raise ControlError(400, f"cannot change {sorted(unknown)}; changeable: {sorted(MUTABLE_FIELDS)}")
        for name, value in changes.items():
            expected = type(getattr(SandboxConfig(), name))
            if name == "event_url":
                if value is not None and not (isinstance(value, str) and value.startswith(("http://", "https://"))):
                    raise ControlError(400, "event_url must be an http(s) URL or null")
            elif expected is float:
                if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                    raise ControlError(400, f"{name} must be a non-negative number")
                value = float(value)
            elif expected is int:
                _check_int(name, value, minimum=0)
            elif expected is bool:
                if not isinstance(value, bool):
                    raise ControlError(400, f"{name} must be true or false")
            elif name == "quota_timezone":
                try:
                    ZoneInfo(value)
                except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
                    raise ControlError(400, f"unknown time zone {value!r}") from exc
            setattr(self.config, name, value)
        return self.config

    def set_latency(self, seconds: float, endpoint: str | None = None) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise ControlError(400, "seconds must be a non-negative number")
        if endpoint is None:
            self.config.latency = float(seconds)
        else:
            self.config.endpoint_latency[endpoint] = float(seconds)

    def latency_for(self, path: str) -> float:
        return self.config.endpoint_latency.get(path, self.config.latency)

    # --- identifiers ---------------------------------------------------------------------------------

    def _random(self, length: int) -> str:
        return "".join(self.rng.choices(_TOKEN_ALPHABET, k=length))

    def _hex(self, length: int) -> str:
        return f"{self.rng.getrandbits(length * 4):0{length}x}"

    def new_appid(self) -> str:
        while True:
            appid = "wx" + self._hex(16)
            if appid not in self.authorizers:
                return appid

    # --- tokens --------------------------------------------------------------------------------------

    def _issue(self, table: dict[str, Token], owner: str, ttl: int, previous: str | None) -> Token:
        now = self.clock()
        if previous is not None and previous in table:
            old = table[previous]
            # The old token keeps working for the grace window, or until its own expiry if that comes first
            # (the check order in _check_token makes expiry win).
            if old.superseded_until is None:
                old.superseded_until = now + self.config.token_grace
        token = Token(value=self._random(96), owner=owner, expires_at=now + ttl)
        table[token.value] = token
        self._issued_since_prune += 1
        if self._issued_since_prune >= _PRUNE_EVERY:
            self._prune(now)
        return token

    def _prune(self, now: float) -> None:
        self._issued_since_prune = 0
        for table in (self.component_tokens, self.authorizer_tokens):
            for value in [v for v, t in table.items() if t.expires_at + _TOKEN_RETENTION < now]:
                del table[value]
        for authorizer in self.authorizers.values():
            authorizer.tokens = [t for t in authorizer.tokens if t in self.authorizer_tokens]
        for codes in (self.pre_auth_codes, self.auth_codes):
            for value in [v for v, c in codes.items() if c.expires_at + _TOKEN_RETENTION < now]:
                del codes[value]

    def _check_token(self, table: dict[str, Token], value: str) -> Token:
        token = table.get(value)
        if token is None or token.invalidated:
            raise WeChatFault(40001)
        now = self.clock()
        if now >= token.expires_at:
            raise WeChatFault(42001)
        # A superseded token past its grace window is "not latest" (40001), not expired.
        if token.superseded_until is not None and now >= token.superseded_until:
            raise WeChatFault(40001)
        return token

    def check_component_token(self, value: str | None) -> Token:
        if not value:
            raise WeChatFault(41001)
        if value in self.authorizer_tokens:
            raise WeChatFault(61014)
        return self._check_token(self.component_tokens, value)

    def check_authorizer_token(self, value: str | None) -> Authorizer:
        if not value:
            raise WeChatFault(41001)
        token = self._check_token(self.authorizer_tokens, value)
        return self.authorizers[token.owner]

    def _check_component_appid(self, appid: str | None) -> None:
        if not appid:
            raise WeChatFault(41018)
        if appid != self.config.component_appid:
            raise WeChatFault(61011)

    def _issue_authorizer_token(self, authorizer: Authorizer) -> Token:
        token = self._issue(
            self.authorizer_tokens, authorizer.appid, self.config.authorizer_token_ttl, authorizer.current_token
        )
        authorizer.current_token = token.value
        authorizer.tokens.append(token.value)
        return token

    # --- tickets and the component token (§1.4, §3.1) -----------------------------------------------

    def issue_ticket(self) -> dict[str, str | int]:
        """A new component_verify_ticket; returns the inner fields of its push (§1.3)."""
        now = self.clock()
        ticket = "ticket@@@" + self._random(86)
        self.tickets[ticket] = now
        self.current_ticket = ticket
        # Tickets older than twice their lifetime are forgotten (they then count as never issued).
        for old in [t for t, issued in self.tickets.items() if issued + 2 * self.config.ticket_ttl < now]:
            del self.tickets[old]
        return {
            "AppId": self.config.component_appid,
            "CreateTime": int(now),
            "InfoType": "component_verify_ticket",
            "ComponentVerifyTicket": ticket,
        }

    def component_access_token(self, appid: str | None, secret: str | None, ticket: str | None) -> dict[str, Any]:
        self._check_component_appid(appid)
        if not secret:
            raise WeChatFault(41004)
        if secret != self.config.component_appsecret:
            raise WeChatFault(40125)
        # An empty or unknown ticket is "invalid" (§6: 61006); a known one past its 12 h is "expired".
        issued = self.tickets.get(ticket) if ticket else None
        if issued is None:
            raise WeChatFault(61006)
        if self.clock() - issued >= self.config.ticket_ttl:
            raise WeChatFault(61005)
        token = self._issue(
            self.component_tokens,
            self.config.component_appid,
            self.config.component_token_ttl,
            self.current_component_token,
        )
        self.current_component_token = token.value
        return {"component_access_token": token.value, "expires_in": self.config.component_token_ttl}

    def start_push_ticket(self, appid: str | None, secret: str | None) -> None:
        self._check_component_appid(appid)
        if not secret:
            raise WeChatFault(41004)
        if secret != self.config.component_appsecret:
            raise WeChatFault(40125)

    def expire_component_tokens(self) -> int:
        now = self.clock()
        for token in self.component_tokens.values():
            token.expires_at = min(token.expires_at, now)
        return len(self.component_tokens)

    # --- authorization (§3.2-3.5) ---------------------------------------------------------------------

    def create_pre_auth_code(self, component_token: str | None, appid: str | None) -> dict[str, Any]:
        self.check_component_token(component_token)
        self._check_component_appid(appid)
        code = PreAuthCode(
            value="preauthcode@@@" + self._random(86), expires_at=self.clock() + self.config.pre_auth_code_ttl
        )
        self.pre_auth_codes[code.value] = code
        return {"pre_auth_code": code.value, "expires_in": self.config.pre_auth_code_ttl}

    def check_pre_auth_code(self, value: str | None) -> PreAuthCode:
        """The pre_auth_code of an authorization page, or a ControlError saying why it cannot be used."""
        code = self.pre_auth_codes.get(value) if value else None
        if code is None:
            raise ControlError(404, "pre_auth_code is invalid")
        if code.used:
            raise ControlError(409, "pre_auth_code has already been used")
        if self.clock() >= code.expires_at:
            raise ControlError(410, "pre_auth_code has expired")
        return code

    def _authorize(self, authorizer: Authorizer) -> None:
        # Every authorization issues a new refresh token; the previous one stops working at once (§3.4).
        authorizer.authorized = True
        authorizer.refresh_token = "refreshtoken@@@" + self._random(43)
        authorizer.generation += 1
        authorizer.auth_time = int(self.clock())
        self.authorized_order.setdefault(authorizer.appid, None)

    def _new_auth_code(self, authorizer: Authorizer, pre_auth_code: str) -> AuthCode:
        code = AuthCode(
            value="queryauthcode@@@" + self._random(86),
            appid=authorizer.appid,
            generation=authorizer.generation,
            expires_at=self.clock() + self.config.auth_code_ttl,
            pre_auth_code=pre_auth_code,
        )
        self.auth_codes[code.value] = code
        return code

    def _auth_event(self, info_type: str, authorizer: Authorizer, code: AuthCode) -> dict[str, str | int]:
        now = int(self.clock())
        return {
            "AppId": self.config.component_appid,
            "CreateTime": now,
            "InfoType": info_type,
            "AuthorizerAppid": authorizer.appid,
            "AuthorizationCode": code.value,
            # §1.3 leaves open whether this is a timestamp or a TTL; third-party fixtures use an absolute
            # unix time, and so does the sandbox.
            "AuthorizationCodeExpiredTime": int(code.expires_at),
            "PreAuthCode": code.pre_auth_code,
        }

    def consent(
        self,
        *,
        pre_auth_code: str | None,
        authorizer_appid: str,
        func_ids: list[int] | None = None,
        auth_type: int | None = None,
        biz_appid: str | None = None,
    ) -> Consent:
        """The merchant agrees on the authorization page: consumes the pre_auth_code, (re-)authorizes."""
        pac = self.check_pre_auth_code(pre_auth_code)
        authorizer = self.get_authorizer(authorizer_appid)
        # auth_type 1 lists Official Accounts only, 2 Mini Programs only (§3.3).
        if auth_type == 1 and authorizer.kind == "mini_program":
            raise ControlError(400, "this authorization link accepts Official Accounts only (auth_type=1)")
        if auth_type == 2 and authorizer.kind != "mini_program":
            raise ControlError(400, "this authorization link accepts Mini Programs only (auth_type=2)")
        if biz_appid and biz_appid != authorizer.appid:
            raise ControlError(400, f"this authorization link is for {biz_appid} only")
        if func_ids is not None:
            authorizer.func_ids = _check_func_ids(func_ids)
        pac.used = True
        info_type = "updateauthorized" if authorizer.authorized else "authorized"
        self._authorize(authorizer)
        code = self._new_auth_code(authorizer, pac.value)
        return Consent(
            appid=authorizer.appid,
            auth_code=code.value,
            expires_in=self.config.auth_code_ttl,
            info_type=info_type,
            event=self._auth_event(info_type, authorizer, code),
        )

    def update_authorization(
        self, appid: str, *, func_ids: list[int] | None = None, rotate_refresh_token: bool = True
    ) -> Consent:
        """The merchant changes the granted permission sets in WeChat: an `updateauthorized` push."""
        authorizer = self.get_authorizer(appid)
        if not authorizer.authorized:
            raise ControlError(409, f"{appid} is not authorized")
        if func_ids is not None:
            authorizer.func_ids = _check_func_ids(func_ids)
        if rotate_refresh_token:
            self._authorize(authorizer)
        # The push carries a PreAuthCode; none was involved, so a consumed one stands in for it.
        pac = PreAuthCode(value="preauthcode@@@" + self._random(86), expires_at=self.clock(), used=True)
        code = self._new_auth_code(authorizer, pac.value)
        return Consent(
            appid=appid,
            auth_code=code.value,
            expires_in=self.config.auth_code_ttl,
            info_type="updateauthorized",
            event=self._auth_event("updateauthorized", authorizer, code),
        )

    def issue_auth_code(self, appid: str) -> Consent:
        """An authorization code as if the merchant had just authorized (no pre_auth_code, no push).

        An account that is not authorized becomes authorized; an authorized one keeps its refresh token."""
        authorizer = self.get_authorizer(appid)
        info_type = "updateauthorized" if authorizer.authorized else "authorized"
        if not authorizer.authorized:
            self._authorize(authorizer)
        pac = PreAuthCode(value="preauthcode@@@" + self._random(86), expires_at=self.clock(), used=True)
        code = self._new_auth_code(authorizer, pac.value)
        return Consent(
            appid=appid,
            auth_code=code.value,
            expires_in=self.config.auth_code_ttl,
            info_type=info_type,
            event=self._auth_event(info_type, authorizer, code),
        )

    def revoke(self, appid: str) -> dict[str, str | int]:
        """The merchant cancels the authorization; returns the inner fields of the `unauthorized` push."""
        authorizer = self.get_authorizer(appid)
        if not authorizer.authorized:
            raise ControlError(409, f"{appid} is not authorized")
        authorizer.authorized = False
        authorizer.refresh_token = None
        authorizer.generation += 1
        self.authorized_order.pop(appid, None)
        return {
            "AppId": self.config.component_appid,
            "CreateTime": int(self.clock()),
            "InfoType": "unauthorized",
            "AuthorizerAppid": appid,
        }

    def query_auth(self, component_token: str | None, appid: str | None, code_value: str) -> dict[str, Any]:
        self.check_component_token(component_token)
        self._check_component_appid(appid)
        code = self.auth_codes.get(code_value)
        if code is None or (code.used and self.config.auth_code_single_use):
            raise WeChatFault(61009)
        if self.clock() >= code.expires_at:
            raise WeChatFault(61010)
        authorizer = self.authorizers[code.appid]
        # A code from an authorization that was since replaced or revoked no longer works.
        if not authorizer.authorized or authorizer.generation != code.generation:
            raise WeChatFault(61009)
        code.used = True
        token = self._issue_authorizer_token(authorizer)
        return {
            "authorization_info": {
                "authorizer_appid": authorizer.appid,
                "authorizer_access_token": token.value,
                "expires_in": self.config.authorizer_token_ttl,
                "authorizer_refresh_token": authorizer.refresh_token,
                "func_info": self.func_info(authorizer),
            }
        }

    def authorizer_token(
        self, component_token: str | None, appid: str | None, authorizer_appid: str, refresh_token: str
    ) -> dict[str, Any]:
        self.check_component_token(component_token)
        self._check_component_appid(appid)
        calls = self.counters.authorizer_token_calls
        calls[authorizer_appid] = calls.get(authorizer_appid, 0) + 1
        authorizer = self.authorizers.get(authorizer_appid)
        if authorizer is None or not authorizer.authorized:
            raise WeChatFault(61003)
        if not refresh_token or refresh_token != authorizer.refresh_token:
            raise WeChatFault(61023)
        token = self._issue_authorizer_token(authorizer)
        # The refresh token does not rotate on refresh (§3.5); it is returned as WeChat does.
        return {
            "authorizer_access_token": token.value,
            "expires_in": self.config.authorizer_token_ttl,
            "authorizer_refresh_token": authorizer.refresh_token,
        }

    def authorizer_info(self, component_token: str | None, appid: str | None, authorizer_appid: str) -> dict[str, Any]:
        self.check_component_token(component_token)
        self._check_component_appid(appid)
        authorizer = self.authorizers.get(authorizer_appid)
        if authorizer is None or not authorizer.authorized:
            raise WeChatFault(61003)
        info: dict[str, Any] = {
            "nick_name": authorizer.nickname,
            "head_img": f"http://wx.qlogo.cn/mmopen/sandbox/{authorizer.appid}/0",
            "service_type_info": {"id": SERVICE_TYPE_ID[authorizer.kind]},
            "verify_type_info": {"id": authorizer.verify_type},
            "user_name": authorizer.user_name,
            "alias": authorizer.alias,
            "qrcode_url": f"http://mmbiz.qpic.cn/mmbiz_jpg/sandbox/{authorizer.appid}/0",
            "business_info": {"open_pay": 0, "open_shake": 0, "open_scan": 0, "open_card": 0, "open_store": 0},
            "idc": 1,
            "principal_name": authorizer.principal_name,
            "signature": authorizer.signature,
            "register_type": 0,
            "account_status": authorizer.account_status,
            "basic_config": {"is_phone_configured": True, "is_email_configured": True},
        }
        # MiniProgramInfo is what tells a Mini Program from an Official Account (§3.6).
        if authorizer.kind == "mini_program":
            info["MiniProgramInfo"] = {
                "network": {
                    "RequestDomain": [],
                    "WsRequestDomain": [],
                    "UploadDomain": [],
                    "DownloadDomain": [],
                    "BizDomain": [],
                    "UDPDomain": [],
                },
                "categories": [],
                "visit_status": 0,
            }
        return {
            "authorizer_info": info,
            "authorization_info": {
                "authorizer_appid": authorizer.appid,
                "authorizer_refresh_token": authorizer.refresh_token,
                "func_info": self.func_info(authorizer),
            },
        }

    @staticmethod
    def func_info(authorizer: Authorizer) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for func_id in authorizer.func_ids:
            item: dict[str, Any] = {"funcscope_category": {"id": func_id}}
            # WeChat adds an undocumented confirm_info to some sets (§3.4 example); parsers must ignore it.
            if func_id == 11:
                item["confirm_info"] = {"need_confirm": 0, "already_confirm": 0, "can_confirm": 0}
            items.append(item)
        return items

    def authorizer_list(
        self, component_token: str | None, appid: str | None, offset: int, count: int
    ) -> dict[str, Any]:
        self.check_component_token(component_token)
        self._check_component_appid(appid)
        if offset < 0 or not 1 <= count <= 500:
            raise WeChatFault(40097)
        items = []
        # islice refuses indices beyond sys.maxsize; any offset past the end is simply an empty page.
        offset = min(offset, len(self.authorized_order))
        for authorizer_appid in islice(self.authorized_order, offset, offset + count):
            authorizer = self.authorizers[authorizer_appid]
            item: dict[str, Any] = {"authorizer_appid": authorizer_appid, "auth_time": authorizer.auth_time}
            # Users report list items without refresh_token (§3.7); the flag reproduces that.
            if not authorizer.omit_refresh_token_in_list:
                item["refresh_token"] = authorizer.refresh_token
            items.append(item)
        return {"total_count": len(self.authorized_order), "list": items}

    # --- Official Account APIs (§8, §9) ---------------------------------------------------------------

    def _quota_today(self, authorizer: Authorizer) -> dict[str, int]:
        today = datetime.fromtimestamp(self.clock(), ZoneInfo(self.config.quota_timezone)).date()
        if authorizer.quota_day != today:
            authorizer.quota_day = today
            authorizer.quota_used = {}
        return authorizer.quota_used

    def _quota_limit(self, cgi_path: str) -> int:
        return self.config.daily_quota if cgi_path == DRAFT_COUNT_PATH else QUOTA_LIMITS[cgi_path]

    def draft_count(self, access_token: str | None) -> dict[str, Any]:
        authorizer = self.check_authorizer_token(access_token)
        calls = self.counters.draft_count_calls
        calls[authorizer.appid] = calls.get(authorizer.appid, 0) + 1
        if not authorizer.authorized:
            raise WeChatFault(61003)
        # Draft APIs are for Official Accounts holding set 11 or 100 (§5, §9).
        if authorizer.kind not in OFFICIAL_ACCOUNT_KINDS or not DRAFT_FUNC_IDS & set(authorizer.func_ids):
            raise WeChatFault(48001)
        if authorizer.account_status in LIMITED_STATUSES:
            raise WeChatFault(50002)
        used = self._quota_today(authorizer)
        if used.get(DRAFT_COUNT_PATH, 0) >= self.config.daily_quota:
            raise WeChatFault(45009)
        used[DRAFT_COUNT_PATH] = used.get(DRAFT_COUNT_PATH, 0) + 1
        # Success carries no errcode, as on real WeChat (§6).
        return {"total_count": authorizer.draft_count}

    def quota_get(self, access_token: str | None, cgi_path: str) -> dict[str, Any]:
        authorizer = self.check_authorizer_token(access_token)
        if not authorizer.authorized:
            raise WeChatFault(61003)
        if cgi_path not in QUOTA_LIMITS:
            raise WeChatFault(76021)
        limit = self._quota_limit(cgi_path)
        used = self._quota_today(authorizer).get(cgi_path, 0)
        return {
            "errcode": 0,
            "errmsg": "ok",
            "quota": {"daily_limit": limit, "used": used, "remain": max(limit - used, 0)},
        }

    def set_quota_used(self, appid: str, used: int, cgi_path: str = DRAFT_COUNT_PATH) -> None:
        authorizer = self.get_authorizer(appid)
        _check_int("used", used, minimum=0)
        if cgi_path not in QUOTA_LIMITS:
            raise ControlError(400, f"unknown cgi_path {cgi_path!r}; known: {sorted(QUOTA_LIMITS)}")
        self._quota_today(authorizer)[cgi_path] = used

    def reset_quotas(self) -> None:
        """A new quota day for every account."""
        for authorizer in self.authorizers.values():
            authorizer.quota_day = None
            authorizer.quota_used = {}

    # --- accounts (control API) -----------------------------------------------------------------------

    def get_authorizer(self, appid: str) -> Authorizer:
        authorizer = self.authorizers.get(appid)
        if authorizer is None:
            raise ControlError(404, f"no sandbox account {appid!r}")
        return authorizer

    def create_authorizer(
        self,
        *,
        appid: str | None = None,
        nickname: str | None = None,
        kind: str = "service",
        verify_type: int = 0,
        func_ids: Iterable[int] = (1, 11),
        draft_count: int = 0,
        principal_name: str | None = None,
        account_status: int = 1,
        authorized: bool = False,
        omit_refresh_token_in_list: bool = False,
    ) -> Authorizer:
        """A new account in the sandbox's WeChat. By default the merchant has not authorized the component yet
        (consent does that); `authorized=True` ones come with a refresh token and an access token issued."""
        if appid is None:
            appid = self.new_appid()
        _check_appid(appid)
        if appid in self.authorizers:
            raise ControlError(409, f"sandbox account {appid} already exists")
        suffix = appid[-6:]
        authorizer = Authorizer(
            appid=appid,
            nickname=nickname if nickname is not None else f"沙箱公众号{suffix}",
            kind=_check_kind(kind),
            verify_type=_check_int("verify_type", verify_type, allowed=VERIFY_TYPES),
            principal_name=principal_name if principal_name is not None else f"沙箱科技有限公司{suffix}",
            user_name="gh_" + self._hex(12),
            alias="",
            signature="微信沙箱账号",
            account_status=_check_int("account_status", account_status, allowed=ACCOUNT_STATUSES),
            draft_count=_check_int("draft_count", draft_count, minimum=0),
            func_ids=_check_func_ids(func_ids),
            omit_refresh_token_in_list=bool(omit_refresh_token_in_list),
        )
        self.authorizers[appid] = authorizer
        if authorized:
            self._authorize(authorizer)
            self._issue_authorizer_token(authorizer)
        return authorizer

    def bulk_create_authorizers(
        self,
        *,
        count: int,
        prefix: str = "bench",
        kind: str = "service",
        func_ids: Iterable[int] = (1, 11),
        draft_count: int | tuple[int, int] | list[int] = 0,
        authorized: bool = True,
    ) -> list[Authorizer]:
        _check_int("count", count, minimum=1)
        if count > 100_000:
            raise ControlError(400, "count must be at most 100000")
        if isinstance(draft_count, list | tuple):
            if len(draft_count) != 2:
                raise ControlError(400, "draft_count must be an integer or [low, high]")
            low = _check_int("draft_count", draft_count[0], minimum=0)
            high = _check_int("draft_count", draft_count[1], minimum=low)
        else:
            low = high = _check_int("draft_count", draft_count, minimum=0)
        ids = _check_func_ids(func_ids)
        checked_kind = _check_kind(kind)
        return [
            self.create_authorizer(
                nickname=f"{prefix}{index:05d}",
                kind=checked_kind,
                func_ids=ids,
                draft_count=self.rng.randint(low, high),
                authorized=authorized,
            )
            for index in range(count)
        ]

    def update_authorizer(self, appid: str, changes: dict[str, Any]) -> Authorizer:
        authorizer = self.get_authorizer(appid)
        allowed = {
            "draft_count",
            "func_ids",
            "kind",
            "verify_type",
            "omit_refresh_token_in_list",
            "nickname",
            "principal_name",
            "account_status",
        }
        unknown = set(changes) - allowed
        if unknown:
            raise ControlError(400, f"cannot change {sorted(unknown)}; changeable: {sorted(allowed)}")
        # Validate everything before changing anything, so that a bad request changes nothing.
        validated: dict[str, Any] = {}
        for name, value in changes.items():
            if name == "draft_count":
                validated[name] = _check_int(name, value, minimum=0)
            elif name == "func_ids":
                if not isinstance(value, list):
                    raise ControlError(400, "func_ids must be a list")
                validated[name] = _check_func_ids(value)
            elif name == "kind":
                validated[name] = _check_kind(value)
            elif name == "verify_type":
                validated[name] = _check_int(name, value, allowed=VERIFY_TYPES)
            elif name == "account_status":
                validated[name] = _check_int(name, value, allowed=ACCOUNT_STATUSES)
            elif name == "omit_refresh_token_in_list":
                if not isinstance(value, bool):
                    raise ControlError(400, f"{name} must be true or false")
                validated[name] = value
            else:
                if not isinstance(value, str) or not value:
                    raise ControlError(400, f"{name} must be a non-empty string")
                validated[name] = value
        for name, value in validated.items():
            setattr(authorizer, name, value)
        return authorizer

    def expire_authorizer_tokens(self, appid: str) -> int:
        authorizer = self.get_authorizer(appid)
        now = self.clock()
        for value in authorizer.tokens:
            token = self.authorizer_tokens[value]
            token.expires_at = min(token.expires_at, now)
        return len(authorizer.tokens)

    def invalidate_authorizer_tokens(self, appid: str) -> int:
        authorizer = self.get_authorizer(appid)
        for value in authorizer.tokens:
            self.authorizer_tokens[value].invalidated = True
        return len(authorizer.tokens)

    def authorizer_view(self, authorizer: Authorizer) -> dict[str, Any]:
        """Everything about an account, tokens included (the control API is a test harness)."""
        token = self.authorizer_tokens.get(authorizer.current_token) if authorizer.current_token else None
        now = self.clock()
        return {
            "appid": authorizer.appid,
            "nickname": authorizer.nickname,
            "kind": authorizer.kind,
            "verify_type": authorizer.verify_type,
            "principal_name": authorizer.principal_name,
            "user_name": authorizer.user_name,
            "account_status": authorizer.account_status,
            "draft_count": authorizer.draft_count,
            "func_ids": list(authorizer.func_ids),
            "omit_refresh_token_in_list": authorizer.omit_refresh_token_in_list,
            "authorized": authorizer.authorized,
            "auth_time": authorizer.auth_time,
            "authorizer_refresh_token": authorizer.refresh_token,
            "authorizer_access_token": token.value if token is not None else None,
            "expires_in": max(int(token.expires_at - now), 0) if token is not None else None,
            "quota_used": dict(self._quota_today(authorizer)),
        }

    # --- faults ---------------------------------------------------------------------------------------

    def set_faults(self, plan: FaultPlan | None) -> None:
        self.faults = plan

    # --- pushes ---------------------------------------------------------------------------------------

    def record_push(self, attempt: dict[str, Any]) -> dict[str, Any]:
        attempt["id"] = len(self.pushes) + 1
        self.pushes.append(attempt)
        return attempt
