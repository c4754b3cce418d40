"""WeChat's full-release test (全网发布, docs/wechat/message-url.md#full-release-test), run by the sandbox against a
platform's URLs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.sandbox import Sandbox
from tests.sandbox.fake_platform import FakePlatform
from wxsandbox.control import SandboxControlError
from wxsandbox.state import RELEASE_TEST_MINI_PROGRAMS, RELEASE_TEST_OFFICIAL_ACCOUNTS

STEPS = [
    "ticket",
    "pre_auth_code",
    "authorized",
    "query_auth",
    "text_message",
    "api_text_message",
    "event_message",
    "unauthorized",
]


@pytest.fixture
def platform(sandbox: Sandbox) -> Iterator[FakePlatform]:
    fake = FakePlatform(sandbox.base_url, sandbox.config)
    fake.start()
    sandbox.control.set_event_url(fake.event_url)
    sandbox.control.set_message_url(fake.message_url)
    # Failing cases wait; keep the waits short.
    sandbox.control.update_config(message_timeout=0.5, message_tries=2)
    yield fake
    fake.stop()


def results(report: dict[str, Any]) -> dict[str, str]:
    return {row["step"]: row["result"] for row in report["rows"]}


def detail(report: dict[str, Any], step: str) -> str:
    found: str = next(row["detail"] for row in report["rows"] if row["step"] == step)
    return found


def test_wechats_test_accounts_exist_as_listed(sandbox: Sandbox) -> None:
    accounts = {a["appid"]: a for a in sandbox.control.list_authorizers(include_test_accounts=True)}
    for appid, user_name in RELEASE_TEST_OFFICIAL_ACCOUNTS:
        assert (accounts[appid]["user_name"], accounts[appid]["kind"]) == (user_name, "service")
    for appid in RELEASE_TEST_MINI_PROGRAMS:
        assert accounts[appid]["kind"] == "mini_program"
    assert {a["test_account"] for a in accounts.values()} == {True}


def test_a_platform_that_does_everything_right_passes(sandbox: Sandbox, platform: FakePlatform) -> None:
    report = sandbox.control.release_test(group=0)

    assert platform.errors == []
    assert [row["step"] for row in report["rows"]] == STEPS
    assert results(report) == dict.fromkeys(STEPS, "pass")
    assert report["passed"] is True
    assert (report["group"], report["authorizer_appid"], report["user_name"]) == (
        0,
        "wx570bc396a51b8ff8",
        "gh_3c884a361561",
    )
    # WeChat's own authorization, then its revocation; the account is left unauthorized.
    infos = [(e["InfoType"], e.get("AuthorizerAppid")) for e in platform.events]
    assert infos == [
        ("component_verify_ticket", None),
        ("authorized", "wx570bc396a51b8ff8"),
        ("unauthorized", "wx570bc396a51b8ff8"),
    ]
    account = sandbox.control.get_authorizer("wx570bc396a51b8ff8")
    assert account is not None and account["authorized"] is False
    [custom] = sandbox.control.custom_messages("wx570bc396a51b8ff8")
    code = platform.messages[1]["Content"].removeprefix("QUERY_AUTH_CODE:")
    assert (custom["content"], custom["auth_code"]) == (f"{code}_from_api", code)
    assert sandbox.control.release_test_results() == [report]


def test_the_authorized_push_is_one_no_merchant_started(sandbox: Sandbox, platform: FakePlatform) -> None:
    sandbox.control.release_test(group=3)
    authorized = next(e for e in platform.events if e["InfoType"] == "authorized")
    assert authorized["AuthorizerAppid"] == "wx14550af28c71a144"
    assert authorized["PreAuthCode"].startswith("preauthcode@@@")
    # The three cases went to the account's 原始ID.
    assert {m["ToUserName"] for m in platform.messages} == {"gh_26128078e9ab"}
    assert [m["MsgType"] for m in platform.messages] == ["text", "text", "event"]


def test_the_pre_auth_code_row_says_who_made_it(sandbox: Sandbox, platform: FakePlatform) -> None:
    first = sandbox.control.release_test(group=1)
    platform.http.post(
        f"{sandbox.base_url}/cgi-bin/component/api_create_preauthcode",
        params={"component_access_token": platform.component_token()},
        json={"component_appid": sandbox.config.component_appid},
        timeout=10,
    )
    second = sandbox.control.release_test(group=1)
    assert detail(first, "pre_auth_code") == "the platform has created none lately; the test created its own"
    assert detail(second, "pre_auth_code") == "the platform created one through api_create_preauthcode"


def test_the_message_cases_are_skipped_without_set_1(sandbox: Sandbox, platform: FakePlatform) -> None:
    sandbox.control.set_platform_func_ids([11])
    report = sandbox.control.release_test()
    assert results(report) == {
        **dict.fromkeys(STEPS, "pass"),
        "text_message": "skipped",
        "api_text_message": "skipped",
        "event_message": "skipped",
    }
    assert report["passed"] is True
    assert platform.messages == []
    authorized = sandbox.control.get_authorizer(report["authorizer_appid"])
    assert authorized is not None and authorized["func_ids"] == [11]


@pytest.mark.parametrize(
    ("knobs", "failed", "why"),
    [
        ({"answer_pushes": b"ok"}, {"ticket", "authorized", "unauthorized"}, "not success"),
        ({"query_auth_on_push": False}, {"query_auth"}, "api_query_auth was not called with the pushed code"),
        ({"reply_text": "{content}"}, {"text_message"}, "differ"),
        ({"sign_badly": True}, {"text_message", "event_message"}, "MsgSignature does not verify"),
        ({"encrypt_replies": False}, {"text_message", "event_message"}, "expected an encrypted passive reply"),
        ({"reply_event": "{event}"}, {"event_message"}, "differ"),
        ({"query_answer": b"<xml><Content>x</Content></xml>"}, {"api_text_message"}, "expected an empty answer"),
        ({"custom_content": "{code}"}, {"api_text_message"}, "_from_api"),
        ({"query_the_code": False}, {"api_text_message"}, "api_query_auth was not called with the code"),
        ({"send_with_old_token": True}, {"api_text_message"}, "token not obtained from this code"),
        ({"custom_delay": 1.5}, {"api_text_message"}, "no message/custom/send"),
        ({"message_delay": 0.8}, {"text_message", "api_text_message", "event_message"}, "no answer"),
    ],
)
def test_each_mistake_fails_its_row_and_says_why(
    sandbox: Sandbox, platform: FakePlatform, knobs: dict[str, Any], failed: set[str], why: str
) -> None:
    for name, value in knobs.items():
        setattr(platform.knobs, name, value)
    report = sandbox.control.release_test(window=1.0)
    assert {step for step, result in results(report).items() if result == "fail"} == failed
    assert all(why in detail(report, step) for step in failed), report["rows"]
    assert report["passed"] is False


def test_unset_urls_fail_their_rows(sandbox: Sandbox, platform: FakePlatform) -> None:
    sandbox.control.set_event_url(None)
    sandbox.control.set_message_url(None)
    report = sandbox.control.release_test(window=0.2)
    assert detail(report, "ticket") == "event_url is not set"
    assert detail(report, "event_message") == "message_url is not set"
    assert {step for step, result in results(report).items() if result == "pass"} == {"pre_auth_code"}


def test_an_account_left_authorized_by_an_earlier_run_is_authorized_afresh(
    sandbox: Sandbox, platform: FakePlatform
) -> None:
    sandbox.control.issue_auth_code("wx9252c5e0bb1836fc")  # authorizes it, no push
    report = sandbox.control.release_test(group=1)
    assert report["passed"] is True
    assert [e["InfoType"] for e in platform.events][1] == "authorized"


def test_refused_release_test_calls(sandbox: Sandbox, platform: FakePlatform) -> None:
    for body in ({"group": 5}, {"group": -1}, {"group": "0"}, {"window": -1}):
        with pytest.raises(SandboxControlError) as info:
            sandbox.control._call("POST", "/release_test", body)
        assert info.value.status == 400
    platform.knobs.query_auth_on_push = False
    running = threading.Thread(target=sandbox.control.release_test, kwargs={"window": 1.5})
    running.start()
    try:
        while not platform.events:
            threading.Event().wait(0.01)
        with pytest.raises(SandboxControlError) as info:
            sandbox.control.release_test()
        assert info.value.status == 409
    finally:
        running.join(timeout=30)
    assert len(sandbox.control.release_test_results()) == 1
