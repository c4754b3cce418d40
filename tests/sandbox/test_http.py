"""WeChat's endpoints over HTTP, as the platform sees them."""

from __future__ import annotations

import pytest
import requests

from tests.fixtures.sandbox import Sandbox
from tests.sandbox.conftest import COMPONENT_APPID, COMPONENT_SECRET, WeChat, errcode


def test_the_whole_authorization_flow_ends_in_a_draft_count(sandbox: Sandbox, wechat: WeChat) -> None:
    token = wechat.component_token()
    pre_auth_code = wechat.pre_auth_code(token)
    account = sandbox.control.create_authorizer(kind="service", func_ids=[1, 11], draft_count=9)
    consent = sandbox.control.consent(pre_auth_code, account["appid"], push=False)

    info = wechat.component("api_query_auth", {"authorization_code": consent["auth_code"]}, token)
    authorization = info["authorization_info"]
    refreshed = wechat.component(
        "api_authorizer_token",
        {"authorizer_appid": account["appid"], "authorizer_refresh_token": authorization["authorizer_refresh_token"]},
        token,
    )

    assert authorization["authorizer_appid"] == account["appid"]
    assert authorization["expires_in"] == 7200
    assert [f["funcscope_category"]["id"] for f in authorization["func_info"]] == [1, 11]
    assert refreshed["authorizer_refresh_token"] == authorization["authorizer_refresh_token"]
    assert wechat.draft_count(authorization["authorizer_access_token"]) == {"total_count": 9}
    assert wechat.draft_count(refreshed["authorizer_access_token"]) == {"total_count": 9}


def test_component_endpoints_accept_access_token_as_well(sandbox: Sandbox, wechat: WeChat) -> None:
    token = wechat.component_token()
    answer = wechat.post("/cgi-bin/component/api_create_preauthcode", {"component_appid": COMPONENT_APPID},
                         access_token=token).json()  # fmt: skip
    assert answer["expires_in"] == 600
    assert answer["pre_auth_code"].startswith("preauthcode@@@")


def test_component_token_errors(sandbox: Sandbox, wechat: WeChat) -> None:
    ticket = sandbox.control.push_ticket()["ticket"]
    path = "/cgi-bin/component/api_component_token"
    body = {"component_appid": COMPONENT_APPID, "component_appsecret": COMPONENT_SECRET}
    cases = [
        ({**body, "component_verify_ticket": "ticket@@@forged"}, 61006),
        ({**body, "component_appid": "wx1234", "component_verify_ticket": ticket}, 61011),
        ({**body, "component_appsecret": "guess", "component_verify_ticket": ticket}, 40125),
    ]
    for request_body, expected in cases:
        assert errcode(wechat.post(path, request_body).json()) == expected
    assert sandbox.control.counters()["endpoints"][path] == {
        "calls": 3,
        "ok": 0,
        "errors": {"61006": 1, "61011": 1, "40125": 1},
    }


def test_expired_component_token_is_42001(sandbox: Sandbox, wechat: WeChat) -> None:
    token = wechat.component_token()
    assert sandbox.control.expire_component_token() == 1
    answer = wechat.component("api_create_preauthcode", {}, token)
    assert errcode(answer) == 42001


def test_draft_count_errcodes(sandbox: Sandbox, wechat: WeChat) -> None:
    control = sandbox.control
    ok = control.create_authorizer(authorized=True, draft_count=3)
    expired = control.create_authorizer(authorized=True)
    revoked = control.create_authorizer(authorized=True)
    mini = control.create_authorizer(authorized=True, kind="mini_program")
    no_set_11 = control.create_authorizer(authorized=True, func_ids=[1, 2])
    spent = control.create_authorizer(authorized=True)
    control.expire_authorizer_tokens(expired["appid"])
    control.revoke(revoked["appid"])
    control.set_quota_used(spent["appid"], 1000)

    assert wechat.draft_count(ok["authorizer_access_token"]) == {"total_count": 3}
    assert errcode(wechat.draft_count(None)) == 41001
    assert errcode(wechat.draft_count("not-a-token")) == 40001
    assert errcode(wechat.draft_count(expired["authorizer_access_token"])) == 42001
    assert errcode(wechat.draft_count(revoked["authorizer_access_token"])) == 61003
    assert errcode(wechat.draft_count(mini["authorizer_access_token"])) == 48001
    assert errcode(wechat.draft_count(no_set_11["authorizer_access_token"])) == 61007
    assert errcode(wechat.draft_count(spent["authorizer_access_token"])) == 45009


