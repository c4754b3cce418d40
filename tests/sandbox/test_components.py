"""Several third-party platforms on one sandbox base URL, as WeChat serves them all
(docs/wechat/platforms.md#several-platforms): each its own tickets, tokens, codes, accounts, pushes and crypto;
requests routed by the token or the component_appid they carry."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.fixtures.sandbox import SECOND_COMPONENT, Sandbox
from tests.sandbox.conftest import COMPONENT_APPID, COMPONENT_SECRET, Received, Receiver, errcode
from tests.sandbox.test_command import ROOT, free_port
from wxplatform.wechat.crypto import CryptoError, MessageCrypto, parse_xml
from wxsandbox.app import create_app
from wxsandbox.config import SandboxConfig
from wxsandbox.control import SandboxControl, SandboxControlError
from wxsandbox.server import SandboxServer

SECOND_APPID = SECOND_COMPONENT["appid"]
SECOND_SECRET = SECOND_COMPONENT["appsecret"]
TOKEN_PATH = "/cgi-bin/component/api_component_token"
AUTHORIZER_TOKEN_PATH = "/cgi-bin/component/api_authorizer_token"
THIRD = {
    "appid": "wx0000sandbox2comp",
    "appsecret": "sandbox-component-secret-3",
    "token": "sandboxtoken3",
    "aes_key": "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG",
}


def crypto_of(appid: str) -> MessageCrypto:
    if appid == COMPONENT_APPID:
        config = SandboxConfig()
        return MessageCrypto(config.component_token, config.component_aes_key, config.component_appid)
    return MessageCrypto(SECOND_COMPONENT["token"], SECOND_COMPONENT["aes_key"], SECOND_APPID)


def open_push(appid: str, push: Received) -> dict[str, str]:
    """Verify and decrypt a push with that component's own token and key, as its platform will."""
    query = push.query
    return parse_xml(
        crypto_of(appid).decrypt_message(
            push.body, msg_signature=query["msg_signature"], timestamp=query["timestamp"], nonce=query["nonce"]
        )
    )


def post(base_url: str, path: str, body: dict[str, Any], **query: str) -> dict[str, Any]:
    answer = requests.post(f"{base_url}{path}", params=query, json=body, timeout=30)
    assert answer.status_code == 200
    data: dict[str, Any] = answer.json()
    return data


def component_token(base_url: str, control: SandboxControl, appid: str, secret: str) -> str:
    ticket = control.push_ticket()["ticket"]
    body = {"component_appid": appid, "component_appsecret": secret, "component_verify_ticket": ticket}
    token: str = post(base_url, TOKEN_PATH, body)["component_access_token"]
    return token


def draft_count(base_url: str, token: str) -> dict[str, Any]:
    data: dict[str, Any] = requests.get(
        f"{base_url}/cgi-bin/draft/count", params={"access_token": token}, timeout=30
    ).json()
    return data


def by_path(receiver: Receiver, path: str) -> list[Received]:
    return [r for r in receiver.received if r.path == path]


def test_each_component_pushes_to_its_own_event_url_with_its_own_crypto(
    sandbox: Sandbox, second_component: SandboxControl, receiver: Receiver
) -> None:
    sandbox.control.set_event_url(receiver.url)
    second_component.set_event_url(f"{receiver.base}/second/events")

    first = sandbox.control.push_ticket()["ticket"]
    second = second_component.push_ticket()["ticket"]

    [push_a] = by_path(receiver, "/wechat/component/events")
    [push_b] = by_path(receiver, "/second/events")
    assert parse_xml(push_b.body)["AppId"] == SECOND_APPID
    assert open_push(SECOND_APPID, push_b)["ComponentVerifyTicket"] == second
    assert open_push(COMPONENT_APPID, push_a)["ComponentVerifyTicket"] == first
    assert open_push(COMPONENT_APPID, push_a)["AppId"] == COMPONENT_APPID
    # The other platform's key cannot open it.
    with pytest.raises(CryptoError):
        open_push(COMPONENT_APPID, push_b)
    assert [p["fields"]["ComponentVerifyTicket"] for p in second_component.pushes()] == [second]
    assert [p["fields"]["ComponentVerifyTicket"] for p in sandbox.control.pushes()] == [first]
    assert (sandbox.control.ticket(), second_component.ticket()) == (first, second)


