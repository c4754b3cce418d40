"""The /sandbox/ control API and its client."""

from __future__ import annotations

import pytest
import requests

from tests.fixtures.sandbox import Sandbox
from tests.sandbox.conftest import WeChat, errcode
from wxsandbox.control import SandboxControlError


def test_bulk_create_seeds_thousands_of_working_tenants(sandbox: Sandbox, wechat: WeChat) -> None:
    created = sandbox.control.bulk_create_authorizers(5000, prefix="bench", draft_count=(0, 20))
    assert len(created) == 5000
    assert len({a["appid"] for a in created}) == 5000
    assert set(created[0]) == {
        "appid",
        "authorizer_access_token",
        "expires_in",
        "authorizer_refresh_token",
        "draft_count",
        "kind",
        "func_ids",
    }
    assert all(0 <= a["draft_count"] <= 20 and a["expires_in"] == 7200 for a in created)
    sample = created[4321]
    assert wechat.draft_count(sample["authorizer_access_token"]) == {"total_count": sample["draft_count"]}
    assert len(sandbox.control.list_authorizers()) == 5000


def test_create_authorizer_defaults_to_an_account_not_yet_authorized(sandbox: Sandbox) -> None:
    account = sandbox.control.create_authorizer(appid="wxdemo0000000001", nickname="示例服务号", draft_count=12)
    # Twelve drafts, each with its own media_id (docs/wechat/draft-events.md).
    media_ids = account.pop("draft_media_ids")
    assert len(set(media_ids)) == 12 and all(isinstance(m, str) and len(m) == 43 for m in media_ids)
    assert account == {
        "appid": "wxdemo0000000001",
        "nickname": "示例服务号",
        "kind": "service",
        "verify_type": 0,
        "principal_name": account["principal_name"],
        "user_name": account["user_name"],
        "alias": "",
        "signature": "微信沙箱账号",
        "head_img": "http://wx.qlogo.cn/mmopen/sandbox/wxdemo0000000001/0",
        "qrcode_url": "http://mmbiz.qpic.cn/mmbiz_jpg/sandbox/wxdemo0000000001/0",
        "service_type": 2,
        "kind_info": None,
        "basic_config": {"is_phone_configured": True, "is_email_configured": True},
        "account_status": 1,
        "draft_count": 12,
        "func_ids": [1, 11],
        "omit_refresh_token_in_list": False,
        "authorized": False,
        "auth_time": None,
        "authorizer_refresh_token": None,
        "authorizer_access_token": None,
        "expires_in": None,
        "test_account": False,
        "fans": 0,
        "quota_used": {},
        "daily_limits": {},
        "rate_limits": {},
        "quota_clears": 0,
    }


def test_get_authorizer_of_an_unknown_appid_is_none(sandbox: Sandbox) -> None:
    assert sandbox.control.get_authorizer("wxnobody") is None


def test_refused_control_calls_raise_with_status_and_change_nothing(sandbox: Sandbox) -> None:
    sandbox.control.create_authorizer(appid="wxtaken")
    cases = [
        (lambda: sandbox.control.create_authorizer(appid="wxtaken"), 409),
        (lambda: sandbox.control.create_authorizer(kind="newsroom"), 400),
        (lambda: sandbox.control.create_authorizer(func_ids=[-3]), 400),
        (lambda: sandbox.control.update_authorizer("wxtaken", draft_count="many"), 400),
        (lambda: sandbox.control.revoke("wxtaken"), 409),
        (lambda: sandbox.control.revoke("wxnobody"), 404),
        (lambda: sandbox.control.consent("preauthcode@@@forged", "wxtaken"), 404),
        (lambda: sandbox.control.set_quota_used("wxtaken", 5, cgi_path="/cgi-bin/other"), 400),
        (lambda: sandbox.control.set_faults(rate=2, kinds=[-1]), 400),
        (lambda: sandbox.control.update_config(component_appsecret="x"), 400),
        (lambda: sandbox.control.bulk_create_authorizers(0), 400),
    ]
    for call, status in cases:
        with pytest.raises(SandboxControlError) as info:
            call()
        assert info.value.status == status
    assert [a["appid"] for a in sandbox.control.list_authorizers()] == ["wxtaken"]
    assert sandbox.control.get_authorizer("wxtaken")["draft_count"] == 0  # type: ignore[index]


def test_unknown_control_calls_and_bad_bodies_are_json_errors(sandbox: Sandbox) -> None:
    missing = requests.get(f"{sandbox.base_url}/sandbox/nothing", timeout=10)
    assert (missing.status_code, missing.json()) == (404, {"error": "no control call GET /sandbox/nothing"})
    bad = requests.post(f"{sandbox.base_url}/sandbox/authorizers", data=b"{", timeout=10)
    assert (bad.status_code, bad.json()) == (400, {"error": "body is not JSON"})


