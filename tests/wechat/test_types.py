"""Reading typed results from the payload variants of docs/wechat/endpoints.md, and keeping secrets out of reprs."""

from __future__ import annotations

from typing import Any

import pytest

from wxplatform.wechat.errors import TransportError
from wxplatform.wechat.types import (
    AccountKind,
    AuthorizationInfo,
    AuthorizerInfo,
    AuthorizerListItem,
    AuthorizerListPage,
    AuthorizerToken,
    ComponentAccessToken,
    PreAuthCode,
    Quota,
    RateLimit,
)

# docs/wechat/endpoints.md#api_query_auth, official doc example (also wechatpy's fixture).
QUERY_AUTH = {
    "authorization_info": {
        "authorizer_appid": "wxf8b4f85f3a794e77",
        "authorizer_access_token": "QXjUqNqfYVH0yBE1iI_7vuN_9gQbpjfK7hYwJ3P7xOa88a89-Aga5x1NMYJyB8G2yKt1KCl0nPC3",
        "expires_in": 7200,
        "authorizer_refresh_token": "dTo-YCXPL4llX-u1W1pPpnp8Hgm4wpJtlR6iV0doKdY",
        "func_info": [
            {"funcscope_category": {"id": 1}},
            {
                "funcscope_category": {"id": 11},
                "confirm_info": {"need_confirm": 0, "already_confirm": 0, "can_confirm": 0},
            },
        ],
    }
}

HEAD_IMG = "http://wx.qlogo.cn/mmopen/GPyw0pGicibl5Eda4GmSSbTguhjg9LZjumHmVjybjiaQXnE9XrXEts6ny9Uv4Fk6hOScWRDibq1fI0WOkSaAjaecNTict3n6EjJaC/0"
# docs/wechat/endpoints.md#api_get_authorizer_info, wechatpy's older fixture: top-level qrcode_url and
# authorization_info.appid.
WECHATPY_AUTHORIZER_INFO = {
    "authorizer_info": {
        "nick_name": "微信SDK Demo Special",
        "head_img": HEAD_IMG,
        "service_type_info": {"id": 2},
        "verify_type_info": {"id": 0},
        "user_name": "gh_eb5e3a772040",
        "alias": "paytest01",
    },
    "qrcode_url": "URL",
    "authorization_info": {
        "appid": "wxf8b4f85f3a794e77",
        "func_info": [
            {"funcscope_category": {"id": 1}},
            {"funcscope_category": {"id": 2}},
            {"funcscope_category": {"id": 3}},
        ],
    },
}


def authorizer_info(**fields: Any) -> dict[str, Any]:
    return {
        "authorizer_info": {"nick_name": "n", "service_type_info": {"id": 0}, **fields},
        "authorization_info": {"authorizer_appid": "wx1", "authorizer_refresh_token": "r", "func_info": []},
    }


def test_component_access_token_is_read_and_hidden_from_repr() -> None:
    token = ComponentAccessToken.from_response(
        {"component_access_token": "61W3mEpU66027wgNZ_SECRET", "expires_in": 7200}
    )

    assert token == ComponentAccessToken(access_token="61W3mEpU66027wgNZ_SECRET", expires_in=7200)
    assert repr(token) == "ComponentAccessToken(expires_in=7200)"


def test_pre_auth_code_keeps_the_returned_lifetime() -> None:
    code = PreAuthCode.from_response({"pre_auth_code": "preauthcode@@@abc", "expires_in": 1800})

    assert code == PreAuthCode(code="preauthcode@@@abc", expires_in=1800)
    assert repr(code) == "PreAuthCode(expires_in=1800)"


def test_query_auth_reads_tokens_and_permission_sets_from_the_doc_example() -> None:
    info = AuthorizationInfo.from_response(QUERY_AUTH)

    assert info == AuthorizationInfo(
        authorizer_appid="wxf8b4f85f3a794e77",
        access_token="QXjUqNqfYVH0yBE1iI_7vuN_9gQbpjfK7hYwJ3P7xOa88a89-Aga5x1NMYJyB8G2yKt1KCl0nPC3",
        expires_in=7200,
        refresh_token="dTo-YCXPL4llX-u1W1pPpnp8Hgm4wpJtlR6iV0doKdY",
        func_ids=(1, 11),
    )
    assert repr(info) == "AuthorizationInfo(authorizer_appid='wxf8b4f85f3a794e77', expires_in=7200, func_ids=(1, 11))"


