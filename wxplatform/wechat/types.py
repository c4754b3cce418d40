"""Typed results of the WeChat component endpoints (docs/wechat/endpoints.md), and how each is read from WeChat's JSON.

Every token, secret and code is `repr=False`, so logging a result never leaks a credential. Reading is
lenient (payload shapes vary by account age and kind, docs/wechat/endpoints.md#api_get_authorizer_info): missing
optional data becomes None or empty,
while a success body without what makes it a success raises TransportError("malformed body").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from wxplatform.wechat.http import (
    malformed,
    nested_id,
    optional_int,
    optional_obj,
    optional_str,
    required_int,
    required_obj,
    required_str,
    text,
)

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
    "RateLimit",
    "RidInfo",
]

# Present only for Mini Programs / other account kinds; service_type_info.id alone cannot tell them apart,
# because a normal Mini Program also reports 0 (docs/wechat/endpoints.md#api_get_authorizer_info).
_MINI_PROGRAM_KEY = "MiniProgramInfo"
_OTHER_KIND_KEYS = ("channels_info", "store_info", "talent_info", "supplier_info")
_SERVICE_ACCOUNT_TYPE = 2


class AccountKind(StrEnum):
    SUBSCRIPTION = "subscription"
    SERVICE = "service"
    MINI_PROGRAM = "mini_program"
    OTHER = "other"

    @classmethod
    def of(cls, authorizer_info: dict[str, Any]) -> AccountKind:
        if authorizer_info.get(_MINI_PROGRAM_KEY) is not None:
            return cls.MINI_PROGRAM
        if any(authorizer_info.get(key) is not None for key in _OTHER_KIND_KEYS):
            return cls.OTHER
        if nested_id(authorizer_info, "service_type_info") == _SERVICE_ACCOUNT_TYPE:
            return cls.SERVICE
        return cls.SUBSCRIPTION


@dataclass(frozen=True, slots=True)
class ComponentAccessToken:
    access_token: str = field(repr=False)
    expires_in: int

    @classmethod
    def from_response(cls, data: dict[str, Any]) -> ComponentAccessToken:
        return cls(
            access_token=required_str(data, "component_access_token"), expires_in=required_int(data, "expires_in")
        )


@dataclass(frozen=True, slots=True)
class PreAuthCode:
    code: str = field(repr=False)
    # Documented as both 600 and 1800 s; the returned value is the truth
    # (docs/wechat/endpoints.md#api_create_preauthcode).
    expires_in: int

    @classmethod
    def from_response(cls, data: dict[str, Any]) -> PreAuthCode:
        return cls(code=required_str(data, "pre_auth_code"), expires_in=required_int(data, "expires_in"))


@dataclass(frozen=True, slots=True)
class AuthorizationInfo:
    """api_query_auth. The tokens are present only when the account granted API permissions
    (docs/wechat/endpoints.md#api_query_auth)."""

    authorizer_appid: str
    access_token: str | None = field(repr=False)
    expires_in: int | None
    refresh_token: str | None = field(repr=False)
    func_ids: tuple[int, ...]

    @classmethod
    def from_response(cls, data: dict[str, Any]) -> AuthorizationInfo:
        info = required_obj(data, "authorization_info")
        # Older payloads name the appid `appid` (wechatpy fixture, docs/wechat/endpoints.md#api_get_authorizer_info).
        appid = optional_str(info, "authorizer_appid") or optional_str(info, "appid")
        if appid is None:
            raise malformed()
        return cls(
            authorizer_appid=appid,
            access_token=optional_str(info, "authorizer_access_token"),
            expires_in=optional_int(info, "expires_in"),
            refresh_token=optional_str(info, "authorizer_refresh_token"),
            func_ids=func_ids(info.get("func_info")),
        )


@dataclass(frozen=True, slots=True)
class AuthorizerToken:
    """api_authorizer_token. A non-empty `refresh_token` replaces the stored one
    (docs/wechat/endpoints.md#api_authorizer_token)."""

    access_token: str = field(repr=False)
    expires_in: int
    refresh_token: str | None = field(repr=False)

    @classmethod
    def from_response(cls, data: dict[str, Any]) -> AuthorizerToken:
        return cls(
            access_token=required_str(data, "authorizer_access_token"),
            expires_in=required_int(data, "expires_in"),
            refresh_token=optional_str(data, "authorizer_refresh_token"),
        )


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
    # The authorizer_info object as WeChat sent it (no credential is in it; the refresh token is in
    # authorization_info), kept because unknown fields and enum values occur (docs/wechat/lifecycle.md).
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_response(cls, data: dict[str, Any], *, requested_appid: str) -> AuthorizerInfo:
        """`requested_appid` stands in when the answer does not repeat the appid it describes."""
        info = required_obj(data, "authorizer_info")
        authorization = optional_obj(data, "authorization_info") or {}
        return cls(
            appid=optional_str(authorization, "authorizer_appid")
            or optional_str(authorization, "appid")
            or requested_appid,
            nick_name=text(info, "nick_name"),
            head_img=text(info, "head_img"),
            user_name=text(info, "user_name"),
            alias=text(info, "alias"),
            principal_name=text(info, "principal_name"),
            service_type_id=nested_id(info, "service_type_info"),
            verify_type_id=nested_id(info, "verify_type_info"),
            account_status=optional_int(info, "account_status"),
            account_kind=AccountKind.of(info),
            func_ids=func_ids(authorization.get("func_info")),
            refresh_token=optional_str(authorization, "authorizer_refresh_token"),
            raw=info,
        )


@dataclass(frozen=True, slots=True)
class AuthorizerListItem:
    appid: str
    # Reported missing from some list items in the wild (docs/wechat/endpoints.md#api_get_authorizer_list).
    refresh_token: str | None = field(repr=False)
    auth_time: int | None


@dataclass(frozen=True, slots=True)
class AuthorizerListPage:
    total_count: int
    items: tuple[AuthorizerListItem, ...]

    @classmethod
    def from_response(cls, data: dict[str, Any]) -> AuthorizerListPage:
        entries = data.get("list", [])
        if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
            raise malformed()
        return cls(
            total_count=required_int(data, "total_count"),
            items=tuple(
                AuthorizerListItem(
                    appid=required_str(entry, "authorizer_appid"),
                    refresh_token=optional_str(entry, "refresh_token"),
                    auth_time=optional_int(entry, "auth_time"),
                )
                for entry in entries
            ),
        )


@dataclass(frozen=True, slots=True)
class RateLimit:
    """`call_count` calls per `refresh_second` seconds (docs/wechat/endpoints.md#openapi_quota_get)."""

    call_count: int
    refresh_second: int

    @property
    def enforced(self) -> bool:
        # WeChat reports 0/0 where it sets no limit.
        return self.call_count > 0 and self.refresh_second > 0

    @classmethod
    def from_obj(cls, data: dict[str, Any], key: str) -> RateLimit | None:
        """The block `key` of `data`, or None when absent or unreadable: the legacy page has neither block."""
        block = optional_obj(data, key)
        if block is None:
            return None
        count, seconds = optional_int(block, "call_count"), optional_int(block, "refresh_second")
        if count is None or seconds is None or count < 0 or seconds < 0:
            return None
        return cls(call_count=count, refresh_second=seconds)


@dataclass(frozen=True, slots=True)
class Quota:
    daily_limit: int
    used: int
    remain: int
    # The ordinary rate limit and the one on calls third parties make for the account; optional.
    rate_limit: RateLimit | None = None
    component_rate_limit: RateLimit | None = None

    @classmethod
    def from_response(cls, data: dict[str, Any]) -> Quota:
        quota = required_obj(data, "quota")
        return cls(
            daily_limit=required_int(quota, "daily_limit"),
            used=required_int(quota, "used"),
            remain=required_int(quota, "remain"),
            rate_limit=RateLimit.from_obj(data, "rate_limit"),
            component_rate_limit=RateLimit.from_obj(data, "component_rate_limit"),
        )


@dataclass(frozen=True, slots=True)
class RidInfo:
    """openapi/rid/get: what WeChat received and answered for one failed call
    (docs/wechat/endpoints.md#openapi_rid_get). `request_url` and `request_body` may carry tokens and secrets:
    redact them before showing them to anyone."""

    invoke_time: int | None
    cost_in_ms: int | None
    request_url: str = field(repr=False)
    request_body: str = field(repr=False)
    response_body: str
    client_ip: str

    @classmethod
    def from_response(cls, data: dict[str, Any]) -> RidInfo:
        request = required_obj(data, "request")
        return cls(
            invoke_time=optional_int(request, "invoke_time"),
            cost_in_ms=optional_int(request, "cost_in_ms"),
            request_url=text(request, "request_url"),
            request_body=text(request, "request_body"),
            response_body=text(request, "response_body"),
            client_ip=text(request, "client_ip"),
        )


def func_ids(entries: object) -> tuple[int, ...]:
    """Granted permission sets, in order, from funcscope_category.id; confirm_info is ignored per staff
    (docs/wechat/endpoints.md#api_query_auth)."""
    if not isinstance(entries, list):
        return ()
    ids: dict[int, None] = {}
    for entry in entries:
        func_id = nested_id(entry, "funcscope_category") if isinstance(entry, dict) else None
        if func_id is not None:
            ids[func_id] = None
    return tuple(ids)
