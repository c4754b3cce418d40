"""WeChatClient against the sandbox: the whole authorization flow, and every kind of failure it reports."""

from __future__ import annotations

import re
import traceback
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.sandbox import Sandbox
from tests.wechat.helpers import closed_port_url, wait_until_answered
from wxplatform.wechat.client import WeChatClient
from wxplatform.wechat.errors import (
    AccountStateError,
    AuthorizationCodeError,
    ClearQuotaLimitError,
    ConfigurationError,
    QuotaError,
    RefreshTokenError,
    RetryableError,
    TicketError,
    TokenError,
    TransportError,
    WeChatError,
)
from wxplatform.wechat.types import AccountKind, AuthorizerListItem, Quota, RateLimit
from wxsandbox.state import DRAFT_COUNT_PATH

NO_LIMIT = RateLimit(call_count=0, refresh_second=0)

RID = r" rid: [0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}"


def make_client(base_url: str, sandbox: Sandbox, **overrides: Any) -> WeChatClient:
    options: dict[str, Any] = {
        "base_url": base_url,
        "component_appid": sandbox.config.component_appid,
        "component_appsecret": sandbox.config.component_appsecret,
        "connect_timeout": 1.0,
        "read_timeout": 5.0,
    }
    return WeChatClient(**{**options, **overrides})


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[WeChatClient]:
    with make_client(sandbox.base_url, sandbox) as wechat:
        yield wechat


@pytest.fixture
def component_token(client: WeChatClient, sandbox: Sandbox) -> str:
    ticket = sandbox.control.push_ticket()["ticket"]
    return client.api_component_token(component_verify_ticket=ticket).access_token


@pytest.fixture
def account(sandbox: Sandbox) -> dict[str, Any]:
    """An authorized service account with permission set 11 and 7 drafts, tokens issued."""
    return sandbox.control.create_authorizer(kind="service", func_ids=[1, 11], draft_count=7, authorized=True)


def no_secret_in(exc: BaseException, *secrets: str) -> bool:
    text = "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)
    return not any(secret in text for secret in secrets)


# --- the authorization flow, end to end --------------------------------------------------------------


def test_whole_flow_from_ticket_to_draft_count(client: WeChatClient, sandbox: Sandbox) -> None:
    control = sandbox.control
    ticket = control.push_ticket()["ticket"]

    component = client.api_component_token(component_verify_ticket=ticket)
    assert component.expires_in == 7200

    pre_auth = client.api_create_preauthcode(component_access_token=component.access_token)
    assert pre_auth.code.startswith("preauthcode@@@")
    assert pre_auth.expires_in == 600

    appid = control.create_authorizer(
        kind="service", func_ids=[1, 11], draft_count=15, nickname="测试服务号", authorized=False
    )["appid"]
    consent = control.consent(pre_auth.code, appid, push=False)

    auth = client.api_query_auth(component_access_token=component.access_token, authorization_code=consent["auth_code"])
    assert auth.authorizer_appid == appid
    assert auth.expires_in == 7200
    assert auth.func_ids == (1, 11)
    assert auth.access_token is not None
    assert auth.refresh_token is not None

    info = client.api_get_authorizer_info(component_access_token=component.access_token, authorizer_appid=appid)
    assert info.appid == appid
    assert info.nick_name == "测试服务号"
    assert re.fullmatch(r"gh_[0-9a-f]{12}", info.user_name)
    assert info.account_kind is AccountKind.SERVICE
    assert (info.service_type_id, info.verify_type_id, info.account_status) == (2, 0, 1)
    assert info.func_ids == (1, 11)
    assert info.refresh_token == auth.refresh_token

    refreshed = client.api_authorizer_token(
        component_access_token=component.access_token,
        authorizer_appid=appid,
        authorizer_refresh_token=auth.refresh_token,
    )
    assert refreshed.access_token != auth.access_token
    assert refreshed.expires_in == 7200
    assert refreshed.refresh_token == auth.refresh_token

    assert client.draft_count(access_token=refreshed.access_token) == 15

    quota = client.openapi_quota_get(access_token=refreshed.access_token, cgi_path=DRAFT_COUNT_PATH)
    # No rate limit set: WeChat reports 0/0 (docs/wechat/endpoints.md#openapi_quota_get).
    assert quota == Quota(daily_limit=1000, used=1, remain=999, rate_limit=NO_LIMIT, component_rate_limit=NO_LIMIT)

    page = client.api_get_authorizer_list(component_access_token=component.access_token)
    assert page.total_count == 1
    assert page.items == (
        AuthorizerListItem(appid=appid, refresh_token=auth.refresh_token, auth_time=page.items[0].auth_time),
    )
    assert page.items[0].auth_time is not None