def test_query_auth_without_api_permission_has_no_tokens() -> None:
    info = AuthorizationInfo.from_response({"authorization_info": {"authorizer_appid": "wx1", "func_info": []}})

    assert info == AuthorizationInfo(
        authorizer_appid="wx1", access_token=None, expires_in=None, refresh_token=None, func_ids=()
    )


def test_query_auth_accepts_the_legacy_appid_key() -> None:
    info = AuthorizationInfo.from_response({"authorization_info": {"appid": "wxold"}})

    assert info.authorizer_appid == "wxold"


@pytest.mark.parametrize("data", [{}, {"authorization_info": {}}, {"authorization_info": "wx1"}])
def test_query_auth_without_an_appid_is_malformed(data: dict[str, Any]) -> None:
    with pytest.raises(TransportError, match="malformed body"):
        AuthorizationInfo.from_response(data)


def test_func_info_skips_unreadable_entries_and_repeats() -> None:
    data = {
        "authorization_info": {
            "authorizer_appid": "wx1",
            "func_info": [
                {"funcscope_category": {"id": 11}},
                {"funcscope_category": {"id": "100", "type": 1, "name": "n", "desc": "d"}},
                {"funcscope_category": {}},
                {"confirm_info": {}},
                "garbage",
                {"funcscope_category": {"id": 11}},
            ],
        }
    }

    assert AuthorizationInfo.from_response(data).func_ids == (11, 100)


def test_authorizer_token_keeps_a_rotated_refresh_token() -> None:
    token = AuthorizerToken.from_response(
        {"authorizer_access_token": "at", "expires_in": 7200, "authorizer_refresh_token": "rt2"}
    )

    assert token == AuthorizerToken(access_token="at", expires_in=7200, refresh_token="rt2")
    assert repr(token) == "AuthorizerToken(expires_in=7200)"


@pytest.mark.parametrize("refresh", [{}, {"authorizer_refresh_token": ""}, {"authorizer_refresh_token": None}])
def test_authorizer_token_without_a_refresh_token_reports_none(refresh: dict[str, Any]) -> None:
    token = AuthorizerToken.from_response({"authorizer_access_token": "at", "expires_in": 7200, **refresh})

    assert token.refresh_token is None


@pytest.mark.parametrize(
    "data",
    [
        {"expires_in": 7200},
        {"authorizer_access_token": "", "expires_in": 7200},
        {"authorizer_access_token": "at"},
        {"authorizer_access_token": "at", "expires_in": "soon"},
        {"authorizer_access_token": "at", "expires_in": True},
    ],
)
def test_authorizer_token_without_token_or_lifetime_is_malformed(data: dict[str, Any]) -> None:
    with pytest.raises(TransportError, match="malformed body"):
        AuthorizerToken.from_response(data)


def test_authorizer_info_reads_the_wechatpy_legacy_payload() -> None:
    info = AuthorizerInfo.from_response(WECHATPY_AUTHORIZER_INFO, requested_appid="wxf8b4f85f3a794e77")

    assert info == AuthorizerInfo(
        appid="wxf8b4f85f3a794e77",
        nick_name="微信SDK Demo Special",
        head_img=HEAD_IMG,
        user_name="gh_eb5e3a772040",
        alias="paytest01",
        principal_name="",
        service_type_id=2,
        verify_type_id=0,
        account_status=None,
        account_kind=AccountKind.SERVICE,
        func_ids=(1, 2, 3),
        refresh_token=None,
    )


def test_authorizer_info_repr_hides_the_refresh_token() -> None:
    info = AuthorizerInfo.from_response(authorizer_info(), requested_appid="wx1")

    assert info.refresh_token == "r"
    assert "refresh_token" not in repr(info)


def test_authorizer_info_falls_back_to_the_requested_appid() -> None:
    info = AuthorizerInfo.from_response({"authorizer_info": {}}, requested_appid="wxasked")

    assert info.appid == "wxasked"
    assert (info.nick_name, info.alias, info.service_type_id, info.func_ids) == ("", "", None, ())


def test_authorizer_info_without_authorizer_info_is_malformed() -> None:
    with pytest.raises(TransportError, match="malformed body"):
        AuthorizerInfo.from_response({"authorization_info": {"authorizer_appid": "wx1"}}, requested_appid="wx1")