def test_update_authorizer_changes_what_wechat_answers(sandbox: Sandbox, wechat: WeChat) -> None:
    account = sandbox.control.create_authorizer(authorized=True, draft_count=1)
    token = account["authorizer_access_token"]
    sandbox.control.update_authorizer(account["appid"], draft_count=30)
    assert wechat.draft_count(token) == {"total_count": 30}
    sandbox.control.update_authorizer(account["appid"], func_ids=[1, 2])
    assert errcode(wechat.draft_count(token)) == 61007
    sandbox.control.update_authorizer(account["appid"], func_ids=[100], kind="mini_program")
    assert errcode(wechat.draft_count(token)) == 48001
    updated = sandbox.control.update_authorizer(account["appid"], kind="subscription")
    assert (updated["kind"], updated["func_ids"], updated["draft_count"]) == ("subscription", [100], 30)
    assert wechat.draft_count(token) == {"total_count": 30}


def test_issue_auth_code_feeds_api_query_auth(sandbox: Sandbox, wechat: WeChat) -> None:
    account = sandbox.control.create_authorizer(draft_count=2)
    issued = sandbox.control.issue_auth_code(account["appid"])
    assert issued["expires_in"] == 600
    info = wechat.component("api_query_auth", {"authorization_code": issued["auth_code"]}, wechat.component_token())
    assert wechat.draft_count(info["authorization_info"]["authorizer_access_token"]) == {"total_count": 2}
    assert sandbox.control.pushes() == [sandbox.control.pushes()[0]]  # only the ticket: no authorization push


def test_consent_control_builds_the_redirect_url(sandbox: Sandbox, wechat: WeChat) -> None:
    code = wechat.pre_auth_code(wechat.component_token())
    account = sandbox.control.create_authorizer()
    consent = sandbox.control.consent(
        code, account["appid"], redirect_uri="https://p.example.com/cb?x=1", func_ids=[11], push=False
    )
    assert consent["redirect_url"] == (f"https://p.example.com/cb?x=1&auth_code={consent['auth_code']}&expires_in=600")
    assert consent["push"] is None
    assert sandbox.control.get_authorizer(account["appid"])["func_ids"] == [11]  # type: ignore[index]


def test_quota_control_sets_todays_use(sandbox: Sandbox, wechat: WeChat) -> None:
    account = sandbox.control.create_authorizer(authorized=True)
    view = sandbox.control.set_quota_used(account["appid"], 999)
    assert view["quota_used"] == {"/cgi-bin/draft/count": 999}
    assert wechat.draft_count(account["authorizer_access_token"]) == {"total_count": 0}
    assert errcode(wechat.draft_count(account["authorizer_access_token"])) == 45009


def test_reset_restores_the_started_config(sandbox: Sandbox, wechat: WeChat) -> None:
    sandbox.control.set_event_url("http://127.0.0.1:9/events")
    sandbox.control.update_config(auth_code_single_use=True, daily_quota=3)
    sandbox.control.set_latency(0.01)
    sandbox.control.reset()
    assert sandbox.control.get_config() == sandbox.config.to_dict()
    assert sandbox.control.ticket() is None
    assert sandbox.control.pushes() == []


def test_the_index_lists_every_control_call(sandbox: Sandbox) -> None:
    index = sandbox.control.index()
    calls = {(c["method"], c["path"]) for c in index["calls"]}
    assert {
        ("GET", "/sandbox/"),
        ("POST", "/sandbox/reset"),
        ("PATCH", "/sandbox/authorizers/{appid}"),
        ("POST", "/sandbox/authorizers/{appid}/messages"),
        ("POST", "/sandbox/release_test"),
        ("GET", "/sandbox/rids/{rid}"),
    } <= calls
    assert all(c["summary"] for c in index["calls"])
    assert "/cgi-bin/openapi/rid/get" in index["wechat_endpoints"]


@pytest.mark.parametrize("accept", ["text/html,application/xhtml+xml,*/*;q=0.8", "*/*", ""])
def test_the_index_is_a_page_for_browsers(sandbox: Sandbox, accept: str) -> None:
    for path in ("/sandbox/", "/sandbox"):
        page = requests.get(f"{sandbox.base_url}{path}", headers={"Accept": accept}, timeout=10)
        assert page.status_code == 200
        assert page.headers["Content-Type"].startswith("text/html")
        assert "<code>/sandbox/release_test</code>" in page.text
    # The index is no WeChat call: nothing was counted.
    assert sandbox.control.counters()["endpoints"] == {}