def test_start_push_ticket_makes_wechat_push_a_ticket(client: WeChatClient, sandbox: Sandbox) -> None:
    assert client.api_start_push_ticket() is None

    pushes = sandbox.control.wait_for_pushes(1)
    assert [push["info_type"] for push in pushes] == ["component_verify_ticket"]
    assert pushes[0]["fields"]["ComponentVerifyTicket"] == sandbox.control.ticket()


@pytest.mark.parametrize(
    ("kind", "expected", "service_type_id"),
    [
        ("subscription", AccountKind.SUBSCRIPTION, 0),
        ("service", AccountKind.SERVICE, 2),
        ("mini_program", AccountKind.MINI_PROGRAM, 0),
    ],
)
def test_authorizer_info_tells_account_kinds_apart(
    client: WeChatClient, sandbox: Sandbox, component_token: str, kind: str, expected: AccountKind, service_type_id: int
) -> None:
    appid = sandbox.control.create_authorizer(kind=kind, authorized=True)["appid"]

    info = client.api_get_authorizer_info(component_access_token=component_token, authorizer_appid=appid)

    assert info.account_kind is expected
    assert info.service_type_id == service_type_id


def test_authorizer_list_pages_and_tolerates_a_missing_refresh_token(
    client: WeChatClient, sandbox: Sandbox, component_token: str
) -> None:
    control = sandbox.control
    appids = [control.create_authorizer(authorized=True)["appid"] for _ in range(3)]
    control.update_authorizer(appids[1], omit_refresh_token_in_list=True)

    page = client.api_get_authorizer_list(component_access_token=component_token, offset=1, count=1)

    assert page.total_count == 3
    assert [(item.appid, item.refresh_token) for item in page.items] == [(appids[1], None)]


@pytest.mark.parametrize(("offset", "count"), [(-1, 10), (0, 0), (0, 501)])
def test_authorizer_list_refuses_out_of_range_paging_before_calling(
    client: WeChatClient, sandbox: Sandbox, offset: int, count: int
) -> None:
    with pytest.raises(ValueError, match="count"):
        client.api_get_authorizer_list(component_access_token="unused", offset=offset, count=count)

    assert "/cgi-bin/component/api_get_authorizer_list" not in sandbox.control.counters()["endpoints"]


def test_repr_shows_no_secret(client: WeChatClient, sandbox: Sandbox) -> None:
    assert sandbox.config.component_appsecret not in repr(client)


# --- errcodes, each to its kind, errmsg verbatim -----------------------------------------------------


def test_invalidated_access_token_is_a_token_error_40001_with_errmsg_verbatim(
    client: WeChatClient, sandbox: Sandbox, account: dict[str, Any]
) -> None:
    sandbox.control.invalidate_authorizer_tokens(account["appid"])

    with pytest.raises(TokenError) as caught:
        client.draft_count(access_token=account["authorizer_access_token"])

    assert caught.value.errcode == 40001
    assert re.fullmatch("invalid credential, access_token is invalid or not latest" + RID, caught.value.errmsg)


def test_expired_access_token_is_a_token_error_42001(
    client: WeChatClient, sandbox: Sandbox, account: dict[str, Any]
) -> None:
    sandbox.control.expire_authorizer_tokens(account["appid"])

    with pytest.raises(TokenError) as caught:
        client.draft_count(access_token=account["authorizer_access_token"])

    assert caught.value.errcode == 42001
    assert re.fullmatch("access_token expired" + RID, caught.value.errmsg)


