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
    # Protocol §3.3 leaves open whether an authorization code can be exchanged twice; the platform must
    # cope with both, so both are available.
    auth_code_single_use: bool = False
    # Seeds token generation and fault injection so that a run can be replayed.
    seed: int | None = None
    # Seconds to wait for the event URL to answer a push.
    push_timeout: float = 5.0
    # Larger request bodies are refused with errcode 45002 before they are parsed.
    max_body_bytes: int = 1024 * 1024
    # Per-endpoint latency overrides {path: seconds}; usually set at run time through the control API.
    endpoint_latency: dict[str, float] = field(default_factory=dict)

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
    }
)