@pytest.mark.parametrize(
    ("fields", "kind"),
    [
        ({"service_type_info": {"id": 0}}, AccountKind.SUBSCRIPTION),
        ({"service_type_info": {"id": 1}}, AccountKind.SUBSCRIPTION),
        ({"service_type_info": {"id": 2}}, AccountKind.SERVICE),
        ({"service_type_info": {"id": 0}, "MiniProgramInfo": {"network": {}}}, AccountKind.MINI_PROGRAM),
        ({"service_type_info": {"id": 2}, "MiniProgramInfo": {}}, AccountKind.MINI_PROGRAM),
        ({"service_type_info": {"id": 0}, "channels_info": {}}, AccountKind.OTHER),
        ({"service_type_info": {"id": 0}, "store_info": {}}, AccountKind.OTHER),
        ({"service_type_info": {"id": 0}, "talent_info": {}}, AccountKind.OTHER),
        ({"service_type_info": {"id": 2}, "supplier_info": {}}, AccountKind.OTHER),
        ({}, AccountKind.SUBSCRIPTION),
    ],
)
def test_account_kind_is_decided_by_kind_objects_before_service_type(fields: dict[str, Any], kind: AccountKind) -> None:
    data = {"authorizer_info": fields}

    assert AuthorizerInfo.from_response(data, requested_appid="wx1").account_kind is kind


def test_account_status_and_verify_type_are_read() -> None:
    info = AuthorizerInfo.from_response(
        authorizer_info(account_status=14, verify_type_info={"id": -1}, principal_name="某公司"), requested_appid="wx1"
    )

    assert (info.account_status, info.verify_type_id, info.principal_name) == (14, -1, "某公司")


def test_authorizer_list_reads_items_with_or_without_refresh_tokens() -> None:
    page = AuthorizerListPage.from_response(
        {
            "total_count": 33,
            "list": [
                {"authorizer_appid": "wx1", "refresh_token": "r1", "auth_time": 1558000607},
                {"authorizer_appid": "wx2", "auth_time": 1558000608},
            ],
        }
    )

    assert page == AuthorizerListPage(
        total_count=33,
        items=(
            AuthorizerListItem(appid="wx1", refresh_token="r1", auth_time=1558000607),
            AuthorizerListItem(appid="wx2", refresh_token=None, auth_time=1558000608),
        ),
    )
    assert "r1" not in repr(page)


def test_authorizer_list_past_the_end_has_no_items() -> None:
    assert AuthorizerListPage.from_response({"total_count": 2}) == AuthorizerListPage(total_count=2, items=())


@pytest.mark.parametrize(
    "data",
    [
        {"list": []},
        {"total_count": 1, "list": {"authorizer_appid": "wx1"}},
        {"total_count": 1, "list": ["wx1"]},
        {"total_count": 1, "list": [{"refresh_token": "r"}]},
    ],
)
def test_authorizer_list_without_count_or_with_unreadable_items_is_malformed(data: dict[str, Any]) -> None:
    with pytest.raises(TransportError, match="malformed body"):
        AuthorizerListPage.from_response(data)


def test_quota_is_read_from_its_object() -> None:
    data = {"errcode": 0, "errmsg": "ok", "quota": {"daily_limit": 1000, "used": 3, "remain": 997}}

    assert Quota.from_response(data) == Quota(daily_limit=1000, used=3, remain=997)


def test_quota_reads_both_rate_limits_when_wechat_sends_them() -> None:
    data = {
        "errcode": 0,
        "errmsg": "ok",
        "quota": {"daily_limit": 1000, "used": 3, "remain": 997},
        "rate_limit": {"call_count": 100, "refresh_second": 60},
        "component_rate_limit": {"call_count": 50, "refresh_second": 60},
    }

    quota = Quota.from_response(data)

    assert quota.rate_limit == RateLimit(call_count=100, refresh_second=60)
    assert quota.component_rate_limit == RateLimit(call_count=50, refresh_second=60)
    assert quota.component_rate_limit.enforced


@pytest.mark.parametrize(
    "block",
    [None, "x", {"call_count": 5}, {"call_count": -1, "refresh_second": 60}, {"call_count": True, "refresh_second": 1}],
)
def test_an_unreadable_rate_limit_is_unknown_not_an_error(block: Any) -> None:
    data = {"quota": {"daily_limit": 1000, "used": 3, "remain": 997}, "component_rate_limit": block}

    assert Quota.from_response(data).component_rate_limit is None


def test_a_rate_limit_of_zero_is_no_limit() -> None:
    assert not RateLimit(call_count=0, refresh_second=0).enforced


@pytest.mark.parametrize("data", [{"errcode": 0}, {"quota": {"daily_limit": 1000, "used": 3}}])
def test_quota_without_its_numbers_is_malformed(data: dict[str, Any]) -> None:
    with pytest.raises(TransportError, match="malformed body"):
        Quota.from_response(data)