def test_expired_component_token_is_a_token_error_42001(
    client: WeChatClient, sandbox: Sandbox, component_token: str
) -> None:
    sandbox.control.expire_component_token()

    with pytest.raises(TokenError) as caught:
        client.api_create_preauthcode(component_access_token=component_token)

    assert caught.value.errcode == 42001


def test_set_11_not_granted_to_the_platform_is_an_account_state_error_61007(
    client: WeChatClient, sandbox: Sandbox
) -> None:
    account = sandbox.control.create_authorizer(func_ids=[1, 2], authorized=True)

    with pytest.raises(AccountStateError) as caught:
        client.draft_count(access_token=account["authorizer_access_token"])

    assert caught.value.errcode == 61007
    assert re.fullmatch("api is unauthorized to component" + RID, caught.value.errmsg)


def test_an_account_that_may_not_use_the_api_is_an_account_state_error_48001(
    client: WeChatClient, sandbox: Sandbox
) -> None:
    account = sandbox.control.create_authorizer(kind="mini_program", func_ids=[1, 11], authorized=True)

    with pytest.raises(AccountStateError) as caught:
        client.draft_count(access_token=account["authorizer_access_token"])

    assert caught.value.errcode == 48001
    assert re.fullmatch("api unauthorized" + RID, caught.value.errmsg)


def test_revoked_account_is_an_account_state_error_61003(
    client: WeChatClient, sandbox: Sandbox, component_token: str, account: dict[str, Any]
) -> None:
    sandbox.control.revoke(account["appid"])

    with pytest.raises(AccountStateError) as caught:
        client.api_authorizer_token(
            component_access_token=component_token,
            authorizer_appid=account["appid"],
            authorizer_refresh_token=account["authorizer_refresh_token"],
        )

    assert caught.value.errcode == 61003


def test_spent_daily_quota_is_a_quota_error_45009(
    client: WeChatClient, sandbox: Sandbox, account: dict[str, Any]
) -> None:
    sandbox.control.set_quota_used(account["appid"], 1000)

    with pytest.raises(QuotaError) as caught:
        client.draft_count(access_token=account["authorizer_access_token"])

    assert caught.value.errcode == 45009
    assert re.fullmatch("reach max api daily quota limit" + RID, caught.value.errmsg)


def test_wrong_component_secret_is_a_configuration_error_40125(sandbox: Sandbox) -> None:
    ticket = sandbox.control.push_ticket()["ticket"]

    with make_client(sandbox.base_url, sandbox, component_appsecret="not-the-secret") as wrong:
        with pytest.raises(ConfigurationError) as caught:
            wrong.api_component_token(component_verify_ticket=ticket)

    assert caught.value.errcode == 40125


def test_start_push_ticket_sends_the_secret_as_component_secret(sandbox: Sandbox) -> None:
    with make_client(sandbox.base_url, sandbox, component_appsecret="not-the-secret") as wrong:
        with pytest.raises(ConfigurationError) as caught:
            wrong.api_start_push_ticket()

    assert caught.value.errcode == 40125


def test_unknown_component_appid_is_a_configuration_error_61011(sandbox: Sandbox) -> None:
    ticket = sandbox.control.push_ticket()["ticket"]

    with make_client(sandbox.base_url, sandbox, component_appid="wx0000notacomponent") as wrong:
        with pytest.raises(ConfigurationError) as caught:
            wrong.api_component_token(component_verify_ticket=ticket)

    assert caught.value.errcode == 61011


def test_unknown_ticket_is_a_ticket_error_61006(client: WeChatClient, sandbox: Sandbox) -> None:
    sandbox.control.push_ticket()

    with pytest.raises(TicketError) as caught:
        client.api_component_token(component_verify_ticket="ticket@@@never-issued")

    assert caught.value.errcode == 61006


def test_stale_ticket_is_a_ticket_error_61005(client: WeChatClient, sandbox: Sandbox) -> None:
    ticket = sandbox.control.push_ticket()["ticket"]
    sandbox.control.update_config(ticket_ttl=0)

    with pytest.raises(TicketError) as caught:
        client.api_component_token(component_verify_ticket=ticket)

    assert caught.value.errcode == 61005