def test_tokens_and_pre_auth_codes_are_per_component(sandbox: Sandbox, second_component: SandboxControl) -> None:
    base = sandbox.base_url
    first_ticket = sandbox.control.push_ticket()["ticket"]
    second_ticket = second_component.push_ticket()["ticket"]

    def token_answer(appid: str, secret: str, ticket: str) -> dict[str, Any]:
        body = {"component_appid": appid, "component_appsecret": secret, "component_verify_ticket": ticket}
        return post(base, TOKEN_PATH, body)

    # Each component knows only its own secret and tickets.
    assert errcode(token_answer(SECOND_APPID, SECOND_SECRET, first_ticket)) == 61006
    assert errcode(token_answer(SECOND_APPID, COMPONENT_SECRET, second_ticket)) == 40125
    assert errcode(token_answer("wx0000nosuchcomp", SECOND_SECRET, second_ticket)) == 61011
    token_b = token_answer(SECOND_APPID, SECOND_SECRET, second_ticket)["component_access_token"]
    token_a = token_answer(COMPONENT_APPID, COMPONENT_SECRET, first_ticket)["component_access_token"]

    code_b = post(base, "/cgi-bin/component/api_create_preauthcode", {"component_appid": SECOND_APPID},
                  component_access_token=token_b)  # fmt: skip
    code_a = post(base, "/cgi-bin/component/api_create_preauthcode", {"component_appid": COMPONENT_APPID},
                  access_token=token_a)  # fmt: skip
    assert code_a["pre_auth_code"] != code_b["pre_auth_code"]
    assert second_component.component()["component_access_token"] == token_b
    assert sandbox.control.component()["component_access_token"] == token_a
    assert second_component.component()["quota_used"] == {
        TOKEN_PATH: 1,
        "/cgi-bin/component/api_create_preauthcode": 1,
    }
    # api_start_push_ticket names its component in the body: the new ticket is the second one's.
    started = post(base, "/cgi-bin/component/api_start_push_ticket",
                   {"component_appid": SECOND_APPID, "component_secret": SECOND_SECRET})  # fmt: skip
    assert started == {"errcode": 0, "errmsg": "ok"}
    pushes = second_component.wait_for_pushes(2)
    assert len(pushes) == 2
    assert len(sandbox.control.pushes()) == 1


def test_a_token_of_one_component_with_the_other_component_appid_is_invalid_component(
    sandbox: Sandbox, second_component: SandboxControl
) -> None:
    base = sandbox.base_url
    token_a = component_token(base, sandbox.control, COMPONENT_APPID, COMPONENT_SECRET)
    account = second_component.create_authorizer(authorized=True)
    calls = {
        "api_create_preauthcode": {},
        "api_query_auth": {"authorization_code": second_component.issue_auth_code(account["appid"])["auth_code"]},
        "api_authorizer_token": {
            "authorizer_appid": account["appid"],
            "authorizer_refresh_token": account["authorizer_refresh_token"],
        },
        "api_get_authorizer_info": {"authorizer_appid": account["appid"]},
        "api_get_authorizer_list": {"offset": 0, "count": 10},
    }
    for name, body in calls.items():
        answer = post(base, f"/cgi-bin/component/{name}", {"component_appid": SECOND_APPID, **body},
                      component_access_token=token_a)  # fmt: skip
        assert errcode(answer) == 61011, name
    # An account's token is no component token, whichever component issued it.
    answer = post(base, "/cgi-bin/component/api_create_preauthcode", {"component_appid": SECOND_APPID},
                  component_access_token=account["authorizer_access_token"])  # fmt: skip
    assert errcode(answer) == 61014
    # Nothing was spent or issued on either side.
    assert second_component.component()["quota_used"] == {}
    assert (
        second_component.get_authorizer(account["appid"])["authorizer_access_token"]
        == account["authorizer_access_token"]
    )


