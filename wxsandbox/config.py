"""Settings of one sandbox instance.

The component credentials default to the values that wxplatform/settings.py uses in DEBUG and that
tests/_env.py sets for the test suite, so that a platform started with no configuration can talk to a
sandbox started with no configuration, and the pushes it receives verify.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class SandboxConfig:
    component_appid: str = "wx0000sandbox0comp"
    component_appsecret: str = "sandbox-component-secret"
    component_token: str = "sandboxtoken"  # noqa: S105 - a public sandbox default, not a secret
    component_aes_key: str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
    # The platform's authorization event receiving URL (授权事件接收URL); None = pushes are recorded, not sent.
    event_url: str | None = None
    # WeChat pushes a component_verify_ticket every 10 minutes. 0 = only on demand (api_start_push_ticket or
    # the control API), which is what tests want.
    ticket_interval: float = 600.0
    component_token_ttl: int = 7200
    authorizer_token_ttl: int = 7200
    pre_auth_code_ttl: int = 600
    auth_code_ttl: int = 600
    # A superseded access token keeps working this long after a refresh, never beyond its own expiry.
    token_grace: int = 300
    ticket_ttl: int = 43200
    # Seconds added to every WeChat endpoint's answer; per-endpoint overrides come from the control API.
    latency: float = 0.0
    # draft/count calls per account per day; the day starts at midnight in quota_timezone.
    daily_quota: int = 1000
    quota_timezone: str = "Asia/Shanghai"
    # Whether an authorization code can be exchanged twice is open
    # (docs/wechat/open-questions.md#authorization-code-reuse); the platform must cope with both, so both are here.
    auth_code_single_use: bool = False
    # Seeds token generation and fault injection so that a run can be replayed.
    seed: int | None = None
    # Seconds to wait for the event URL to answer a push.
    push_timeout: float = 5.0
    # Larger request bodies are refused with errcode 45002 before they are parsed.
    max_body_bytes: int = 1024 * 1024
    # Per-endpoint latency overrides {path: seconds}; usually set at run time through the control API.
    endpoint_latency: dict[str, float] = field(default_factory=dict)
    # The platform's message-and-event receiving URL (消息与事件接收URL, docs/wechat/message-url.md#the-url-and-appid);
    # it must contain the literal $APPID$, which is replaced by the authorizer's appid. None = message pushes are
    # recorded, not sent.
    message_url: str | None = None
    # The permission sets the platform selected in its open-platform configuration. Accounts may grant any
    # subset; the release test runs its message cases only when set 1 (消息管理) is among them
    # (docs/wechat/message-url.md#full-release-test).
    platform_func_ids: list[int] = field(default_factory=lambda: [1, 11])
    # A message push that gets no answer within message_timeout seconds is sent again, message_tries times
    # in all, with the same MsgId (docs/wechat/message-url.md#the-url-and-appid).
    message_timeout: float = 5.0
    message_tries: int = 3
    # Real seconds between a publish or mass send of a draft and WeChat's PUBLISHJOBFINISH / MASSSENDJOBFINISH
    # push (docs/wechat/draft-events.md); on WeChat a job takes seconds to minutes (review, originality checks).
    draft_event_delay: float = 1.0
    # Real seconds the release test waits for the platform's own calls (api_query_auth, message/custom/send).
    release_test_window: float = 10.0
    # Error answers remembered for openapi/rid/get (the oldest are dropped past this many), for rid_retention
    # seconds of sandbox clock (WeChat keeps them 7 days, docs/wechat/errors.md#rid).
    rid_log_size: int = 10000
    rid_retention: int = 7 * 86400
    # clear_quota and clear_quota/v2 together, per account and calendar month in quota_timezone (docs/wechat/quota.md).
    monthly_clear_limit: int = 10
    # message/custom/send reaches a fan only this long after the fan's last message (48 h on WeChat);
    # 0 lifts the limit.
    custom_send_window: int = 48 * 3600
    # Where the sandbox keeps its WeChat state across restarts; None = in memory only (tests).
    state_file: str | None = None
    # Changes are written at most this often (and once more on shutdown).
    state_save_interval: float = 2.0
    # Further third-party platforms served on the same base URL, as WeChat serves every platform
    # (docs/wechat/platforms.md#several-platforms). The fields above are the first, default one; each entry
    # here: {"appid", "appsecret", "token", "aes_key"} and optionally "event_url", "message_url",
    # "platform_func_ids". Every other setting (lifetimes, quotas, ticket_interval, ...) is the default's.
    components: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Fields that the control API may change on a running sandbox (PATCH /sandbox/config).
MUTABLE_FIELDS = frozenset(
    {
        "event_url",
        "ticket_interval",
        "component_token_ttl",
        "authorizer_token_ttl",
        "pre_auth_code_ttl",
        "auth_code_ttl",
        "token_grace",
        "ticket_ttl",
        "latency",
        "daily_quota",
        "quota_timezone",
        "auth_code_single_use",
        "push_timeout",
        "message_url",
        "platform_func_ids",
        "message_timeout",
        "message_tries",
        "release_test_window",
        "rid_log_size",
        "rid_retention",
        "monthly_clear_limit",
        "custom_send_window",
        "draft_event_delay",
    }
)