def test_wrong_refresh_token_is_a_refresh_token_error_61023(
    client: WeChatClient, component_token: str, account: dict[str, Any]
) -> None:
    with pytest.raises(RefreshTokenError) as caught:
        client.api_authorizer_token(
            component_access_token=component_token,
            authorizer_appid=account["appid"],
            authorizer_refresh_token="refreshtoken@@@stale",
        )

    assert caught.value.errcode == 61023
    assert re.fullmatch("refresh_token is invalid" + RID, caught.value.errmsg)


def test_unknown_authorization_code_is_an_authorization_code_error_61009(
    client: WeChatClient, component_token: str
) -> None:
    with pytest.raises(AuthorizationCodeError) as caught:
        client.api_query_auth(component_access_token=component_token, authorization_code="queryauthcode@@@bogus")

    assert caught.value.errcode == 61009


def test_expired_authorization_code_is_an_authorization_code_error_61010(
    client: WeChatClient, sandbox: Sandbox, component_token: str, account: dict[str, Any]
) -> None:
    sandbox.control.update_config(auth_code_ttl=0)
    code = sandbox.control.issue_auth_code(account["appid"])["auth_code"]

    with pytest.raises(AuthorizationCodeError) as caught:
        client.api_query_auth(component_access_token=component_token, authorization_code=code)

    assert caught.value.errcode == 61010


@pytest.mark.parametrize(
    ("errcode", "errmsg"),
    [(-1, "system error"), (45011, "api minute-quota reach limit, must slower, retry next minute")],
)
def test_busy_wechat_is_a_retryable_error(
    client: WeChatClient, sandbox: Sandbox, account: dict[str, Any], errcode: int, errmsg: str
) -> None:
    sandbox.control.set_faults(rate=1.0, kinds=[errcode], endpoints=[DRAFT_COUNT_PATH])

    with pytest.raises(RetryableError) as caught:
        client.draft_count(access_token=account["authorizer_access_token"])

    assert type(caught.value) is RetryableError
    assert caught.value.errcode == errcode
    assert caught.value.retryable is True
    assert re.fullmatch(re.escape(errmsg) + RID, caught.value.errmsg)


# --- transport failures ------------------------------------------------------------------------------


def test_read_timeout_is_a_transport_error_and_the_request_is_not_resent(
    sandbox: Sandbox, account: dict[str, Any]
) -> None:
    token = account["authorizer_access_token"]
    sandbox.control.set_faults(rate=1.0, kinds=["timeout"], endpoints=[DRAFT_COUNT_PATH], timeout_seconds=1.0)

    with make_client(sandbox.base_url, sandbox, read_timeout=0.3) as impatient:
        with pytest.raises(TransportError) as caught:
            impatient.draft_count(access_token=token)

    assert caught.value.errmsg == "read timeout"
    assert caught.value.errcode is None
    assert no_secret_in(caught.value, token)
    assert sandbox.control.counters()["faults_injected"] == {"timeout": 1}
    wait_until_answered(sandbox.control, DRAFT_COUNT_PATH, 1)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_http_5xx_is_a_transport_error_with_its_status_and_is_not_resent(
    client: WeChatClient, sandbox: Sandbox, account: dict[str, Any], status: int
) -> None:
    token = account["authorizer_access_token"]
    sandbox.control.set_faults(rate=1.0, kinds=[f"http_{status}"], endpoints=[DRAFT_COUNT_PATH])

    with pytest.raises(TransportError) as caught:
        client.draft_count(access_token=token)

    assert caught.value.status == status
    assert caught.value.errmsg == f"HTTP {status}"
    assert no_secret_in(caught.value, token)
    assert sandbox.control.counters()["faults_injected"] == {f"http_{status}": 1}


def test_body_cut_short_is_a_malformed_transport_error(
    client: WeChatClient, sandbox: Sandbox, account: dict[str, Any]
) -> None:
    sandbox.control.set_faults(rate=1.0, kinds=["malformed"], endpoints=[DRAFT_COUNT_PATH])

    with pytest.raises(TransportError) as caught:
        client.draft_count(access_token=account["authorizer_access_token"])

    assert caught.value.errmsg == "malformed body"
    assert caught.value.status == 200