def test_the_same_account_authorizes_both_platforms_with_its_own_tokens_each(
    sandbox: Sandbox, second_component: SandboxControl, receiver: Receiver
) -> None:
    base = sandbox.base_url
    sandbox.control.set_event_url(receiver.url)
    second_component.set_event_url(f"{receiver.base}/second/events")
    second_component.set_message_url(f"{receiver.base}/second/$APPID$/messages")
    appid = "wx00000sameaccount"
    sandbox.control.create_authorizer(appid=appid, draft_count=3)
    # The appid exists under the first component; the second one has its own copy of the account.
    second_component.create_authorizer(appid=appid, draft_count=8)
    tokens = {
        COMPONENT_APPID: component_token(base, sandbox.control, COMPONENT_APPID, COMPONENT_SECRET),
        SECOND_APPID: component_token(base, second_component, SECOND_APPID, SECOND_SECRET),
    }
    controls = {COMPONENT_APPID: sandbox.control, SECOND_APPID: second_component}
    granted: dict[str, dict[str, Any]] = {}
    for component, control in controls.items():
        code = post(base, "/cgi-bin/component/api_create_preauthcode", {"component_appid": component},
                    component_access_token=tokens[component])["pre_auth_code"]  # fmt: skip
        consent = control.consent(code, appid)
        assert consent["push"]["ok"] is True
        answer = post(base, "/cgi-bin/component/api_query_auth",
                      {"component_appid": component, "authorization_code": consent["auth_code"]},
                      component_access_token=tokens[component])  # fmt: skip
        granted[component] = answer["authorization_info"]

    first, second = granted[COMPONENT_APPID], granted[SECOND_APPID]
    assert first["authorizer_refresh_token"] != second["authorizer_refresh_token"]
    assert first["authorizer_access_token"] != second["authorizer_access_token"]
    assert draft_count(base, first["authorizer_access_token"]) == {"total_count": 3}
    assert draft_count(base, second["authorizer_access_token"]) == {"total_count": 8}
    # Each authorized push went to its own platform, sealed with its own key.
    opened_b = [open_push(SECOND_APPID, p) for p in by_path(receiver, "/second/events")]
    opened_a = [open_push(COMPONENT_APPID, p) for p in by_path(receiver, "/wechat/component/events")]
    assert [(p["AppId"], p["InfoType"]) for p in opened_b] == [
        (SECOND_APPID, "component_verify_ticket"),
        (SECOND_APPID, "authorized"),
    ]
    assert [(p["AppId"], p["InfoType"]) for p in opened_a] == [
        (COMPONENT_APPID, "component_verify_ticket"),
        (COMPONENT_APPID, "authorized"),
    ]
    assert opened_b[1]["AuthorizerAppid"] == appid
    # A refresh token is good only with the component it was issued to.
    refresh = post(base, AUTHORIZER_TOKEN_PATH,
                   {"component_appid": SECOND_APPID, "authorizer_appid": appid,
                    "authorizer_refresh_token": first["authorizer_refresh_token"]},
                   component_access_token=tokens[SECOND_APPID])  # fmt: skip
    assert errcode(refresh) == 61023
    # A fan's message to the account reaches the second platform's message URL, in its crypto.
    sent = second_component.send_message(appid, content="你好")
    assert sent["answered"] is True
    [message] = by_path(receiver, f"/second/{appid}/messages")
    assert set(parse_xml(message.body)) == {"ToUserName", "Encrypt"}
    assert open_push(SECOND_APPID, message)["Content"] == "你好"
    assert sandbox.control.messages() == []
    # Revoking one authorization leaves the other.
    second_component.revoke(appid)
    assert draft_count(base, first["authorizer_access_token"]) == {"total_count": 3}
    assert errcode(draft_count(base, second["authorizer_access_token"])) == 61003


