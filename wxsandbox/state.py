"""The sandbox's WeChat, as a synchronous state machine.

Everything WeChat remembers lives here: the component's tickets and tokens, pre-auth and authorization codes,
the authorized accounts with their tokens, permission sets, draft counts and daily quotas. It knows no HTTP:
app.py turns requests into calls and `WeChatFault`s into errcode answers, so that these rules can be unit
tested against a `ManualClock`. The server touches one instance from its event loop thread only.

Rules follow the notes in docs/wechat/ (cited page by page below); where the protocol is UNCONFIRMED,
the choice made here is noted.
"""

from __future__ import annotations

import hashlib
import random
import secrets
import string
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from itertools import islice
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from wxplatform.wechat.crypto import XmlValue
from wxsandbox.config import MUTABLE_FIELDS, SandboxConfig
from wxsandbox.ridlog import RID_RE, RidLog, RidRecord

Clock = Callable[[], float]
Kind = Literal["subscription", "service", "mini_program", "channels", "store", "talent", "supplier"]
# The kinds a merchant meets on the consent page and in the demo.
CLASSIC_KINDS: tuple[Kind, ...] = ("subscription", "service", "mini_program")
# Since 2025-2026 Channels accounts, WeChat Stores, shopping assistants and suppliers authorize platforms too
# (视频号 / 微信小店 / 带货助手 / 供货商, docs/wechat/lifecycle.md).
KINDS: tuple[Kind, ...] = (*CLASSIC_KINDS, "channels", "store", "talent", "supplier")
OFFICIAL_ACCOUNT_KINDS = frozenset({"subscription", "service"})
# The block of api_get_authorizer_info that tells each non-OA kind apart
# (docs/wechat/endpoints.md#api_get_authorizer_info, docs/wechat/lifecycle.md): only an account with
# none of them is an Official Account.
KIND_BLOCKS: dict[str, str] = {
    "mini_program": "MiniProgramInfo",
    "channels": "channels_info",
    "store": "store_info",
    "talent": "talent_info",
    "supplier": "supplier_info",
}
# service_type_info.id (docs/wechat/endpoints.md#api_get_authorizer_info): 0 subscription, 2 service; Mini Programs
# report 0 as well, and so do the
# newer kinds here (undocumented): the id alone must not decide the kind.
SERVICE_TYPE_ID: dict[str, int] = {"subscription": 0, "service": 2}
VERIFY_TYPES = frozenset({-1, 0, 1, 2, 3, 4, 5})
# account_status (docs/wechat/endpoints.md#api_get_authorizer_info): 1 normal, 14 deregistered, 16 banned, 18 warned, 19
# frozen.
ACCOUNT_STATUSES = frozenset({1, 14, 16, 18, 19})
LIMITED_STATUSES = frozenset({14, 16, 19})
# Either permission set allows draft/count (docs/wechat/permissions.md).
DRAFT_FUNC_IDS = frozenset({11, 100})
# 消息管理: receiving messages and answering fans, customer-service messages included (docs/wechat/permissions.md,
# docs/wechat/message-url.md#full-release-test).
MESSAGE_FUNC_ID = 1

DRAFT_COUNT_PATH = "/cgi-bin/draft/count"
# Publishing a draft and mass-sending one take it out of the box; WeChat pushes PUBLISHJOBFINISH /
# MASSSENDJOBFINISH when the job ends (docs/wechat/draft-events.md).
FREEPUBLISH_SUBMIT_PATH = "/cgi-bin/freepublish/submit"
MASS_SENDALL_PATH = "/cgi-bin/message/mass/sendall"
# Both APIs belong to permission set 7 (群发与通知, docs/wechat/draft-events.md#publishing-and-mass-sending).
PUBLISH_FUNC_ID = 7
CUSTOM_SEND_PATH = "/cgi-bin/message/custom/send"
COMPONENT = "/cgi-bin/component"
# Default daily limits of an account's APIs (docs/wechat/quota.md); of the draft APIs only draft/count is emulated, the
# others
# can be queried.
QUOTA_LIMITS: dict[str, int] = {
    DRAFT_COUNT_PATH: 1000,
    "/cgi-bin/draft/add": 1000,
    "/cgi-bin/draft/get": 500,
    "/cgi-bin/draft/delete": 1000,
    "/cgi-bin/draft/update": 1000,
    "/cgi-bin/draft/batchget": 1000,
    # Not published per API; the emulator's choice (docs/wechat/draft-events.md).
    FREEPUBLISH_SUBMIT_PATH: 100,
    MASS_SENDALL_PATH: 100,
    # API_Call_Limits.html lists 500000 for 发送客服消息.
    CUSTOM_SEND_PATH: 500000,
}
# The component's own daily limits. 10000 for api_component_token is a user's report (docs/wechat/quota.md,
# UNCONFIRMED); the
# others are not published, so they are set high enough that only a test that lowers them meets them.
COMPONENT_QUOTA_LIMITS: dict[str, int] = {
    f"{COMPONENT}/api_component_token": 10000,
    f"{COMPONENT}/api_create_preauthcode": 1_000_000,
    f"{COMPONENT}/api_query_auth": 1_000_000,
    f"{COMPONENT}/api_authorizer_token": 1_000_000,
    f"{COMPONENT}/api_get_authorizer_info": 1_000_000,
    f"{COMPONENT}/api_get_authorizer_list": 1_000_000,
}
# Customer-service message types of the OA doc (Service_Center_messages).
CUSTOM_MSG_TYPES = frozenset(
    {"text", "image", "voice", "video", "music", "news", "mpnews", "mpnewsarticle", "msgmenu", "wxcard",
     "miniprogrampage", "link"}
)  # fmt: skip
# A fan who wrote once can be sent this many customer-service messages before writing again (45047).
CUSTOM_SEND_PER_INTERACTION = 20

# WeChat's full-release test accounts (docs/wechat/message-url.md#full-release-test): five Official Accounts with their
# 原始IDs, five Mini Programs.
RELEASE_TEST_OFFICIAL_ACCOUNTS: tuple[tuple[str, str], ...] = (
    ("wx570bc396a51b8ff8", "gh_3c884a361561"),
    ("wx9252c5e0bb1836fc", "gh_c0f28a78b318"),
    ("wx8e1097c5bc82cde9", "gh_3f222ed8d140"),
    ("wx14550af28c71a144", "gh_26128078e9ab"),
    ("wxa35b9c23cfe664eb", "gh_2b3713f184a6"),
)
RELEASE_TEST_MINI_PROGRAMS: tuple[str, ...] = (
    "wxd101a85aa106f53e",
    "wxc39235c15087f6f3",
    "wx7720d01d4b2a4500",
    "wx05d483572dcd5d8b",
    "wx5910277cae6fd970",
)

