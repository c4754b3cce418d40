"""Typed results of the WeChat component endpoints (protocol §3).

Every token, secret and code is `repr=False`, so logging a result never leaks a credential.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "AccountKind",
    "AuthorizationInfo",
    "AuthorizerInfo",
    "AuthorizerListItem",
    "AuthorizerListPage",
    "AuthorizerToken",
    "ComponentAccessToken",
    "PreAuthCode",
    "Quota",
]


class AccountKind(StrEnum):
    SUBSCRIPTION = "subscription"
    SERVICE = "service"
    MINI_PROGRAM = "mini_program"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class ComponentAccessToken:
    access_token: str = field(repr=False)
    expires_in: int


@dataclass(frozen=True, slots=True)
class PreAuthCode:
    code: str = field(repr=False)
    expires_in: int


@dataclass(frozen=True, slots=True)
class AuthorizationInfo:
    """api_query_auth. The tokens are present only when the account granted API permissions (§3.4)."""

    authorizer_appid: str
    access_token: str | None = field(repr=False)
    expires_in: int | None
    refresh_token: str | None = field(repr=False)
    func_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class AuthorizerToken:
    """api_authorizer_token. A non-empty `refresh_token` replaces the stored one (§3.5)."""

    access_token: str = field(repr=False)
    expires_in: int
    refresh_token: str | None = field(repr=False)


@dataclass(frozen=True, slots=True)
class AuthorizerInfo:
    appid: str
    nick_name: str
    head_img: str
    user_name: str
    alias: str
    principal_name: str
    service_type_id: int | None
    verify_type_id: int | None
    account_status: int | None
    account_kind: AccountKind
    func_ids: tuple[int, ...]
    refresh_token: str | None = field(repr=False)


@dataclass(frozen=True, slots=True)
class AuthorizerListItem:
    appid: str
    refresh_token: str | None = field(repr=False)
    auth_time: int | None


@dataclass(frozen=True, slots=True)
class AuthorizerListPage:
    total_count: int
    items: tuple[AuthorizerListItem, ...]


@dataclass(frozen=True, slots=True)
class Quota:
    daily_limit: int
    used: int
    remain: int