def test_the_authorization_page_serves_the_component_its_link_names(
    sandbox: Sandbox, second_component: SandboxControl, receiver: Receiver
) -> None:
    base = sandbox.base_url
    second_component.set_event_url(f"{receiver.base}/second/events")
    token_a = component_token(base, sandbox.control, COMPONENT_APPID, COMPONENT_SECRET)
    token_b = component_token(base, second_component, SECOND_APPID, SECOND_SECRET)
    code_a = post(base, "/cgi-bin/component/api_create_preauthcode", {"component_appid": COMPONENT_APPID},
                  component_access_token=token_a)["pre_auth_code"]  # fmt: skip
    code_b = post(base, "/cgi-bin/component/api_create_preauthcode", {"component_appid": SECOND_APPID},
                  component_access_token=token_b)["pre_auth_code"]  # fmt: skip
    account = second_component.create_authorizer(nickname="第二平台的账号")
    page = f"{base}/cgi-bin/componentloginpage"
    headers = {"Referer": "https://platform.example/authorize"}
    link = {"component_appid": SECOND_APPID, "pre_auth_code": code_b, "redirect_uri": "https://platform.example/cb"}

    shown = requests.get(page, params=link, headers=headers, timeout=30)
    # Another platform's pre_auth_code is unknown to this one.
    foreign = requests.get(page, params={**link, "pre_auth_code": code_a}, headers=headers, timeout=30)
    agreed = requests.post(page, data={**link, "authorizer_appid": account["appid"], "func_id": ["1", "11"]},
                           allow_redirects=False, timeout=30)  # fmt: skip

    assert SECOND_APPID in shown.text and "第二平台的账号" in shown.text
    assert 'data-reason="pre_auth_code"' in foreign.text
    assert agreed.status_code == 302
    assert second_component.get_authorizer(account["appid"])["authorized"] is True
    assert [p["info_type"] for p in second_component.wait_for_pushes(2)][-1] == "authorized"
    assert sandbox.control.list_authorizers() == []


def test_control_calls_address_one_component(sandbox: Sandbox, second_component: SandboxControl) -> None:
    second_component.update_config(event_url="https://second.example/events", auth_code_single_use=True)
    second_component.create_authorizer(appid="wx00000onlysecond")

    assert sandbox.control.get_config()["event_url"] is None
    assert sandbox.control.get_config()["auth_code_single_use"] is False
    assert second_component.get_config()["component_appid"] == SECOND_APPID
    assert sandbox.control.get_authorizer("wx00000onlysecond") is None
    assert [a["appid"] for a in second_component.list_authorizers()] == ["wx00000onlysecond"]
    assert sandbox.control.components() == [
        {"component_appid": COMPONENT_APPID, "default": True, "added_at_run_time": False, "event_url": None,
         "message_url": None, "platform_func_ids": [1, 11]},
        {"component_appid": SECOND_APPID, "default": False, "added_at_run_time": True,
         "event_url": "https://second.example/events", "message_url": None, "platform_func_ids": [1, 11]},
    ]  # fmt: skip
    with pytest.raises(SandboxControlError) as missing:
        sandbox.control.for_component("wx0000nosuchcomp").list_authorizers()
    assert missing.value.status == 404
    with pytest.raises(SandboxControlError) as twice:
        sandbox.control.add_component(SECOND_APPID, appsecret="x", token="t", aes_key=SECOND_COMPONENT["aes_key"])
    assert twice.value.status == 409


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"aes_key": "tooshort"}, "aes_key"),
        ({"appsecret": ""}, "appsecret is required"),
        ({"appid": "wx bad"}, "invalid appid"),
        ({"event_url": "ftp://nope"}, "event_url"),
        ({"message_url": "https://no-placeholder.example/"}, "$APPID$"),
        ({"colour": "blue"}, "unknown fields"),
    ],
)
def test_a_bad_component_definition_is_refused_and_adds_nothing(
    sandbox: Sandbox, change: dict[str, Any], message: str
) -> None:
    body = {**THIRD, **change}
    answer = requests.post(f"{sandbox.base_url}/sandbox/components", json=body, timeout=30)
    assert answer.status_code == 400
    assert message in answer.json()["error"]
    assert [c["component_appid"] for c in sandbox.control.components()] == [COMPONENT_APPID]


