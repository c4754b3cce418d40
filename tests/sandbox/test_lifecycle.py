"""Account lifecycle without pushes (docs/wechat/lifecycle.md): profile, status, kind and sets change silently;
authorizations can
vanish silently; api_get_authorizer_info and api_get_authorizer_list are how the platform finds out."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.fixtures.sandbox import Sandbox
from tests.sandbox.conftest import Receiver, WeChat, errcode
from wxsandbox.control import SandboxControlError

BLOCKS = ("MiniProgramInfo", "channels_info", "store_info", "talent_info", "supplier_info")


def info(wechat: WeChat, token: str, appid: str) -> dict[str, Any]:
    return wechat.component("api_get_authorizer_info", {"authorizer_appid": appid}, token)


def listing(wechat: WeChat, token: str, offset: int, count: int) -> dict[str, Any]:
    return wechat.component("api_get_authorizer_list", {"offset": offset, "count": count}, token)


def test_profile_changes_show_in_authorizer_info_without_a_push(
    sandbox: Sandbox, wechat: WeChat, receiver: Receiver
) -> None:
    token = wechat.component_token()
    sandbox.control.set_event_url(receiver.url)
    account = sandbox.control.create_authorizer(authorized=True, kind="subscription", verify_type=-1)
    sandbox.control.update_authorizer(
        account["appid"],
        nickname="新名字",
        head_img="http://wx.qlogo.cn/mmopen/new/0",
        principal_name="新主体有限公司",
        alias="newalias",
        verify_type=0,
        service_type=10,
        basic_config={"is_phone_configured": False, "is_email_configured": True},
    )

    got = info(wechat, token, account["appid"])["authorizer_info"]

    assert {k: got[k] for k in ("nick_name", "head_img", "principal_name", "alias")} == {
        "nick_name": "新名字",
        "head_img": "http://wx.qlogo.cn/mmopen/new/0",
        "principal_name": "新主体有限公司",
        "alias": "newalias",
    }
    # An undocumented service type, as field reports show (docs/wechat/lifecycle.md).
    assert (got["verify_type_info"], got["service_type_info"]) == ({"id": 0}, {"id": 10})
    assert got["basic_config"] == {"is_phone_configured": False, "is_email_configured": True}
    assert not any(block in got for block in BLOCKS)
    assert receiver.received == []
    assert [p["info_type"] for p in sandbox.control.pushes()] == ["component_verify_ticket"]


@pytest.mark.parametrize("status", [1, 14, 16, 18, 19])
def test_account_status_is_reported(sandbox: Sandbox, wechat: WeChat, status: int) -> None:
    token = wechat.component_token()
    account = sandbox.control.create_authorizer(authorized=True)
    sandbox.control.update_authorizer(account["appid"], account_status=status)
    assert info(wechat, token, account["appid"])["authorizer_info"]["account_status"] == status


def test_an_unknown_status_is_refused(sandbox: Sandbox) -> None:
    account = sandbox.control.create_authorizer(authorized=True)
    with pytest.raises(SandboxControlError) as refused:
        sandbox.control.update_authorizer(account["appid"], account_status=2, nickname="changed")
    assert refused.value.status == 400
    view = sandbox.control.get_authorizer(account["appid"])
    assert view is not None and (view["account_status"], view["nickname"]) == (1, account["nickname"])


@pytest.mark.parametrize(
    ("kind", "block"),
    [
        ("channels", "channels_info"),
        ("store", "store_info"),
        ("talent", "talent_info"),
        ("supplier", "supplier_info"),
        ("mini_program", "MiniProgramInfo"),
    ],
)
def test_an_official_account_can_turn_into_another_kind(
    sandbox: Sandbox, wechat: WeChat, kind: str, block: str
) -> None:
    token = wechat.component_token()
    account = sandbox.control.create_authorizer(authorized=True, kind="service", draft_count=3)
    access = account["authorizer_access_token"]
    assert wechat.draft_count(access) == {"total_count": 3}

    sandbox.control.update_authorizer(account["appid"], kind=kind)
    got = info(wechat, token, account["appid"])["authorizer_info"]

    # Exactly one block, and its presence is what tells the kind: service_type_info alone does not
    # (docs/wechat/endpoints.md#api_get_authorizer_info).
    assert [b for b in BLOCKS if b in got] == [block]
    assert got["service_type_info"] == {"id": 0}
    assert errcode(wechat.draft_count(access)) == 48001


def test_the_blocks_content_can_be_set(sandbox: Sandbox, wechat: WeChat) -> None:
    token = wechat.component_token()
    account = sandbox.control.create_authorizer(authorized=True, kind="channels", kind_info={"finder_id": "sph1"})
    assert info(wechat, token, account["appid"])["authorizer_info"]["channels_info"] == {"finder_id": "sph1"}
    sandbox.control.update_authorizer(account["appid"], kind="store", kind_info={"store_type": 1})
    got = info(wechat, token, account["appid"])["authorizer_info"]
    assert (got["store_info"], "channels_info" in got) == ({"store_type": 1}, False)


def test_granted_sets_change_without_updateauthorized(sandbox: Sandbox, wechat: WeChat, receiver: Receiver) -> None:
    token = wechat.component_token()
    sandbox.control.set_event_url(receiver.url)
    account = sandbox.control.create_authorizer(authorized=True, func_ids=[1, 11])
    sandbox.control.update_authorizer(account["appid"], func_ids=[1])
    func_info = info(wechat, token, account["appid"])["authorization_info"]["func_info"]
    assert [f["funcscope_category"]["id"] for f in func_info] == [1]
    assert errcode(wechat.draft_count(account["authorizer_access_token"])) == 61007
    assert receiver.received == []


def test_a_silently_dropped_authorization(sandbox: Sandbox, wechat: WeChat, receiver: Receiver) -> None:
    token = wechat.component_token()
    sandbox.control.set_event_url(receiver.url)
    kept = sandbox.control.create_authorizer(authorized=True)
    dropped = sandbox.control.create_authorizer(authorized=True)

    result = sandbox.control.revoke(dropped["appid"])

    refresh = {"authorizer_appid": dropped["appid"], "authorizer_refresh_token": dropped["authorizer_refresh_token"]}
    assert result["push"] is None
    assert errcode(info(wechat, token, dropped["appid"])) == 61003
    assert errcode(wechat.component("api_authorizer_token", refresh, token)) == 61003
    assert errcode(wechat.draft_count(dropped["authorizer_access_token"])) == 61003
    page = listing(wechat, token, 0, 500)
    assert (page["total_count"], [i["authorizer_appid"] for i in page["list"]]) == (1, [kept["appid"]])
    assert receiver.received == []


def test_the_authorizer_list_pages_by_at_most_500(sandbox: Sandbox, wechat: WeChat) -> None:
    token = wechat.component_token()
    created = sandbox.control.bulk_create_authorizers(1203, omit_refresh_token_every=3)

    pages = [listing(wechat, token, offset, 500) for offset in (0, 500, 1000, 1500)]

    assert [p["total_count"] for p in pages] == [1203] * 4
    assert [len(p["list"]) for p in pages] == [500, 500, 203, 0]
    items = [item for page in pages for item in page["list"]]
    assert [i["authorizer_appid"] for i in items] == [a["appid"] for a in created]
    missing = [index for index, item in enumerate(items) if "refresh_token" not in item]
    assert missing == list(range(2, 1203, 3))
    assert items[0]["refresh_token"] == created[0]["authorizer_refresh_token"]
    assert all(isinstance(i["auth_time"], int) for i in items)
    for count in (0, 501):
        assert errcode(listing(wechat, token, 0, count)) == 40097


def test_ten_thousand_authorizers_are_created_and_listed_quickly(sandbox: Sandbox, wechat: WeChat) -> None:
    started = time.monotonic()
    created = sandbox.control.bulk_create_authorizers(10_000, draft_count=(0, 9))
    seeded = time.monotonic() - started
    token = wechat.component_token()
    appids = [
        item["authorizer_appid"]
        for offset in range(0, 10_000, 500)
        for item in listing(wechat, token, offset, 500)["list"]
    ]
    # About 1.5 s on the shared 2-core machine; the bound leaves room for a loaded one.
    assert seeded < 15
    assert appids == [a["appid"] for a in created]


def test_wechats_test_accounts_are_listed_only_on_request(sandbox: Sandbox) -> None:
    mine = sandbox.control.create_authorizer()
    assert [a["appid"] for a in sandbox.control.list_authorizers()] == [mine["appid"]]
    everything = sandbox.control.list_authorizers(include_test_accounts=True)
    test_accounts = [a for a in everything if a["test_account"]]
    assert len(test_accounts) == 10
    assert {a["authorized"] for a in test_accounts} == {False}