ERRMSG: dict[int, str] = {
    -1: "system error",
    0: "ok",
    40001: "invalid credential, access_token is invalid or not latest",
    40003: "invalid openid",
    40008: "invalid message type",
    40007: "invalid media_id",
    40013: "invalid appid",
    40014: "invalid access_token",
    40066: "invalid url",
    40097: "invalid args",
    40125: "invalid appsecret",
    41001: "access_token missing",
    41002: "appid missing",
    41004: "appsecret missing",
    41018: "missing component_appid",
    42001: "access_token expired",
    43001: "require GET method",
    43002: "require POST method",
    44002: "empty post data",
    45002: "content size out of limit",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit, must slower, retry next minute",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
    47001: "data format error",
    48001: "api unauthorized",
    48006: "forbid to clear quota because of reaching the limit",
    50002: "user limited",
    61003: "component is not authorized by this account",
    61004: "access clientip is not registered",
    61005: "component ticket is expired",
    61006: "component ticket is invalid",
    61007: "api is unauthorized to component",
    61009: "code is invalid",
    61010: "code is expired",
    61011: "invalid component",
    61014: "must use component token for component api",
    61023: "refresh_token is invalid",
    # Wording of get_rid_info.html and get_api_quota.html.
    76001: "rid not found",
    76002: "rid is error",
    76003: "could not query this rid,no permission",
    76021: "cgi_path not found, please check",
    76022: "could not use this cgi_path,no permission",
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
    # The authorization code that api_query_auth exchanged for this token, if that is how it was issued.
    auth_code: str | None = None


@dataclass(slots=True)
class PreAuthCode:
    value: str
    expires_at: float
    used: bool = False
    created_at: float = 0.0
    # Created by the platform through api_create_preauthcode (not by the sandbox standing in for one).
    by_platform: bool = False


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
class QuotaBook:
    """One account's API quotas: today's use per cgi_path, its own limits, and this month's clears."""

    day: date | None = None
    used: dict[str, int] = field(default_factory=dict)
    # Per-account daily limits, overriding the defaults (QUOTA_LIMITS, config.daily_quota).
    limits: dict[str, int] = field(default_factory=dict)
    # Reported by openapi/quota/get, per cgi_path: {"rate_limit": {...}, "component_rate_limit": {...}}.
    rate_limits: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    clear_month: str | None = None
    clears: int = 0
    # Calls third parties made in the current component_rate_limit window, per cgi_path: (window index, calls).
    # Not persisted: a window lasts seconds.
    windows: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass(slots=True)
class Fan:
    """A WeChat user who wrote to an account: customer-service messages may answer for a while
    (docs/wechat/message-url.md#full-release-test)."""

    openid: str
    last_message_at: float
    sent_since: int = 0


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
    quota: QuotaBook = field(default_factory=QuotaBook)
    head_img: str = ""
    qrcode_url: str = ""
    # service_type_info.id when set; otherwise derived from the kind. Field reports show undocumented values
    # (10), so any integer is accepted (docs/wechat/lifecycle.md).
    service_type: int | None = None
    # The content of the kind's block (MiniProgramInfo, channels_info, ...) when set; a default otherwise.
    kind_info: dict[str, Any] | None = None
    basic_config: dict[str, Any] = field(
        default_factory=lambda: {"is_phone_configured": True, "is_email_configured": True}
    )
    # One of WeChat's own full-release test accounts (docs/wechat/message-url.md#full-release-test), kept out of the
    # merchant-facing listings.
    test_account: bool = False
    fans: dict[str, Fan] = field(default_factory=dict)
    custom_messages: list[dict[str, Any]] = field(default_factory=list)
    # The media_ids of the drafts in the box, made up when first needed (draft_ids): draft_count stays the truth,
    # so that setting it through the control API keeps working. Not kept in the state file.
    draft_media_ids: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Consent:
    """The result of an authorization: the code for api_query_auth and the push that announces it."""

    appid: str
    auth_code: str
    expires_in: int
    info_type: str
    event: dict[str, str | int]


@dataclass(slots=True)
class DraftJob:
    """A publish or a mass send of one draft: what was taken and the event WeChat pushes when the job ends."""

    appid: str
    kind: str
    # publish_id, or the mass send's msg_id.
    job_id: str
    msg_data_id: str
    media_id: str
    # The box's count right after the draft left it.
    draft_count: int
    event: dict[str, XmlValue]

    def view(self) -> dict[str, Any]:
        return {
            "appid": self.appid,
            "kind": self.kind,
            "job_id": self.job_id,
            "media_id": self.media_id,
            "draft_count": self.draft_count,
            "event": self.event["Event"],
        }


def _mphelper_openid(appid: str) -> str:
    """The sender of the job events: the account's 群发助手 (mphelper), one openid per account."""
    return "o" + hashlib.sha256(f"mphelper:{appid}".encode()).hexdigest()[:27]


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


# What the control API may change on an account without a push (docs/wechat/lifecycle.md); creation takes the same.
PROFILE_FIELDS = frozenset(
    {"draft_count", "func_ids", "kind", "verify_type", "omit_refresh_token_in_list", "nickname", "principal_name",
     "account_status", "alias", "signature", "head_img", "qrcode_url", "service_type", "kind_info", "basic_config"}
)  # fmt: skip
# The profile fields create_authorizer takes only as extra keywords (the others are its named arguments).
_CREATE_ONLY_PROFILE = frozenset({"alias", "signature", "head_img", "qrcode_url", "service_type", "kind_info",
                                  "basic_config"})  # fmt: skip
_NO_RATE_LIMIT = {"call_count": 0, "refresh_second": 0}
# Customer-service messages remembered per account for the control API.
_CUSTOM_MESSAGES_KEPT = 1000


def _well_formed_token(value: str) -> bool:
    # Only what no query string carries by mistake counts as malformed (40014): spaces, control characters,
    # non-ASCII text, absurd lengths. Stray "&" or "=" from a badly built URL stay "invalid credential".
    return len(value) <= 512 and value.isascii() and value.isprintable() and " " not in value


def check_appid(appid: str) -> None:
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


def _check_rate_limit(name: str, value: Any) -> dict[str, int]:
    if not isinstance(value, dict) or set(value) != {"call_count", "refresh_second"}:
        raise ControlError(400, f'{name} must be {{"call_count": n, "refresh_second": n}}')
    return {key: _check_int(f"{name}.{key}", number, minimum=0) for key, number in value.items()}


def _service_type_id(authorizer: Authorizer) -> int:
    if authorizer.service_type is not None:
        return authorizer.service_type
    return SERVICE_TYPE_ID.get(authorizer.kind, 0)


def _default_kind_info(block: str) -> dict[str, Any]:
    if block == "MiniProgramInfo":
        network = ["RequestDomain", "WsRequestDomain", "UploadDomain", "DownloadDomain", "BizDomain", "UDPDomain"]
        return {"network": {name: [] for name in network}, "categories": [], "visit_status": 0}
    # The content of the newer blocks is not documented: an empty object, whose presence alone marks the kind.
    return {}


def _check_int(name: str, value: Any, *, allowed: Iterable[int] | None = None, minimum: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ControlError(400, f"{name} must be an integer")
    if allowed is not None and value not in allowed:
        raise ControlError(400, f"{name} must be one of {sorted(allowed)}")
    if minimum is not None and value < minimum:
        raise ControlError(400, f"{name} must be at least {minimum}")
    return value


def check_config_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """The run-time config changes, validated (a ControlError for the first bad one), values normalised."""
    unknown = set(changes) - MUTABLE_FIELDS
    if unknown:
        raise ControlError(400, f"cannot change {sorted(unknown)}; changeable: {sorted(MUTABLE_FIELDS)}")
    checked: dict[str, Any] = {}
    for name, value in changes.items():
        expected = type(getattr(SandboxConfig(), name))
        if name == "event_url":
            if value is not None and not (isinstance(value, str) and value.startswith(("http://", "https://"))):
                raise ControlError(400, "event_url must be an http(s) URL or null")
        elif name == "message_url":
            if value is not None and not (
                isinstance(value, str) and value.startswith(("http://", "https://")) and "$APPID$" in value
            ):
                raise ControlError(400, "message_url must be an http(s) URL containing $APPID$, or null")
        elif name == "platform_func_ids":
            if not isinstance(value, list):
                raise ControlError(400, "platform_func_ids must be a list")
            value = _check_func_ids(value)
        elif name == "message_tries":
            _check_int(name, value, minimum=1)
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
        checked[name] = value
    return checked


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
        initial = self._initial_config
        self.config = replace(
            initial,
            endpoint_latency=dict(initial.endpoint_latency),
            platform_func_ids=list(initial.platform_func_ids),
        )
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
        self.component_quota = QuotaBook()
        self.rids = RidLog()
        # Message pushes to the message-and-event URL and full-release test runs, newest last (bounded).
        self.messages: deque[dict[str, Any]] = deque(maxlen=1000)
        self.release_tests: deque[dict[str, Any]] = deque(maxlen=20)
        self._message_ids = 0
        self._job_ids = 0
        # Bumped by every change worth persisting (never goes back, not even on reset); the state file is
        # written when it moved (persistence.py).
        self.version = getattr(self, "version", 0) + 1
        self._create_release_test_accounts()

    def update_config(self, changes: dict[str, Any]) -> SandboxConfig:
        checked = check_config_changes(changes)
        # Validate everything before changing anything, so that a bad request changes nothing.
        for name, value in checked.items():
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
        if token is None:
            # A value that no token could ever be is "invalid access_token" (40014); a well-formed one that is
            # not (or no longer) known is "invalid credential" (40001), as a stale token is.
            raise WeChatFault(40001 if _well_formed_token(value) else 40014)
        if token.invalidated:
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
        return self.authorizer_and_token(value)[0]

    def authorizer_and_token(self, value: str | None) -> tuple[Authorizer, Token]:
        if not value:
            raise WeChatFault(41001)
        token = self._check_token(self.authorizer_tokens, value)
        return self.authorizers[token.owner], token

    def resolve_token(self, value: str | None) -> Authorizer | None:
        """The account behind a token of either kind, for APIs that take both: an authorizer, or None for the
        component itself. Token errors as for any API."""
        if not value:
            raise WeChatFault(41001)
        if value in self.authorizer_tokens:
            return self.check_authorizer_token(value)
        self._check_token(self.component_tokens, value)
        return None

    def token_owner(self, value: str | None) -> str | None:
        """The appid a token was issued to, valid or not (for the rid log), or None for an unknown value."""
        if not value:
            return None
        token = self.authorizer_tokens.get(value) or self.component_tokens.get(value)
        return token.owner if token is not None else None

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

    # --- tickets and the component token (docs/wechat/flow.md#ticket-timing,
    # docs/wechat/endpoints.md#api_component_token) -----------------------------------------------

    def issue_ticket(self) -> dict[str, str | int]:
        """A new component_verify_ticket; returns the inner fields of its push (docs/wechat/flow.md#infotype-values)."""
        now = self.clock()
        ticket = "ticket@@@" + self._random(86)
        self.tickets[ticket] = now
        self.current_ticket = ticket
        self.version += 1
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
        # An empty or unknown ticket is "invalid" (docs/wechat/errors.md: 61006); a known one past its 12 h is
        # "expired".
        issued = self.tickets.get(ticket) if ticket else None
        if issued is None:
            raise WeChatFault(61006)
        if self.clock() - issued >= self.config.ticket_ttl:
            raise WeChatFault(61005)
        self._spend_component(f"{COMPONENT}/api_component_token")
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

    # --- authorization (docs/wechat/endpoints.md#api_create_preauthcode)
    # ---------------------------------------------------------------------

    def create_pre_auth_code(self, component_token: str | None, appid: str | None) -> dict[str, Any]:
        self.check_component_token(component_token)
        self._check_component_appid(appid)
        self._spend_component(f"{COMPONENT}/api_create_preauthcode")
        now = self.clock()
        code = PreAuthCode(
            value="preauthcode@@@" + self._random(86),
            expires_at=now + self.config.pre_auth_code_ttl,
            created_at=now,
            by_platform=True,
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
        # Every authorization issues a new refresh token; the previous one stops working at once
        # (docs/wechat/endpoints.md#api_query_auth).
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
            # docs/wechat/flow.md#infotype-values leaves open whether this is a timestamp or a TTL; third-party fixtures
            # use an absolute
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
        # auth_type 1 lists Official Accounts only, 2 Mini Programs only
        # (docs/wechat/endpoints.md#authorization-page-links).
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
        self._spend_component(f"{COMPONENT}/api_query_auth")
        code.used = True
        token = self._issue_authorizer_token(authorizer)
        token.auth_code = code.value
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
        self._spend_component(f"{COMPONENT}/api_authorizer_token")
        token = self._issue_authorizer_token(authorizer)
        # The refresh token does not rotate on refresh (docs/wechat/endpoints.md#api_authorizer_token); it is returned
        # as WeChat does.
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
        self._spend_component(f"{COMPONENT}/api_get_authorizer_info")
        return {
            "authorizer_info": self.authorizer_profile(authorizer),
            "authorization_info": {
                "authorizer_appid": authorizer.appid,
                "authorizer_refresh_token": authorizer.refresh_token,
                "func_info": self.func_info(authorizer),
            },
        }

    @staticmethod
    def authorizer_profile(authorizer: Authorizer) -> dict[str, Any]:
        """The authorizer_info object of api_get_authorizer_info (docs/wechat/endpoints.md#api_get_authorizer_info,
        docs/wechat/lifecycle.md)."""
        info: dict[str, Any] = {
            "nick_name": authorizer.nickname,
            "head_img": authorizer.head_img,
            "service_type_info": {"id": _service_type_id(authorizer)},
            "verify_type_info": {"id": authorizer.verify_type},
            "user_name": authorizer.user_name,
            "alias": authorizer.alias,
            "qrcode_url": authorizer.qrcode_url,
            "business_info": {"open_pay": 0, "open_shake": 0, "open_scan": 0, "open_card": 0, "open_store": 0},
            "idc": 1,
            "principal_name": authorizer.principal_name,
            "signature": authorizer.signature,
            "register_type": 0,
            "account_status": authorizer.account_status,
            "basic_config": dict(authorizer.basic_config),
        }
        # The kind's block is what tells a non-OA account from an Official Account
        # (docs/wechat/endpoints.md#api_get_authorizer_info, docs/wechat/lifecycle.md).
        block = KIND_BLOCKS.get(authorizer.kind)
        if block is not None:
            info[block] = dict(authorizer.kind_info) if authorizer.kind_info is not None else _default_kind_info(block)
        return info

    @staticmethod
    def func_info(authorizer: Authorizer) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for func_id in authorizer.func_ids:
            item: dict[str, Any] = {"funcscope_category": {"id": func_id}}
            # WeChat adds an undocumented confirm_info to some sets (docs/wechat/endpoints.md#api_query_auth example);
            # parsers must ignore it.
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
        self._spend_component(f"{COMPONENT}/api_get_authorizer_list")
        items = []
        # islice refuses indices beyond sys.maxsize; any offset past the end is simply an empty page.
        offset = min(offset, len(self.authorized_order))
        for authorizer_appid in islice(self.authorized_order, offset, offset + count):
            authorizer = self.authorizers[authorizer_appid]
            item: dict[str, Any] = {"authorizer_appid": authorizer_appid, "auth_time": authorizer.auth_time}
            # Users report list items without refresh_token (docs/wechat/endpoints.md#api_get_authorizer_list); the flag
            # reproduces that.
            if not authorizer.omit_refresh_token_in_list:
                item["refresh_token"] = authorizer.refresh_token
            items.append(item)
        return {"total_count": len(self.authorized_order), "list": items}

    # --- quotas (docs/wechat/quota.md, docs/wechat/errors.md#rid)
    # ---------------------------------------------------------------------------------

    def _local_now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), ZoneInfo(self.config.quota_timezone))

    def _quota_today(self, book: QuotaBook) -> dict[str, int]:
        today = self._local_now().date()
        if book.day != today:
            book.day = today
            book.used = {}
        return book.used

    def _limit(self, book: QuotaBook, cgi_path: str) -> int:
        if cgi_path in book.limits:
            return book.limits[cgi_path]
        if cgi_path in COMPONENT_QUOTA_LIMITS:
            return COMPONENT_QUOTA_LIMITS[cgi_path]
        # Every account's draft/count limit starts at the configured default (1000, docs/wechat/quota.md).
        return self.config.daily_quota if cgi_path == DRAFT_COUNT_PATH else QUOTA_LIMITS[cgi_path]

    def _spend(self, book: QuotaBook, cgi_path: str) -> None:
        """One call of a successful request, or 45009 once today's limit is reached."""
        used = self._quota_today(book)
        spent = used.get(cgi_path, 0)
        if spent >= self._limit(book, cgi_path):
            raise WeChatFault(45009)
        used[cgi_path] = spent + 1

    def _within_component_rate(self, book: QuotaBook, cgi_path: str) -> None:
        """Counts a call a third party makes for the account against its component_rate_limit for `cgi_path`
        (call_count calls per refresh_second window), or raises 45011 when the window's calls are spent: the
        errcode WeChat documents for call-rate limits (docs/wechat/quota.md#rate-limits). 0/0 means no limit.
        Windows are fixed, aligned to multiples of refresh_second on the sandbox clock; WeChat does not say how
        it aligns them. A refused call does not count."""
        limit = book.rate_limits.get(cgi_path, {}).get("component_rate_limit", _NO_RATE_LIMIT)
        count, seconds = limit["call_count"], limit["refresh_second"]
        if count <= 0 or seconds <= 0:
            return
        index = int(self.clock() // seconds)
        window, calls = book.windows.get(cgi_path, (index, 0))
        if window != index:
            calls = 0
        if calls >= count:
            raise WeChatFault(45011)
        book.windows[cgi_path] = (index, calls + 1)

    def _spend_component(self, cgi_path: str) -> None:
        self._spend(self.component_quota, cgi_path)

    def _book_of(self, appid: str) -> QuotaBook:
        """The quota book of an account (the component's for the component appid), for the control API."""
        if appid == self.config.component_appid:
            return self.component_quota
        return self.get_authorizer(appid).quota

    def quota_get(self, access_token: str | None, cgi_path: str) -> dict[str, Any]:
        account = self.resolve_token(access_token)
        if account is not None and not account.authorized:
            raise WeChatFault(61003)
        if cgi_path not in QUOTA_LIMITS and cgi_path not in COMPONENT_QUOTA_LIMITS:
            raise WeChatFault(76021)
        # The token must be the one of the account the API belongs to: the component's for component APIs,
        # the authorizer's for the account's own (get_api_quota.html, 76022).
        if (account is None) != (cgi_path in COMPONENT_QUOTA_LIMITS):
            raise WeChatFault(76022)
        book = account.quota if account is not None else self.component_quota
        limit = self._limit(book, cgi_path)
        used = self._quota_today(book).get(cgi_path, 0)
        rates = book.rate_limits.get(cgi_path, {})
        return {
            "errcode": 0,
            "errmsg": "ok",
            "quota": {"daily_limit": limit, "used": used, "remain": max(limit - used, 0)},
            # Reported as set through the control API, 0/0 otherwise; component_rate_limit is enforced on
            # draft/count (45011 when a window's calls are spent), rate_limit is not (no account calls for itself).
            "rate_limit": dict(rates.get("rate_limit", _NO_RATE_LIMIT)),
            "component_rate_limit": dict(rates.get("component_rate_limit", _NO_RATE_LIMIT)),
        }

    def _clear(self, book: QuotaBook) -> None:
        # 10 clears per account and calendar month, shared by clear_quota, clear_quota/v2 and the console;
        # only a clear that takes effect counts (clear_quota.html).
        month = self._local_now().strftime("%Y-%m")
        if book.clear_month != month:
            book.clear_month = month
            book.clears = 0
        if book.clears >= self.config.monthly_clear_limit:
            raise WeChatFault(48006)
        book.clears += 1
        book.day = None
        book.used = {}

    def clear_quota(self, access_token: str | None, appid: str | None) -> dict[str, Any]:
        """clear_quota with the authorizer's token (its own quota) or the component's (the component's)."""
        account = self.resolve_token(access_token)
        if not appid:
            raise WeChatFault(41002)
        # 40013 also when the appid is not the token's account (clear_quota.html).
        if appid != (account.appid if account is not None else self.config.component_appid):
            raise WeChatFault(40013)
        if account is not None and not account.authorized:
            raise WeChatFault(61003)
        self._clear(account.quota if account is not None else self.component_quota)
        return {"errcode": 0, "errmsg": "ok"}

    def clear_quota_v2(self, component_appid: str | None, appsecret: str | None, appid: str | None) -> dict[str, Any]:
        """clearComponentQuotaByAppSecret: no token; without appid the component's own quota, with it an
        authorized account's (api_componentclearquota_v2)."""
        self._check_component_appid(component_appid)
        if not appsecret:
            raise WeChatFault(41004)
        if appsecret != self.config.component_appsecret:
            raise WeChatFault(40125)
        if appid is None or appid == self.config.component_appid:
            book = self.component_quota
        else:
            authorizer = self.authorizers.get(appid)
            if authorizer is None:
                raise WeChatFault(40013)
            # "appid参数需要是已授权的账号".
            if not authorizer.authorized:
                raise WeChatFault(61003)
            book = authorizer.quota
        self._clear(book)
        return {"errcode": 0, "errmsg": "ok"}

    def set_quota(
        self,
        appid: str,
        cgi_path: str = DRAFT_COUNT_PATH,
        *,
        used: int | None = None,
        daily_limit: int | None = None,
        rate_limit: dict[str, Any] | None = None,
        component_rate_limit: dict[str, Any] | None = None,
        clears: int | None = None,
    ) -> None:
        """Control API: today's use, the account's own daily limit and rate limits for `cgi_path`, and this
        month's clear count, of an authorizer or (with the component appid) of the component."""
        book = self._book_of(appid)
        known = COMPONENT_QUOTA_LIMITS if book is self.component_quota else QUOTA_LIMITS
        if cgi_path not in known:
            raise ControlError(400, f"unknown cgi_path {cgi_path!r}; known: {sorted(known)}")
        if used is not None:
            _check_int("used", used, minimum=0)
        if daily_limit is not None:
            _check_int("daily_limit", daily_limit, minimum=0)
        if clears is not None:
            _check_int("clears", clears, minimum=0)
        rates = {
            name: _check_rate_limit(name, value)
            for name, value in (("rate_limit", rate_limit), ("component_rate_limit", component_rate_limit))
            if value is not None
        }
        if used is not None:
            self._quota_today(book)[cgi_path] = used
        if daily_limit is not None:
            book.limits[cgi_path] = daily_limit
        if rates:
            book.rate_limits.setdefault(cgi_path, {}).update(rates)
        if clears is not None:
            book.clear_month = self._local_now().strftime("%Y-%m")
            book.clears = clears

    def set_quota_used(self, appid: str, used: int, cgi_path: str = DRAFT_COUNT_PATH) -> None:
        _check_int("used", used, minimum=0)
        self.set_quota(appid, cgi_path, used=used)

    def quota_view(self, book: QuotaBook) -> dict[str, Any]:
        month = self._local_now().strftime("%Y-%m")
        return {
            "quota_used": dict(self._quota_today(book)),
            "daily_limits": dict(book.limits),
            "rate_limits": {path: {k: dict(v) for k, v in rates.items()} for path, rates in book.rate_limits.items()},
            "quota_clears": book.clears if book.clear_month == month else 0,
        }

    def reset_quotas(self) -> None:
        """A new quota day for every account and the component (limits and clears stay)."""
        for book in [self.component_quota, *(a.quota for a in self.authorizers.values())]:
            book.day = None
            book.used = {}

    # --- rid (docs/wechat/errors.md#rid)
    # -------------------------------------------------------------------------------------

    def record_rid(self, record: RidRecord) -> None:
        self.rids.add(record, self.config.rid_log_size)

    def rid_get(self, access_token: str | None, rid: str | None) -> dict[str, Any]:
        account = self.resolve_token(access_token)
        if not isinstance(rid, str) or RID_RE.fullmatch(rid) is None:
            raise WeChatFault(76002)
        record = self.rids.get(rid)
        if record is None or self.clock() - record.invoke_time >= self.config.rid_retention:
            raise WeChatFault(76001)
        # Only the account that made the call may read it: the authorizer's token for calls made with it, the
        # component's for the component's calls (get_rid_info.html).
        if record.owner != (account.appid if account is not None else self.config.component_appid):
            raise WeChatFault(76003)
        return {"errcode": 0, "errmsg": "ok", "request": record.request_info()}

    # --- Official Account APIs (docs/wechat/endpoints.md#draft_count, docs/wechat/message-url.md)
    # ------------------------------------------------------------------

    def draft_count(self, access_token: str | None) -> dict[str, Any]:
        authorizer = self.check_authorizer_token(access_token)
        calls = self.counters.draft_count_calls
        calls[authorizer.appid] = calls.get(authorizer.appid, 0) + 1
        if not authorizer.authorized:
            raise WeChatFault(61003)
        # Draft APIs are for Official Accounts (48001: the account itself may not use them) that granted this
        # platform set 11 or 100 (61007: the set was not granted to the component), as WeChat's docs tell the two
        # apart (docs/wechat/permissions.md#missing-permission-errors, docs/wechat/endpoints.md#draft_count).
        if authorizer.kind not in OFFICIAL_ACCOUNT_KINDS:
            raise WeChatFault(48001)
        if not DRAFT_FUNC_IDS & set(authorizer.func_ids):
            raise WeChatFault(61007)
        if authorizer.account_status in LIMITED_STATUSES:
            raise WeChatFault(50002)
        # Every authorizer token is the component's, so every draft/count here is a third party's call: the daily
        # quota first (45009), then the component_rate_limit window (45011).
        book = authorizer.quota
        if self._quota_today(book).get(DRAFT_COUNT_PATH, 0) < self._limit(book, DRAFT_COUNT_PATH):
            self._within_component_rate(book, DRAFT_COUNT_PATH)
        self._spend(authorizer.quota, DRAFT_COUNT_PATH)
        # Success carries no errcode, as on real WeChat (docs/wechat/errors.md).
        return {"total_count": authorizer.draft_count}

    def custom_send(self, access_token: str | None, body: dict[str, Any]) -> dict[str, Any]:
        """message/custom/send: a customer-service message to a fan who wrote recently
        (docs/wechat/message-url.md#full-release-test)."""
        authorizer, token = self.authorizer_and_token(access_token)
        if not authorizer.authorized:
            raise WeChatFault(61003)
        if authorizer.kind not in OFFICIAL_ACCOUNT_KINDS and authorizer.kind != "mini_program":
            raise WeChatFault(48001)
        # The permission set was not granted to the component (docs/wechat/permissions.md: 61007, not the account's own
        # 48001).
        if MESSAGE_FUNC_ID not in authorizer.func_ids:
            raise WeChatFault(61007)
        if authorizer.account_status in LIMITED_STATUSES:
            raise WeChatFault(50002)
        touser, msgtype = body.get("touser"), body.get("msgtype")
        if not isinstance(touser, str) or not isinstance(msgtype, str):
            raise WeChatFault(47001)
        if msgtype not in CUSTOM_MSG_TYPES:
            raise WeChatFault(40008)
        payload = body.get(msgtype)
        if not isinstance(payload, dict):
            raise WeChatFault(47001)
        if msgtype == "text" and not isinstance(payload.get("content"), str):
            raise WeChatFault(47001)
        fan = authorizer.fans.get(touser)
        if fan is None:
            raise WeChatFault(40003)
        now = self.clock()
        window = self.config.custom_send_window
        if window and now - fan.last_message_at >= window:
            raise WeChatFault(45015)
        if fan.sent_since >= CUSTOM_SEND_PER_INTERACTION:
            raise WeChatFault(45047)
        self._spend(authorizer.quota, CUSTOM_SEND_PATH)
        fan.sent_since += 1
        messages = authorizer.custom_messages
        messages.append(
            {
                "id": len(messages) + 1,
                "time": now,
                "touser": touser,
                "msgtype": msgtype,
                "content": payload.get("content") if msgtype == "text" else None,
                "body": body,
                # How the platform got the token it used: the code it exchanged, if any (the release test's
                # QUERY_AUTH_CODE case wants the token obtained from its own code).
                "auth_code": token.auth_code,
            }
        )
        del messages[:-_CUSTOM_MESSAGES_KEPT]
        return {"errcode": 0, "errmsg": "ok"}

    # --- the draft box leaving through publishing and mass sending (docs/wechat/draft-events.md)
    # ---------------------------------------------------------------

    def draft_ids(self, authorizer: Authorizer) -> list[str]:
        """The account's drafts, oldest first, as many as draft_count says: ids are made up for drafts counted but
        not yet named, and the newest are forgotten when the count was lowered."""
        ids = authorizer.draft_media_ids
        while len(ids) < authorizer.draft_count:
            # Not from self.rng: looking at an account must not change the tokens a seeded run replays.
            ids.append(secrets.token_urlsafe(32)[:43])
        del ids[authorizer.draft_count :]
        return ids

    def drafts_add(self, appid: str, count: int) -> Authorizer:
        """Drafts saved in WeChat's own web editor: the box grows and nothing is pushed
        (docs/wechat/draft-events.md#what-sends-no-event)."""
        authorizer = self.get_authorizer(appid)
        _check_int("count", count, minimum=1)
        authorizer.draft_count += count
        self.draft_ids(authorizer)
        self.version += 1
        return authorizer

    def _draft_take(self, authorizer: Authorizer, media_id: str | None) -> str | None:
        """Takes a draft out of the box (the oldest when `media_id` is None); None if there is no such draft."""
        ids = self.draft_ids(authorizer)
        if media_id is None:
            media_id = ids[0] if ids else None
        if media_id is None or media_id not in ids:
            return None
        ids.remove(media_id)
        authorizer.draft_count = len(ids)
        self.version += 1
        return media_id

    def _publishing_account(self, access_token: str | None) -> Authorizer:
        authorizer = self.check_authorizer_token(access_token)
        if not authorizer.authorized:
            raise WeChatFault(61003)
        if authorizer.kind not in OFFICIAL_ACCOUNT_KINDS:
            raise WeChatFault(48001)
        # A platform calls these only with set 7 granted (61007 otherwise, as for any set it lacks).
        if PUBLISH_FUNC_ID not in authorizer.func_ids:
            raise WeChatFault(61007)
        if authorizer.account_status in LIMITED_STATUSES:
            raise WeChatFault(50002)
        return authorizer

    @staticmethod
    def _media_id(body: dict[str, Any]) -> str:
        media_id = body.get("media_id")
        if not isinstance(media_id, str) or not media_id:
            raise WeChatFault(47001)
        return media_id

    def freepublish_submit(self, access_token: str | None, body: dict[str, Any]) -> tuple[dict[str, Any], DraftJob]:
        """freepublish/submit: the draft leaves the box at once; PUBLISHJOBFINISH follows when the job ends."""
        authorizer = self._publishing_account(access_token)
        media_id = self._media_id(body)
        if self._draft_take(authorizer, media_id) is None:
            raise WeChatFault(40007)
        self._spend(authorizer.quota, FREEPUBLISH_SUBMIT_PATH)
        job = self._publish_job(authorizer, media_id)
        return {"errcode": 0, "errmsg": "ok", "publish_id": job.job_id, "msg_data_id": job.msg_data_id}, job

    def mass_sendall(self, access_token: str | None, body: dict[str, Any]) -> tuple[dict[str, Any], DraftJob]:
        """message/mass/sendall of a draft (msgtype mpnews): the draft leaves the box; MASSSENDJOBFINISH follows.
        Other message types send no draft and are not emulated (40008)."""
        authorizer = self._publishing_account(access_token)
        if body.get("msgtype") != "mpnews":
            raise WeChatFault(40008)
        mpnews = body.get("mpnews")
        media_id = self._media_id(mpnews if isinstance(mpnews, dict) else {})
        if self._draft_take(authorizer, media_id) is None:
            raise WeChatFault(40007)
        self._spend(authorizer.quota, MASS_SENDALL_PATH)
        job = self._mass_send_job(authorizer, media_id)
        answer = {"errcode": 0, "errmsg": "send job submission success", "msg_id": int(job.job_id)}
        return answer | {"msg_data_id": int(job.msg_data_id)}, job

    def draft_job(self, appid: str, *, kind: Literal["publish", "mass_send"], media_id: str | None) -> DraftJob:
        """What the two APIs do, without a token (control API): the oldest draft unless `media_id` names one."""
        authorizer = self.get_authorizer(appid)
        if not authorizer.authorized:
            raise ControlError(409, f"{appid} has not authorized the component: WeChat forwards it nothing")
        if media_id is not None and not isinstance(media_id, str):
            raise ControlError(400, "media_id must be a string")
        taken = self._draft_take(authorizer, media_id)
        if taken is None:
            raise ControlError(409, f"{appid} has no draft {media_id}" if media_id else f"{appid} has no drafts")
        if kind == "publish":
            return self._publish_job(authorizer, taken)
        return self._mass_send_job(authorizer, taken)

    def _next_job(self) -> tuple[str, str]:
        self._job_ids += 1
        # Shaped like WeChat's: publish_id / msg_id and msg_data_id are decimal numbers.
        return str(2247500000 + self._job_ids), str(2247600000 + self._job_ids)

    def _article_url(self) -> str:
        return f"http://mp.weixin.qq.com/s/{self._random(22)}"

    def _publish_job(self, authorizer: Authorizer, media_id: str) -> DraftJob:
        job_id, data_id = self._next_job()
        event: dict[str, XmlValue] = {
            "ToUserName": authorizer.user_name,
            "FromUserName": _mphelper_openid(authorizer.appid),
            "CreateTime": int(self.clock()),
            "MsgType": "event",
            "Event": "PUBLISHJOBFINISH",
            # publish_status 0: published (docs/wechat/draft-events.md#publishjobfinish).
            "PublishEventInfo": {
                "publish_id": int(job_id),
                "publish_status": 0,
                "article_id": self._random(43),
                "article_detail": {"count": 1, "item": {"idx": 1, "article_url": self._article_url()}},
            },
        }
        return DraftJob(authorizer.appid, "publish", job_id, data_id, media_id, authorizer.draft_count, event)

    def _mass_send_job(self, authorizer: Authorizer, media_id: str) -> DraftJob:
        job_id, data_id = self._next_job()
        fans = len(authorizer.fans)
        event: dict[str, XmlValue] = {
            "ToUserName": authorizer.user_name,
            "FromUserName": _mphelper_openid(authorizer.appid),
            "CreateTime": int(self.clock()),
            "MsgType": "event",
            "Event": "MASSSENDJOBFINISH",
            "MsgID": int(job_id),
            "Status": "send success",
            "TotalCount": fans,
            "FilterCount": fans,
            "SentCount": fans,
            "ErrorCount": 0,
            "CopyrightCheckResult": {"Count": 0, "ResultList": "", "CheckState": 1},
            "ArticleUrlResult": {
                "Count": 1,
                "ResultList": {"item": {"ArticleIdx": 1, "ArticleUrl": self._article_url()}},
            },
        }
        return DraftJob(authorizer.appid, "mass_send", job_id, data_id, media_id, authorizer.draft_count, event)

    # --- fans' messages and events (docs/wechat/message-url.md)
    # ---------------------------------------------------------------

    def new_openid(self) -> str:
        # Shaped like real openids, e.g. "oyORnuP8q7ou2gfYjqLzSIWZf0rs".
        return "o" + self._random(27)

    def fan_message(
        self,
        appid: str,
        *,
        msg_type: str = "text",
        content: str | None = None,
        event: str | None = None,
        from_openid: str | None = None,
        fields: dict[str, Any] | None = None,
        msg_id: int | None = None,
    ) -> tuple[Authorizer, dict[str, str | int]]:
        """The inner XML fields of a message a fan sends to an authorized account (or an event WeChat raises
        for it), and the fan's interaction recorded so that customer-service messages may answer."""
        authorizer = self.get_authorizer(appid)
        if not authorizer.authorized:
            raise ControlError(409, f"{appid} has not authorized the component: WeChat forwards it nothing")
        if msg_type not in ("text", "image", "event"):
            raise ControlError(400, "msg_type must be text, image or event")
        openid = from_openid or self.new_openid()
        if not isinstance(openid, str) or not openid.isascii() or not openid.isprintable() or len(openid) > 64:
            raise ControlError(400, "from_openid must be a printable ASCII string")
        now = self.clock()
        inner: dict[str, str | int] = {
            "ToUserName": authorizer.user_name,
            "FromUserName": openid,
            "CreateTime": int(now),
            "MsgType": msg_type,
        }
        if msg_type == "text":
            if not isinstance(content, str):
                raise ControlError(400, "a text message needs content")
            inner["Content"] = content
        elif msg_type == "image":
            inner["PicUrl"] = f"http://mmbiz.qpic.cn/sandbox/{self._hex(16)}/0"
            inner["MediaId"] = self._random(64)
        else:
            if not event or not isinstance(event, str):
                raise ControlError(400, "an event message needs event, e.g. LOCATION")
            inner["Event"] = event
            if event == "LOCATION":
                inner.update({"Latitude": "23.137466", "Longitude": "113.352425", "Precision": "119.385040"})
        # Events carry no MsgId: platforms deduplicate them on FromUserName + CreateTime
        # (docs/wechat/message-url.md#the-url-and-appid).
        if msg_type != "event":
            inner["MsgId"] = msg_id if msg_id is not None else self.rng.getrandbits(63)
        for name, value in (fields or {}).items():
            if not isinstance(name, str) or isinstance(value, bool) or not isinstance(value, str | int):
                raise ControlError(400, "fields must map names to strings or integers")
            inner[name] = value
        fan = authorizer.fans.get(openid)
        if fan is None:
            authorizer.fans[openid] = Fan(openid=openid, last_message_at=now)
        else:
            fan.last_message_at, fan.sent_since = now, 0
        self.version += 1
        return authorizer, inner

    def record_message(self, result: dict[str, Any]) -> dict[str, Any]:
        self._message_ids += 1
        result["id"] = self._message_ids
        self.messages.append(result)
        return result

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
        **profile: Any,
    ) -> Authorizer:
        """A new account in the sandbox's WeChat. By default the merchant has not authorized the component yet
        (consent does that); `authorized=True` ones come with a refresh token and an access token issued.
        `profile` takes the other fields update_authorizer changes (alias, head_img, service_type, ...)."""
        if appid is None:
            appid = self.new_appid()
        check_appid(appid)
        if appid in self.authorizers:
            raise ControlError(409, f"sandbox account {appid} already exists")
        extra = self._validate_changes(profile, _CREATE_ONLY_PROFILE)
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
            head_img=f"http://wx.qlogo.cn/mmopen/sandbox/{appid}/0",
            qrcode_url=f"http://mmbiz.qpic.cn/mmbiz_jpg/sandbox/{appid}/0",
        )
        for name, value in extra.items():
            setattr(authorizer, name, value)
        self.authorizers[appid] = authorizer
        self.version += 1
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
        omit_refresh_token_every: int = 0,
    ) -> list[Authorizer]:
        """`count` accounts; with omit_refresh_token_every=N every N-th one (the N-th, 2N-th, ...) is listed
        by api_get_authorizer_list without its refresh_token, as field reports describe
        (docs/wechat/endpoints.md#api_get_authorizer_list)."""
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
        every = _check_int("omit_refresh_token_every", omit_refresh_token_every, minimum=0)
        ids = _check_func_ids(func_ids)
        checked_kind = _check_kind(kind)
        return [
            self.create_authorizer(
                nickname=f"{prefix}{index:05d}",
                kind=checked_kind,
                func_ids=ids,
                draft_count=self.rng.randint(low, high),
                authorized=authorized,
                omit_refresh_token_in_list=every > 0 and (index + 1) % every == 0,
            )
            for index in range(count)
        ]

    @staticmethod
    def _validate_changes(changes: dict[str, Any], allowed: frozenset[str]) -> dict[str, Any]:
        unknown = set(changes) - allowed
        if unknown:
            raise ControlError(400, f"cannot change {sorted(unknown)}; changeable: {sorted(allowed)}")
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
            elif name == "service_type":
                validated[name] = None if value is None else _check_int(name, value)
            elif name == "omit_refresh_token_in_list":
                if not isinstance(value, bool):
                    raise ControlError(400, f"{name} must be true or false")
                validated[name] = value
            elif name in ("kind_info", "basic_config"):
                if not (isinstance(value, dict) or (value is None and name == "kind_info")):
                    raise ControlError(400, f"{name} must be an object")
                validated[name] = dict(value) if value is not None else None
            elif name in ("alias", "signature", "head_img", "qrcode_url"):
                # These may be empty: WeChat's alias often is.
                if not isinstance(value, str):
                    raise ControlError(400, f"{name} must be a string")
                validated[name] = value
            else:
                if not isinstance(value, str) or not value:
                    raise ControlError(400, f"{name} must be a non-empty string")
                validated[name] = value
        return validated

    def update_authorizer(self, appid: str, changes: dict[str, Any]) -> Authorizer:
        """Profile, status, kind and granted sets change in WeChat without any push (docs/wechat/lifecycle.md): the
        platform sees
        them only when it reads api_get_authorizer_info again."""
        authorizer = self.get_authorizer(appid)
        # Validate everything before changing anything, so that a bad request changes nothing.
        for name, value in self._validate_changes(changes, PROFILE_FIELDS).items():
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
        block = KIND_BLOCKS.get(authorizer.kind)
        return {
            "appid": authorizer.appid,
            "nickname": authorizer.nickname,
            "kind": authorizer.kind,
            "verify_type": authorizer.verify_type,
            "principal_name": authorizer.principal_name,
            "user_name": authorizer.user_name,
            "alias": authorizer.alias,
            "signature": authorizer.signature,
            "head_img": authorizer.head_img,
            "qrcode_url": authorizer.qrcode_url,
            "service_type": _service_type_id(authorizer),
            "kind_info": self.authorizer_profile(authorizer)[block] if block is not None else None,
            "basic_config": dict(authorizer.basic_config),
            "account_status": authorizer.account_status,
            "draft_count": authorizer.draft_count,
            "draft_media_ids": list(self.draft_ids(authorizer)),
            "func_ids": list(authorizer.func_ids),
            "omit_refresh_token_in_list": authorizer.omit_refresh_token_in_list,
            "authorized": authorizer.authorized,
            "auth_time": authorizer.auth_time,
            "authorizer_refresh_token": authorizer.refresh_token,
            "authorizer_access_token": token.value if token is not None else None,
            "expires_in": max(int(token.expires_at - now), 0) if token is not None else None,
            "test_account": authorizer.test_account,
            "fans": len(authorizer.fans),
            **self.quota_view(authorizer.quota),
        }

    def component_view(self) -> dict[str, Any]:
        token = self.component_tokens.get(self.current_component_token) if self.current_component_token else None
        return {
            "component_appid": self.config.component_appid,
            "component_access_token": token.value if token is not None else None,
            "expires_in": max(int(token.expires_at - self.clock()), 0) if token is not None else None,
            "ticket": self.current_ticket,
            **self.quota_view(self.component_quota),
        }

    # --- WeChat's full-release test (docs/wechat/message-url.md#full-release-test)
    # ---------------------------------------------------------------

    def _create_release_test_accounts(self) -> None:
        # No draw from self.rng: a seeded sandbox gives the same tokens as before these accounts existed.
        accounts = [(appid, user_name, "service") for appid, user_name in RELEASE_TEST_OFFICIAL_ACCOUNTS]
        accounts += [
            (appid, "gh_" + hashlib.sha1(appid.encode()).hexdigest()[:12], "mini_program")  # noqa: S324 - an id
            for appid in RELEASE_TEST_MINI_PROGRAMS
        ]
        for index, (appid, user_name, kind) in enumerate(accounts):
            label = "公众号" if kind == "service" else "小程序"
            self.authorizers[appid] = Authorizer(
                appid=appid,
                nickname=f"全网发布测试{label}{index % 5 + 1}",
                kind=cast(Kind, kind),
                verify_type=0,
                principal_name="深圳市腾讯计算机系统有限公司",
                user_name=user_name,
                alias="",
                signature="微信第三方平台全网发布测试账号",
                account_status=1,
                draft_count=0,
                func_ids=list(self.config.platform_func_ids),
                head_img=f"http://wx.qlogo.cn/mmopen/sandbox/{appid}/0",
                qrcode_url=f"http://mmbiz.qpic.cn/mmbiz_jpg/sandbox/{appid}/0",
                test_account=True,
            )

    def release_test_account(self, group: int) -> Authorizer:
        appid, _ = RELEASE_TEST_OFFICIAL_ACCOUNTS[group]
        return self.authorizers[appid]

    def platform_pre_auth_code(self, since: float) -> PreAuthCode | None:
        """The newest pre_auth_code the platform created that is still valid or was created since `since`."""
        now = self.clock()
        codes = [
            c for c in self.pre_auth_codes.values() if c.by_platform and (c.created_at >= since or now < c.expires_at)
        ]
        return max(codes, key=lambda c: c.created_at) if codes else None

    def release_authorize(self, appid: str) -> Consent:
        """WeChat authorizes its own test account to the platform, with the platform's permission sets: an
        `authorized` push that no merchant session started (docs/wechat/message-url.md#full-release-test)."""
        authorizer = self.get_authorizer(appid)
        if authorizer.authorized:
            # Left over from an earlier run that did not finish: drop it without a push.
            self.revoke(appid)
        now = self.clock()
        pac = PreAuthCode(
            value="preauthcode@@@" + self._random(86), expires_at=now + self.config.pre_auth_code_ttl, created_at=now
        )
        self.pre_auth_codes[pac.value] = pac
        return self.consent(
            pre_auth_code=pac.value, authorizer_appid=appid, func_ids=list(self.config.platform_func_ids)
        )

    def record_release_test(self, result: dict[str, Any]) -> dict[str, Any]:
        self.release_tests.append(result)
        return result

    # --- faults ---------------------------------------------------------------------------------------

    def set_faults(self, plan: FaultPlan | None) -> None:
        self.faults = plan

    # --- pushes ---------------------------------------------------------------------------------------

    def record_push(self, attempt: dict[str, Any]) -> dict[str, Any]:
        attempt["id"] = len(self.pushes) + 1
        self.pushes.append(attempt)
        return attempt