def test_counters_per_component_and_in_total(sandbox: Sandbox, second_component: SandboxControl) -> None:
    base = sandbox.base_url
    component_token(base, sandbox.control, COMPONENT_APPID, COMPONENT_SECRET)
    token_b = component_token(base, second_component, SECOND_APPID, SECOND_SECRET)
    account = second_component.create_authorizer(authorized=True, draft_count=1)
    post(base, AUTHORIZER_TOKEN_PATH,
         {"component_appid": SECOND_APPID, "authorizer_appid": account["appid"],
          "authorizer_refresh_token": account["authorizer_refresh_token"]},
         component_access_token=token_b)  # fmt: skip
    draft_count(base, account["authorizer_access_token"])

    first, second = sandbox.control.counters(), second_component.counters()
    totals = sandbox.control.counters_total()

    assert first["endpoints"] == {TOKEN_PATH: {"calls": 1, "ok": 1, "errors": {}}}
    assert second["endpoints"][AUTHORIZER_TOKEN_PATH] == {"calls": 1, "ok": 1, "errors": {}}
    assert second["draft_count_calls"] == {account["appid"]: 1}
    assert totals["components"] == {COMPONENT_APPID: first, SECOND_APPID: second}
    assert totals["total"]["endpoints"][TOKEN_PATH] == {"calls": 2, "ok": 2, "errors": {}}
    assert totals["total"]["authorizer_token_calls"] == {account["appid"]: 1}

    sandbox.control.reset_all_counters()
    zeroed = sandbox.control.counters_total()
    assert zeroed["total"] == {
        "endpoints": {},
        "faults_injected": {},
        "draft_count_calls": {},
        "authorizer_token_calls": {},
    }
    assert zeroed["components"][SECOND_APPID] == zeroed["total"]


def test_faults_belong_to_one_component(sandbox: Sandbox, second_component: SandboxControl) -> None:
    base = sandbox.base_url
    first = sandbox.control.create_authorizer(authorized=True, draft_count=4)
    second = second_component.create_authorizer(authorized=True, draft_count=5)
    second_component.set_faults(rate=1.0, kinds=[-1])

    assert errcode(draft_count(base, second["authorizer_access_token"])) == -1
    assert draft_count(base, first["authorizer_access_token"]) == {"total_count": 4}
    assert second_component.counters()["faults_injected"] == {"-1": 1}
    assert sandbox.control.counters()["faults_injected"] == {}


def test_reset_resets_every_component_and_drops_the_added_ones(
    sandbox: Sandbox, second_component: SandboxControl
) -> None:
    second_component.create_authorizer(authorized=True)
    sandbox.control.create_authorizer(authorized=True)

    second_component.reset()

    assert [c["component_appid"] for c in sandbox.control.components()] == [COMPONENT_APPID]
    assert sandbox.control.list_authorizers() == []
    with pytest.raises(SandboxControlError) as gone:
        second_component.list_authorizers()
    assert gone.value.status == 404


