"""The authorization pages (docs/wechat/endpoints.md#authorization-page-links): the sandbox plays the merchant who
consents."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.fixtures.sandbox import Sandbox
from tests.sandbox.conftest import COMPONENT_APPID, Receiver, WeChat

PAGES = ["/cgi-bin/componentloginpage", "/safe/bindcomponent", "/wxaopen/safe/bindcomponent"]
REFERER = {"Referer": "https://platform.example.com/wechat/authorize"}
REDIRECT_URI = "https://platform.example.com/wechat/callback?state=abc"


def link_params(pre_auth_code: str, **extra: str) -> dict[str, str]:
    return {
        "component_appid": COMPONENT_APPID,
        "pre_auth_code": pre_auth_code,
        "redirect_uri": REDIRECT_URI,
        "auth_type": "1",
        **extra,
    }


def form_fields(page: str) -> dict[str, str]:
    """The hidden fields of the consent form, as a browser would submit them."""
    return {
        name: unescape(value) for name, value in re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page)
    }


def error_reason(page: str) -> str | None:
    match = re.search(r'id="wx-error" data-reason="(\w+)"', page)
    return match.group(1) if match else None


@pytest.mark.parametrize("path", PAGES)
def test_page_without_referer_is_refused(sandbox: Sandbox, wechat: WeChat, path: str) -> None:
    code = wechat.pre_auth_code(wechat.component_token())
    page = requests.get(f"{sandbox.base_url}{path}", params=link_params(code), timeout=10)
    assert page.status_code == 200
    assert "授权入口页所在域名：空" in page.text  # noqa: RUF001 - WeChat's wording
    assert error_reason(page.text) == "referer"
    # The refusal did not spend the pre_auth_code.
    account = sandbox.control.create_authorizer()
    assert sandbox.control.consent(code, account["appid"], push=False)["info_type"] == "authorized"


@pytest.mark.parametrize("path", PAGES)
def test_consent_with_referer_redirects_with_the_auth_code(
    sandbox: Sandbox, wechat: WeChat, receiver: Receiver, path: str
) -> None:
    sandbox.control.set_event_url(receiver.url)
    token = wechat.component_token()
    code = wechat.pre_auth_code(token)
    account = sandbox.control.create_authorizer(nickname="商户A", kind="subscription", draft_count=6)
    browser = requests.Session()

    page = browser.get(f"{sandbox.base_url}{path}", params=link_params(code), headers=REFERER, timeout=10)
    assert 'id="agree"' in page.text
    assert f'<option value="{account["appid"]}"' in page.text
    fields = {**form_fields(page.text), "authorizer_appid": account["appid"], "action": "agree"}
    answer = browser.post(
        f"{sandbox.base_url}{path}", data={**fields, "func_id": ["1", "11"]}, allow_redirects=False, timeout=10
    )

    assert answer.status_code == 302
    location = urlsplit(answer.headers["Location"])
    query = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}{location.path}" == "https://platform.example.com/wechat/callback"
    assert query["state"] == ["abc"]
    assert query["expires_in"] == ["600"]
    auth_code = query["auth_code"][0]
    info = wechat.component("api_query_auth", {"authorization_code": auth_code}, token)["authorization_info"]
    assert info["authorizer_appid"] == account["appid"]
    assert wechat.draft_count(info["authorizer_access_token"]) == {"total_count": 6}
    [push] = sandbox.control.wait_for_pushes(2)[1:]  # after the ticket
    assert (push["info_type"], push["fields"]["AuthorizationCode"], push["ok"]) == ("authorized", auth_code, True)


def test_consent_can_create_a_new_account(sandbox: Sandbox, wechat: WeChat) -> None:
    code = wechat.pre_auth_code(wechat.component_token())
    page = requests.get(
        f"{sandbox.base_url}/cgi-bin/componentloginpage", params=link_params(code), headers=REFERER, timeout=10
    )
    fields = {
        **form_fields(page.text),
        "authorizer_appid": "__new__",
        "new_nickname": "新商户",
        "new_kind": "service",
        "new_verify_type": "0",
        "new_draft_count": "4",
        "func_id": ["1", "11"],
    }
    answer = requests.post(
        f"{sandbox.base_url}/cgi-bin/componentloginpage", data=fields, allow_redirects=False, timeout=10
    )
    assert answer.status_code == 302
    [account] = sandbox.control.list_authorizers()
    assert (
        account["nickname"],
        account["kind"],
        account["draft_count"],
        account["func_ids"],
        account["authorized"],
    ) == (
        "新商户",
        "service",
        4,
        [1, 11],
        True,
    )


@pytest.mark.parametrize(("field", "value"), [("new_draft_count", "²"), ("new_verify_type", "--1")])
def test_unparseable_new_account_numbers_show_an_error_page(
    sandbox: Sandbox, wechat: WeChat, field: str, value: str
) -> None:
    code = wechat.pre_auth_code(wechat.component_token())
    page = requests.get(
        f"{sandbox.base_url}/cgi-bin/componentloginpage", params=link_params(code), headers=REFERER, timeout=10
    )
    fields = {**form_fields(page.text), "authorizer_appid": "__new__", field: value}
    answer = requests.post(
        f"{sandbox.base_url}/cgi-bin/componentloginpage", data=fields, allow_redirects=False, timeout=10
    )
    assert error_reason(answer.text) == "new_account"
    assert sandbox.control.list_authorizers() == []


def test_official_accounts_only_link_refuses_a_mini_program(sandbox: Sandbox, wechat: WeChat) -> None:
    code = wechat.pre_auth_code(wechat.component_token())
    mini = sandbox.control.create_authorizer(kind="mini_program")
    page = requests.get(
        f"{sandbox.base_url}/cgi-bin/componentloginpage", params=link_params(code), headers=REFERER, timeout=10
    )
    assert mini["appid"] not in page.text
    fields = {**form_fields(page.text), "authorizer_appid": mini["appid"], "func_id": "11"}
    answer = requests.post(
        f"{sandbox.base_url}/cgi-bin/componentloginpage", data=fields, allow_redirects=False, timeout=10
    )
    assert answer.status_code == 200
    assert error_reason(answer.text) == "consent"
    assert sandbox.control.get_authorizer(mini["appid"])["authorized"] is False  # type: ignore[index]


def test_a_used_pre_auth_code_shows_an_error_page(sandbox: Sandbox, wechat: WeChat) -> None:
    code = wechat.pre_auth_code(wechat.component_token())
    account = sandbox.control.create_authorizer()
    sandbox.control.consent(code, account["appid"], push=False)
    page = requests.get(
        f"{sandbox.base_url}/cgi-bin/componentloginpage", params=link_params(code), headers=REFERER, timeout=10
    )
    assert error_reason(page.text) == "pre_auth_code"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"component_appid": "wxother"}, "component_appid"),
        ({"redirect_uri": "javascript:alert(1)"}, "redirect_uri"),
        ({"pre_auth_code": "preauthcode@@@forged"}, "pre_auth_code"),
        ({"auth_type": "x"}, "auth_type"),
        ({"auth_type": "²"}, "auth_type"),
    ],
)
def test_a_bad_link_shows_an_error_page(sandbox: Sandbox, wechat: WeChat, change: dict[str, str], reason: str) -> None:
    code = wechat.pre_auth_code(wechat.component_token())
    params = {**link_params(code), **change}
    page = requests.get(f"{sandbox.base_url}/cgi-bin/componentloginpage", params=params, headers=REFERER, timeout=10)
    assert page.status_code == 200
    assert error_reason(page.text) == reason


def test_biz_appid_limits_the_page_to_one_account(sandbox: Sandbox, wechat: WeChat) -> None:
    code = wechat.pre_auth_code(wechat.component_token())
    chosen = sandbox.control.create_authorizer(func_ids=[1, 7])
    other = sandbox.control.create_authorizer()
    params = link_params(code, biz_appid=chosen["appid"])
    del params["auth_type"]
    page = requests.get(f"{sandbox.base_url}/cgi-bin/componentloginpage", params=params, headers=REFERER, timeout=10)
    assert f'value="{chosen["appid"]}" data-func-ids="1,7" selected' in page.text
    assert other["appid"] not in page.text
    fields = {**form_fields(page.text), "authorizer_appid": other["appid"]}
    refused = requests.post(
        f"{sandbox.base_url}/cgi-bin/componentloginpage", data=fields, allow_redirects=False, timeout=10
    )
    assert error_reason(refused.text) == "biz_appid"
    assert sandbox.control.get_authorizer(other["appid"])["authorized"] is False  # type: ignore[index]


def test_the_page_offers_neither_wechats_test_accounts_nor_other_kinds_for_auth_type_1(
    sandbox: Sandbox, wechat: WeChat
) -> None:
    code = wechat.pre_auth_code(wechat.component_token())
    store = sandbox.control.create_authorizer(kind="store")
    mine = sandbox.control.create_authorizer(kind="subscription")
    only_oa = requests.get(f"{sandbox.base_url}{PAGES[0]}", params=link_params(code), headers=REFERER, timeout=10)
    everything = requests.get(
        f"{sandbox.base_url}{PAGES[0]}", params=link_params(code, auth_type="3"), headers=REFERER, timeout=10
    )
    assert mine["appid"] in only_oa.text
    assert store["appid"] not in only_oa.text
    assert store["appid"] in everything.text
    for page in (only_oa, everything):
        assert "wx570bc396a51b8ff8" not in page.text
        assert "wxd101a85aa106f53e" not in page.text


def test_the_new_account_form_names_each_verification_type_in_chinese_with_its_code(
    sandbox: Sandbox, wechat: WeChat
) -> None:
    code = wechat.pre_auth_code(wechat.component_token())
    page = requests.get(
        f"{sandbox.base_url}/cgi-bin/componentloginpage", params=link_params(code), headers=REFERER, timeout=10
    )

    select = page.text.split('id="new-verify-type">', 1)[1].split("</select>", 1)[0]
    options = dict(re.findall(r'<option value="(-?\d+)"[^>]*>([^<]*)</option>', select))
    # WeChat's verify_type_info ids (docs/wechat/permissions.md#verify_type_info), none shown bare.
    assert options == {
        "-1": "未认证 (-1)",
        "0": "微信认证 (0)",
        "1": "新浪微博认证 (1)",
        "2": "腾讯微博认证 (2)",
        "3": "资质认证通过、名称未认证 (3)",
        "4": "资质认证通过、名称未认证、新浪微博认证 (4)",
        "5": "资质认证通过、名称未认证、腾讯微博认证 (5)",
    }
    assert '<option value="0" selected>' in select
