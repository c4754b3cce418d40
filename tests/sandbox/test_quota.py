"""openapi/quota/get per account, and clearing quotas: clear_quota and component/clear_quota/v2 (docs/wechat/quota.md,
docs/wechat/errors.md#rid)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from tests.fixtures.sandbox import Sandbox
from tests.sandbox.conftest import COMPONENT_APPID, COMPONENT_SECRET, WeChat, errcode
from wxsandbox.config import SandboxConfig
from wxsandbox.state import ManualClock, SandboxState, WeChatFault

QUOTA_GET = "/cgi-bin/openapi/quota/get"
CLEAR_QUOTA = "/cgi-bin/clear_quota"
CLEAR_V2 = "/cgi-bin/component/clear_quota/v2"
DRAFT_COUNT = "/cgi-bin/draft/count"
AUTHORIZER_TOKEN = "/cgi-bin/component/api_authorizer_token"


def quota_get(wechat: WeChat, token: str | None, cgi_path: str = DRAFT_COUNT) -> dict[str, Any]:
    query = {"access_token": token} if token is not None else {}
    data: dict[str, Any] = wechat.post(QUOTA_GET, {"cgi_path": cgi_path}, **query).json()
    return data


def clear(wechat: WeChat, token: str, appid: str | None) -> dict[str, Any]:
    body = {"appid": appid} if appid is not None else {}
    data: dict[str, Any] = wechat.post(CLEAR_QUOTA, body, access_token=token).json()
    return data


def clear_v2(wechat: WeChat, **body: str) -> dict[str, Any]:
    data: dict[str, Any] = wechat.post(CLEAR_V2, body).json()
    return data


def refresh(wechat: WeChat, component_token: str, account: dict[str, Any]) -> dict[str, Any]:
    body = {"authorizer_appid": account["appid"], "authorizer_refresh_token": account["authorizer_refresh_token"]}
    return wechat.component("api_authorizer_token", body, component_token)


# --- quota/get -----------------------------------------------------------------------------------------


def test_each_account_has_its_own_daily_limit(sandbox: Sandbox, wechat: WeChat) -> None:
    small = sandbox.control.create_authorizer(authorized=True, draft_count=4)
    usual = sandbox.control.create_authorizer(authorized=True)
    view = sandbox.control.set_quota(small["appid"], daily_limit=2)
    assert view["daily_limits"] == {DRAFT_COUNT: 2}
    token = small["authorizer_access_token"]

    answers = [wechat.draft_count(token) for _ in range(3)]

    assert answers[:2] == [{"total_count": 4}] * 2
    assert errcode(answers[2]) == 45009
    assert quota_get(wechat, token)["quota"] == {"daily_limit": 2, "used": 2, "remain": 0}
    assert quota_get(wechat, usual["authorizer_access_token"])["quota"] == {
        "daily_limit": 1000,
        "used": 0,
        "remain": 1000,
    }


def test_quota_get_reports_the_rate_limits_set_for_the_account(sandbox: Sandbox, wechat: WeChat) -> None:
    account = sandbox.control.create_authorizer(authorized=True)
    token = account["authorizer_access_token"]
    before = quota_get(wechat, token)
    sandbox.control.set_quota(
        account["appid"],
        rate_limit={"call_count": 100, "refresh_second": 60},
        component_rate_limit={"call_count": 50, "refresh_second": 60},
    )
    after = quota_get(wechat, token)
    assert (before["rate_limit"], before["component_rate_limit"]) == ({"call_count": 0, "refresh_second": 0},) * 2
    assert after == {
        "errcode": 0,
        "errmsg": "ok",
        "quota": {"daily_limit": 1000, "used": 0, "remain": 1000},
        "rate_limit": {"call_count": 100, "refresh_second": 60},
        "component_rate_limit": {"call_count": 50, "refresh_second": 60},
    }


def test_the_component_token_reads_the_components_own_quota(sandbox: Sandbox, wechat: WeChat) -> None:
    component_token = wechat.component_token()
    account = sandbox.control.create_authorizer(authorized=True)
    refresh(wechat, component_token, account)
    refresh(wechat, component_token, account)
    assert quota_get(wechat, component_token, AUTHORIZER_TOKEN)["quota"] == {
        "daily_limit": 1_000_000,
        "used": 2,
        "remain": 999_998,
    }
    token_quota = quota_get(wechat, component_token, "/cgi-bin/component/api_component_token")["quota"]
    assert token_quota == {"daily_limit": 10000, "used": 1, "remain": 9999}
    assert sandbox.control.component()["quota_used"] == {
        "/cgi-bin/component/api_component_token": 1,
        AUTHORIZER_TOKEN: 2,
    }


def test_a_token_of_the_wrong_account_is_76022(sandbox: Sandbox, wechat: WeChat) -> None:
    component_token = wechat.component_token()
    account = sandbox.control.create_authorizer(authorized=True)
    assert errcode(quota_get(wechat, component_token, DRAFT_COUNT)) == 76022
    assert errcode(quota_get(wechat, account["authorizer_access_token"], AUTHORIZER_TOKEN)) == 76022
    assert errcode(quota_get(wechat, component_token, "/cgi-bin/nothing")) == 76021


def test_quota_get_token_and_body_errors(sandbox: Sandbox, wechat: WeChat) -> None:
    account = sandbox.control.create_authorizer(authorized=True)
    assert errcode(quota_get(wechat, None)) == 41001
    assert errcode(quota_get(wechat, "unknown")) == 40001
    assert errcode(quota_get(wechat, "tökén")) == 40014
    token = account["authorizer_access_token"]
    assert errcode(wechat.post(QUOTA_GET, {}, access_token=token).json()) == 47001
    sandbox.control.expire_authorizer_tokens(account["appid"])
    assert errcode(quota_get(wechat, token)) == 42001


def test_the_components_daily_limit_applies_to_token_refreshes(sandbox: Sandbox, wechat: WeChat) -> None:
    # Field reports: api_authorizer_token itself can answer 45009 (docs/wechat/errors.md#rid).
    component_token = wechat.component_token()
    account = sandbox.control.create_authorizer(authorized=True)
    sandbox.control.set_component_quota(AUTHORIZER_TOKEN, daily_limit=1)
    assert "authorizer_access_token" in refresh(wechat, component_token, account)
    assert errcode(refresh(wechat, component_token, account)) == 45009
    assert sandbox.control.counters()["authorizer_token_calls"] == {account["appid"]: 2}


# --- clear_quota ---------------------------------------------------------------------------------------


def test_clear_quota_with_the_authorizer_token_clears_that_account(sandbox: Sandbox, wechat: WeChat) -> None:
    account = sandbox.control.create_authorizer(authorized=True)
    other = sandbox.control.create_authorizer(authorized=True)
    sandbox.control.set_quota_used(account["appid"], 1000)
    sandbox.control.set_quota_used(other["appid"], 1000)
    token = account["authorizer_access_token"]
    assert errcode(wechat.draft_count(token)) == 45009

    assert clear(wechat, token, account["appid"]) == {"errcode": 0, "errmsg": "ok"}

    assert wechat.draft_count(token) == {"total_count": 0}
    view = sandbox.control.get_authorizer(account["appid"])
    assert view is not None and (view["quota_used"], view["quota_clears"]) == ({DRAFT_COUNT: 1}, 1)
    assert errcode(wechat.draft_count(other["authorizer_access_token"])) == 45009


def test_clear_quota_refuses_another_appid_and_changes_nothing(sandbox: Sandbox, wechat: WeChat) -> None:
    account = sandbox.control.create_authorizer(authorized=True)
    other = sandbox.control.create_authorizer(authorized=True)
    sandbox.control.set_quota_used(account["appid"], 1000)
    token = account["authorizer_access_token"]
    assert errcode(clear(wechat, token, other["appid"])) == 40013
    assert errcode(clear(wechat, token, None)) == 41002
    assert errcode(clear(wechat, "unknown", account["appid"])) == 40001
    view = sandbox.control.get_authorizer(account["appid"])
    assert view is not None and (view["quota_used"], view["quota_clears"]) == ({DRAFT_COUNT: 1000}, 0)


def test_clear_quota_with_the_component_token_clears_the_component(sandbox: Sandbox, wechat: WeChat) -> None:
    component_token = wechat.component_token()
    account = sandbox.control.create_authorizer(authorized=True)
    refresh(wechat, component_token, account)
    assert errcode(clear(wechat, component_token, account["appid"])) == 40013
    assert clear(wechat, component_token, COMPONENT_APPID)["errcode"] == 0
    component = sandbox.control.component()
    assert (component["quota_used"], component["quota_clears"]) == ({}, 1)


def test_clear_quota_v2_uses_the_secret_instead_of_a_token(sandbox: Sandbox, wechat: WeChat) -> None:
    account = sandbox.control.create_authorizer(authorized=True)
    sandbox.control.set_quota_used(account["appid"], 1000)
    sandbox.control.set_component_quota(AUTHORIZER_TOKEN, used=5)

    own = clear_v2(wechat, component_appid=COMPONENT_APPID, appsecret=COMPONENT_SECRET)
    theirs = clear_v2(wechat, component_appid=COMPONENT_APPID, appsecret=COMPONENT_SECRET, appid=account["appid"])

    assert own == theirs == {"errcode": 0, "errmsg": "ok"}
    assert sandbox.control.component()["quota_used"] == {}
    assert wechat.draft_count(account["authorizer_access_token"]) == {"total_count": 0}


def test_clear_quota_v2_errors(sandbox: Sandbox, wechat: WeChat) -> None:
    revoked = sandbox.control.create_authorizer(authorized=True)
    sandbox.control.revoke(revoked["appid"])
    base = {"component_appid": COMPONENT_APPID, "appsecret": COMPONENT_SECRET}
    cases = [
        ({"appsecret": COMPONENT_SECRET}, 41018),
        ({"component_appid": "wxother", "appsecret": COMPONENT_SECRET}, 61011),
        ({"component_appid": COMPONENT_APPID}, 41004),
        ({**base, "appsecret": "guess"}, 40125),
        ({**base, "appid": "wxnobody"}, 40013),
        ({**base, "appid": revoked["appid"]}, 61003),
    ]
    for body, expected in cases:
        assert errcode(clear_v2(wechat, **body)) == expected
    assert sandbox.control.component()["quota_clears"] == 0
    assert sandbox.control.counters()["endpoints"][CLEAR_V2]["errors"] == {str(code): 1 for _, code in cases}


def test_ten_clears_a_month_shared_by_both_endpoints(sandbox: Sandbox, wechat: WeChat) -> None:
    account = sandbox.control.create_authorizer(authorized=True)
    token = account["authorizer_access_token"]
    v2 = {"component_appid": COMPONENT_APPID, "appsecret": COMPONENT_SECRET, "appid": account["appid"]}
    answers = [clear(wechat, token, account["appid"]) for _ in range(5)]
    answers += [clear_v2(wechat, **v2) for _ in range(5)]
    assert all(a["errcode"] == 0 for a in answers)
    sandbox.control.set_quota_used(account["appid"], 7)

    assert errcode(clear(wechat, token, account["appid"])) == 48006
    assert errcode(clear_v2(wechat, **v2)) == 48006

    view = sandbox.control.get_authorizer(account["appid"])
    assert view is not None and (view["quota_used"], view["quota_clears"]) == ({DRAFT_COUNT: 7}, 10)
    # The component's own budget is separate.
    assert clear_v2(wechat, component_appid=COMPONENT_APPID, appsecret=COMPONENT_SECRET)["errcode"] == 0


def test_the_clear_count_can_be_set_and_the_limit_configured(sandbox: Sandbox, wechat: WeChat) -> None:
    account = sandbox.control.create_authorizer(authorized=True)
    sandbox.control.set_quota(account["appid"], clears=9)
    token = account["authorizer_access_token"]
    assert clear(wechat, token, account["appid"])["errcode"] == 0
    assert errcode(clear(wechat, token, account["appid"])) == 48006
    sandbox.control.update_config(monthly_clear_limit=12)
    assert clear(wechat, token, account["appid"])["errcode"] == 0


def test_clear_quota_endpoints_take_faults_and_are_counted(sandbox: Sandbox, wechat: WeChat) -> None:
    account = sandbox.control.create_authorizer(authorized=True)
    sandbox.control.set_faults(rate=1.0, kinds=[-1], endpoints=[CLEAR_QUOTA])
    assert errcode(clear(wechat, account["authorizer_access_token"], account["appid"])) == -1
    garbage = requests.post(f"{sandbox.base_url}{CLEAR_V2}", data=b"[", timeout=10)
    assert errcode(garbage.json()) == 47001
    counters = sandbox.control.counters()["endpoints"]
    assert counters[CLEAR_QUOTA] == {"calls": 1, "ok": 0, "errors": {"-1": 1}}
    assert counters[CLEAR_V2] == {"calls": 1, "ok": 0, "errors": {"47001": 1}}
    view = sandbox.control.get_authorizer(account["appid"])
    assert view is not None and view["quota_clears"] == 0


# --- month and day boundaries, on a manual clock ---------------------------------------------------------


@pytest.fixture
def late_july() -> ManualClock:
    # 2026-07-31 23:59:59 in Shanghai (UTC+8).
    return ManualClock(datetime(2026, 7, 31, 15, 59, 59, tzinfo=UTC).timestamp())


def test_the_clear_budget_renews_with_the_month_in_china_time(late_july: ManualClock) -> None:
    state = SandboxState(SandboxConfig(seed=1, monthly_clear_limit=1), clock=late_july)
    account = state.create_authorizer(authorized=True)
    token = account.current_token
    assert state.clear_quota(token, account.appid)["errcode"] == 0
    with pytest.raises(WeChatFault) as info:
        state.clear_quota(token, account.appid)
    assert info.value.errcode == 48006
    late_july.advance(1)  # 2026-08-01 00:00:00 in Shanghai, still July in UTC
    assert state.clear_quota(token, account.appid)["errcode"] == 0


# --- component_rate_limit: calls third parties make per window ---------------------------------------------


def _draft_count_errcode(state: SandboxState, token: str | None) -> int:
    try:
        state.draft_count(token)
    except WeChatFault as fault:
        return fault.errcode
    return 0


def test_draft_count_keeps_to_the_component_rate_limit_of_each_window() -> None:
    clock = ManualClock(60_000.0)  # the start of a 60 s window
    state = SandboxState(SandboxConfig(seed=1), clock=clock)
    limited = state.create_authorizer(authorized=True)
    other = state.create_authorizer(authorized=True)
    state.set_quota(limited.appid, component_rate_limit={"call_count": 3, "refresh_second": 60})

    first_window = [_draft_count_errcode(state, limited.current_token) for _ in range(4)]
    unlimited = [_draft_count_errcode(state, other.current_token) for _ in range(4)]
    clock.advance(60)
    next_window = _draft_count_errcode(state, limited.current_token)

    # 45011: WeChat's errcode for a call-rate limit (docs/wechat/quota.md#rate-limits).
    assert first_window == [0, 0, 0, 45011]
    assert unlimited == [0, 0, 0, 0]
    assert next_window == 0
    # A refused call spends nothing of the daily quota.
    assert state.quota_get(limited.current_token, DRAFT_COUNT)["quota"]["used"] == 4


def test_a_spent_daily_quota_answers_45009_before_any_window(sandbox: Sandbox, wechat: WeChat) -> None:
    account = sandbox.control.create_authorizer(authorized=True)
    sandbox.control.set_quota(
        account["appid"], used=1000, component_rate_limit={"call_count": 1, "refresh_second": 3600}
    )

    assert [errcode(wechat.draft_count(account["authorizer_access_token"])) for _ in range(2)] == [45009, 45009]