def test_configured_components_survive_reset_and_restart_with_their_state(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    config = SandboxConfig(
        ticket_interval=0, seed=5, state_file=str(path),
        components=[{**SECOND_COMPONENT, "event_url": "https://second.example/events"}],
    )  # fmt: skip

    with SandboxServer(config) as server:
        control = SandboxControl(server.base_url)
        second = control.for_component(SECOND_APPID)
        third = control.add_component(
            THIRD["appid"], appsecret=THIRD["appsecret"], token=THIRD["token"], aes_key=THIRD["aes_key"]
        )
        accounts = {
            COMPONENT_APPID: control.create_authorizer(appid="wx00000sameaccount", authorized=True, draft_count=1),
            SECOND_APPID: second.create_authorizer(appid="wx00000sameaccount", authorized=True, draft_count=2),
            THIRD["appid"]: third.create_authorizer(authorized=True, draft_count=3),
        }
        token_b = component_token(server.base_url, second, SECOND_APPID, SECOND_SECRET)
    # Seeded alike, the components still drew different tokens.
    assert len({a["authorizer_access_token"] for a in accounts.values()}) == 3

    with SandboxServer(config) as server:
        control = SandboxControl(server.base_url)
        counted = {appid: draft_count(server.base_url, a["authorizer_access_token"]) for appid, a in accounts.items()}
        listed = [(c["component_appid"], c["added_at_run_time"]) for c in control.components()]
        pre_auth = post(server.base_url, "/cgi-bin/component/api_create_preauthcode",
                        {"component_appid": SECOND_APPID}, component_access_token=token_b)  # fmt: skip
        control.reset()
        after_reset = [c["component_appid"] for c in control.components()]
        second_accounts = control.for_component(SECOND_APPID).list_authorizers()
        second_config = control.for_component(SECOND_APPID).get_config()

    assert counted == {
        COMPONENT_APPID: {"total_count": 1},
        SECOND_APPID: {"total_count": 2},
        THIRD["appid"]: {"total_count": 3},
    }
    assert listed == [(COMPONENT_APPID, False), (SECOND_APPID, False), (THIRD["appid"], True)]
    assert "pre_auth_code" in pre_auth
    assert after_reset == [COMPONENT_APPID, SECOND_APPID]
    assert second_accounts == []
    assert second_config["event_url"] == "https://second.example/events"
    assert not path.exists()


def test_a_bad_configured_component_stops_the_start() -> None:
    with pytest.raises(ValueError, match="wx0000sandbox1comp"):
        create_app(SandboxConfig(components=[{**SECOND_COMPONENT, "aes_key": "short"}]))
    with pytest.raises(ValueError, match="already exists"):
        create_app(SandboxConfig(components=[SECOND_COMPONENT, SECOND_COMPONENT]))


def test_tokenless_calls_find_their_component_by_the_body(sandbox: Sandbox, second_component: SandboxControl) -> None:
    base = sandbox.base_url
    component_token(base, second_component, SECOND_APPID, SECOND_SECRET)
    assert second_component.component()["quota_used"] == {TOKEN_PATH: 1}

    cleared = post(base, "/cgi-bin/component/clear_quota/v2",
                   {"component_appid": SECOND_APPID, "appsecret": SECOND_SECRET})  # fmt: skip
    refused = post(base, "/cgi-bin/component/clear_quota/v2",
                   {"component_appid": SECOND_APPID, "appsecret": COMPONENT_SECRET})  # fmt: skip

    assert cleared == {"errcode": 0, "errmsg": "ok"}
    assert errcode(refused) == 40125
    assert second_component.component()["quota_used"] == {}
    assert second_component.component()["quota_clears"] == 1
    assert sandbox.control.component()["quota_clears"] == 0


def test_the_release_test_of_a_component_talks_to_that_platform(
    sandbox: Sandbox, second_component: SandboxControl, receiver: Receiver
) -> None:
    second_component.set_event_url(f"{receiver.base}/second/events")

    result = second_component.release_test(group=0, window=0.1)

    rows = {row["step"]: row["result"] for row in result["rows"]}
    assert (rows["ticket"], rows["authorized"], rows["unauthorized"]) == ("pass", "pass", "pass")
    assert rows["query_auth"] == "fail"  # no platform behind the URL calls api_query_auth
    assert [open_push(SECOND_APPID, p)["InfoType"] for p in by_path(receiver, "/second/events")] == [
        "component_verify_ticket",
        "authorized",
        "unauthorized",
    ]
    assert sandbox.control.pushes() == []
    assert sandbox.control.release_test_results() == []
    assert len(second_component.release_test_results()) == 1


def test_the_command_line_takes_further_components(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "wxsandbox", "--port", str(port), "--ticket-interval", "0",
         "--component", json.dumps(SECOND_COMPONENT)],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        control = SandboxControl(f"http://127.0.0.1:{port}")
        control.wait_until_ready(timeout=30)
        listed = [c["component_appid"] for c in control.components()]
        token = component_token(control.base_url, control.for_component(SECOND_APPID), SECOND_APPID, SECOND_SECRET)
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)

    assert listed == [COMPONENT_APPID, SECOND_APPID]
    assert token
    assert f"component {COMPONENT_APPID}, {SECOND_APPID}," in output
    assert SECOND_SECRET not in output
    bad = subprocess.run(
        [sys.executable, "-m", "wxsandbox", "--port", str(free_port()),
         "--component", json.dumps({**SECOND_COMPONENT, "aes_key": "short"})],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 1
    assert "sandbox component 'wx0000sandbox1comp': aes_key" in bad.stderr
    assert SECOND_SECRET not in bad.stderr