def test_draft_count_wants_get(sandbox: Sandbox, wechat: WeChat) -> None:
    account = sandbox.control.create_authorizer(authorized=True)
    answer = wechat.post("/cgi-bin/draft/count", {}, access_token=account["authorizer_access_token"])
    assert answer.status_code == 200
    # WeChat answers a POST to a GET endpoint with 43001 "require GET method".
    assert errcode(answer.json()) == 43001
    assert sandbox.control.get_authorizer(account["appid"])["quota_used"] == {}  # type: ignore[index]


def test_component_endpoints_want_post(sandbox: Sandbox, wechat: WeChat) -> None:
    answer = requests.get(f"{sandbox.base_url}/cgi-bin/component/api_component_token", timeout=10)
    assert answer.status_code == 200
    assert errcode(answer.json()) == 43002


def test_invalidated_token_is_40001(sandbox: Sandbox, wechat: WeChat) -> None:
    account = sandbox.control.create_authorizer(authorized=True)
    assert sandbox.control.invalidate_authorizer_tokens(account["appid"]) == 1
    assert errcode(wechat.draft_count(account["authorizer_access_token"])) == 40001


def test_quota_get_reports_use_per_account_and_resets(sandbox: Sandbox, wechat: WeChat) -> None:
    first = sandbox.control.create_authorizer(authorized=True)
    second = sandbox.control.create_authorizer(authorized=True)
    for _ in range(2):
        wechat.draft_count(first["authorizer_access_token"])

    def quota(account: dict[str, str]) -> dict[str, int]:
        answer = wechat.post("/cgi-bin/openapi/quota/get", {"cgi_path": "/cgi-bin/draft/count"},
                             access_token=account["authorizer_access_token"]).json()  # fmt: skip
        assert (answer["errcode"], answer["errmsg"]) == (0, "ok")
        result: dict[str, int] = answer["quota"]
        return result

    assert quota(first) == {"daily_limit": 1000, "used": 2, "remain": 998}
    assert quota(second) == {"daily_limit": 1000, "used": 0, "remain": 1000}
    sandbox.control.reset_quotas()
    assert quota(first) == {"daily_limit": 1000, "used": 0, "remain": 1000}
    unknown = wechat.post("/cgi-bin/openapi/quota/get", {"cgi_path": "/cgi-bin/nope"},
                          access_token=first["authorizer_access_token"]).json()  # fmt: skip
    assert errcode(unknown) == 76021


def test_daily_quota_comes_from_the_config(sandbox: Sandbox, wechat: WeChat) -> None:
    sandbox.control.update_config(daily_quota=2)
    account = sandbox.control.create_authorizer(authorized=True, draft_count=1)
    answers = [wechat.draft_count(account["authorizer_access_token"]) for _ in range(3)]
    assert answers[:2] == [{"total_count": 1}, {"total_count": 1}]
    assert errcode(answers[2]) == 45009


def test_refresh_token_from_before_a_reauthorization_is_61023(sandbox: Sandbox, wechat: WeChat) -> None:
    token = wechat.component_token()
    account = sandbox.control.create_authorizer(authorized=True)
    old_refresh = account["authorizer_refresh_token"]
    consent = sandbox.control.consent(wechat.pre_auth_code(token), account["appid"], push=False)
    assert consent["info_type"] == "updateauthorized"
    body = {"authorizer_appid": account["appid"], "authorizer_refresh_token": old_refresh}
    assert errcode(wechat.component("api_authorizer_token", body, token)) == 61023
    new = wechat.component("api_query_auth", {"authorization_code": consent["auth_code"]}, token)
    assert new["authorization_info"]["authorizer_refresh_token"] != old_refresh


def test_authorizer_info_and_list(sandbox: Sandbox, wechat: WeChat) -> None:
    token = wechat.component_token()
    control = sandbox.control
    service = control.create_authorizer(authorized=True, nickname="示例服务号", principal_name="示例公司")
    hidden = control.create_authorizer(authorized=True, omit_refresh_token_in_list=True)
    control.create_authorizer()  # exists in WeChat, never authorized

    info = wechat.component("api_get_authorizer_info", {"authorizer_appid": service["appid"]}, token)
    listing = wechat.component("api_get_authorizer_list", {"offset": 0, "count": 100}, token)

    assert info["authorizer_info"]["nick_name"] == "示例服务号"
    assert info["authorizer_info"]["principal_name"] == "示例公司"
    assert info["authorizer_info"]["service_type_info"] == {"id": 2}
    assert info["authorization_info"]["authorizer_refresh_token"] == service["authorizer_refresh_token"]
    assert listing["total_count"] == 2
    assert [item.get("refresh_token") for item in listing["list"]] == [service["authorizer_refresh_token"], None]
    assert [item["authorizer_appid"] for item in listing["list"]] == [service["appid"], hidden["appid"]]