def test_connection_refused_is_a_transport_error_without_the_token(sandbox: Sandbox) -> None:
    token = "AUTHORIZER-TOKEN-THAT-MUST-NOT-LEAK"

    with make_client(closed_port_url(), sandbox) as unreachable:
        with pytest.raises(TransportError) as caught:
            unreachable.draft_count(access_token=token)

    assert caught.value.errmsg == "connection error: Connection refused"
    assert caught.value.status is None
    assert no_secret_in(caught.value, token)


def test_component_call_to_a_closed_port_does_not_leak_the_component_token(sandbox: Sandbox) -> None:
    token = "COMPONENT-TOKEN-THAT-MUST-NOT-LEAK"

    with make_client(closed_port_url(), sandbox) as unreachable:
        with pytest.raises(WeChatError) as caught:
            unreachable.api_create_preauthcode(component_access_token=token)

    assert type(caught.value) is TransportError
    assert no_secret_in(caught.value, token, sandbox.config.component_appsecret)


# --- quota, clear_quota and rids (docs/wechat/endpoints.md#openapi_rid_get) ------------------------------


def test_every_errcode_error_carries_the_rid_of_its_errmsg(
    client: WeChatClient, sandbox: Sandbox, account: dict[str, Any]
) -> None:
    sandbox.control.set_quota_used(account["appid"], 1000)

    with pytest.raises(QuotaError) as caught:
        client.draft_count(access_token=account["authorizer_access_token"])

    assert caught.value.rid and caught.value.errmsg.endswith(f" rid: {caught.value.rid}")
    assert sandbox.control.rid(caught.value.rid)["owner"] == account["appid"]


def test_rid_get_explains_a_failed_call_to_the_same_account(
    client: WeChatClient, sandbox: Sandbox, account: dict[str, Any]
) -> None:
    sandbox.control.set_quota_used(account["appid"], 1000)
    with pytest.raises(QuotaError) as caught:
        client.draft_count(access_token=account["authorizer_access_token"])

    info = client.openapi_rid_get(access_token=account["authorizer_access_token"], rid=caught.value.rid)

    assert info.client_ip == "127.0.0.1"
    assert "45009" in info.response_body
    assert "draft/count" in info.request_url or info.request_url.startswith("access_token=")
    assert info.invoke_time is not None
    assert account["authorizer_access_token"] not in repr(info)


def test_rid_get_refuses_another_accounts_rid_with_76003(
    client: WeChatClient, sandbox: Sandbox, account: dict[str, Any]
) -> None:
    other = sandbox.control.create_authorizer(kind="service", func_ids=[1, 11], authorized=True)
    sandbox.control.set_quota_used(account["appid"], 1000)
    with pytest.raises(QuotaError) as caught:
        client.draft_count(access_token=account["authorizer_access_token"])

    with pytest.raises(WeChatError) as refused:
        client.openapi_rid_get(access_token=other["authorizer_access_token"], rid=caught.value.rid)

    assert refused.value.errcode == 76003


def test_clear_quota_restarts_the_count_and_48006_ends_the_month(
    client: WeChatClient, sandbox: Sandbox, account: dict[str, Any]
) -> None:
    token = account["authorizer_access_token"]
    sandbox.control.set_quota(account["appid"], used=1000, clears=9)

    client.clear_quota(access_token=token, appid=account["appid"])

    assert client.openapi_quota_get(access_token=token, cgi_path=DRAFT_COUNT_PATH) == Quota(
        1000, 0, 1000, NO_LIMIT, NO_LIMIT
    )
    with pytest.raises(ClearQuotaLimitError) as caught:
        client.clear_quota(access_token=token, appid=account["appid"])
    assert caught.value.errcode == 48006


def test_authorizer_info_keeps_the_raw_profile_without_credentials(
    client: WeChatClient, component_token: str, sandbox: Sandbox, account: dict[str, Any]
) -> None:
    sandbox.control.update_authorizer(account["appid"], account_status=16)

    info = client.api_get_authorizer_info(component_access_token=component_token, authorizer_appid=account["appid"])

    assert info.account_status == 16
    assert info.raw["account_status"] == 16
    assert account["authorizer_refresh_token"] not in str(info.raw)