def test_start_push_ticket_checks_the_secret_field(sandbox: Sandbox, wechat: WeChat) -> None:
    path = "/cgi-bin/component/api_start_push_ticket"
    # The field is component_secret (docs/wechat/flow.md#ticket-timing); component_appsecret does not count.
    wrong = wechat.post(path, {"component_appid": COMPONENT_APPID, "component_appsecret": COMPONENT_SECRET})
    assert errcode(wrong.json()) == 41004
    assert sandbox.control.ticket() is None
    right = wechat.post(path, {"component_appid": COMPONENT_APPID, "component_secret": COMPONENT_SECRET})
    assert right.json() == {"errcode": 0, "errmsg": "ok"}
    assert sandbox.control.ticket() is not None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", 44002),
        (b"{not json", 47001),
        (b"[1, 2]", 47001),
        (b'{"component_appid": 5}', 47001),
        (b"[" * 100_000, 47001),
        (b"\xff\xfe\x00garbage", 47001),
    ],
)
def test_garbage_bodies_get_errcodes(sandbox: Sandbox, body: bytes, expected: int) -> None:
    answer = requests.post(f"{sandbox.base_url}/cgi-bin/component/api_create_preauthcode", data=body, timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json; encoding=utf-8"
    assert errcode(answer.json()) == expected


def test_missing_fields_get_errcodes(sandbox: Sandbox, wechat: WeChat) -> None:
    token = wechat.component_token()
    no_appid = wechat.post("/cgi-bin/component/api_create_preauthcode", {}, component_access_token=token)
    assert errcode(no_appid.json()) == 41018
    assert errcode(wechat.component("api_query_auth", {}, token)) == 47001
    assert errcode(wechat.component("api_authorizer_token", {"authorizer_appid": "wx1"}, token)) == 47001
    assert errcode(wechat.component("api_get_authorizer_list", {"count": "many"}, token)) == 47001
    no_token = wechat.post("/cgi-bin/component/api_create_preauthcode", {"component_appid": COMPONENT_APPID})
    assert errcode(no_token.json()) == 41001


@pytest.mark.parametrize(
    ("count", "expected"), [("2", None), (" 1 ", None), ("--5", 47001), ("²", 47001), (True, 47001)]
)
def test_numbers_may_come_as_strings_but_not_as_anything_else(
    sandbox: Sandbox, wechat: WeChat, count: object, expected: int | None
) -> None:
    token = wechat.component_token()
    sandbox.control.create_authorizer(authorized=True)
    answer = wechat.component("api_get_authorizer_list", {"offset": "0", "count": count}, token)
    if expected is None:
        assert answer["total_count"] == 1
    else:
        assert errcode(answer) == expected


def test_a_body_over_the_limit_is_45002(sandbox: Sandbox) -> None:
    answer = requests.post(
        f"{sandbox.base_url}/cgi-bin/component/api_component_token", data=b"x" * (2 * 1024 * 1024), timeout=30
    )
    assert errcode(answer.json()) == 45002
    assert sandbox.control.counters()["endpoints"]["/cgi-bin/component/api_component_token"]["errors"] == {"45002": 1}


def test_unknown_paths_get_an_errcode_not_a_404(sandbox: Sandbox) -> None:
    for method in ("GET", "POST", "DELETE"):
        answer = requests.request(method, f"{sandbox.base_url}/cgi-bin/no/such/api", timeout=10)
        assert answer.status_code == 200
        assert errcode(answer.json()) == 40066
    assert sandbox.control.counters()["endpoints"]["*"] == {"calls": 3, "ok": 0, "errors": {"40066": 3}}


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("not-a-token", 40001),
        ("x&access_token=y", 40001),
        ("has space", 40014),
        ("tökén", 40014),
        ("tab\there", 40014),
        ("a" * 600, 40014),
    ],
)
def test_unknown_tokens_are_40001_and_impossible_ones_40014(
    sandbox: Sandbox, wechat: WeChat, token: str, expected: int
) -> None:
    assert errcode(wechat.draft_count(token)) == expected
