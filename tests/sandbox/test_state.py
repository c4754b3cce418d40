"""The sandbox's WeChat rules, checked against a manual clock (no HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from wxsandbox.config import SandboxConfig
from wxsandbox.state import (
    Authorizer,
    ControlError,
    FaultPlan,
    ManualClock,
    SandboxState,
    WeChatFault,
)

APPID = "wx0000sandbox0comp"
SECRET = "sandbox-component-secret"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def state(clock: ManualClock) -> SandboxState:
    return SandboxState(SandboxConfig(seed=1), clock=clock)


def errcode_of(call: object, *args: object, **kwargs: object) -> int:
    assert callable(call)
    with pytest.raises(WeChatFault) as info:
        call(*args, **kwargs)
    return info.value.errcode


def component_token(state: SandboxState) -> str:
    ticket = str(state.issue_ticket()["ComponentVerifyTicket"])
    return str(state.component_access_token(APPID, SECRET, ticket)["component_access_token"])


def onboard(state: SandboxState, **kwargs: object) -> tuple[Authorizer, str]:
    """An authorized account and its current access token."""
    account = state.create_authorizer(authorized=True, **kwargs)  # type: ignore[arg-type]
    assert account.current_token is not None
    return account, account.current_token


# --- tickets and the component token ------------------------------------------------------------------


def test_component_token_needs_a_ticket_that_was_pushed(state: SandboxState) -> None:
    assert errcode_of(state.component_access_token, APPID, SECRET, None) == 61006
    assert errcode_of(state.component_access_token, APPID, SECRET, "ticket@@@never-issued") == 61006


def test_component_token_refuses_a_ticket_older_than_twelve_hours(state: SandboxState, clock: ManualClock) -> None:
    ticket = str(state.issue_ticket()["ComponentVerifyTicket"])
    clock.advance(43200 - 1)
    assert state.component_access_token(APPID, SECRET, ticket)["expires_in"] == 7200
    clock.advance(1)
    assert errcode_of(state.component_access_token, APPID, SECRET, ticket) == 61005


def test_component_token_checks_appid_then_secret(state: SandboxState) -> None:
    ticket = str(state.issue_ticket()["ComponentVerifyTicket"])
    assert errcode_of(state.component_access_token, None, SECRET, ticket) == 41018
    assert errcode_of(state.component_access_token, "wxsomeoneelse", SECRET, ticket) == 61011
    assert errcode_of(state.component_access_token, APPID, None, ticket) == 41004
    assert errcode_of(state.component_access_token, APPID, "wrong", ticket) == 40125
    assert state.component_tokens == {}


def test_an_older_ticket_still_works_within_its_lifetime(state: SandboxState) -> None:
    first = str(state.issue_ticket()["ComponentVerifyTicket"])
    second = str(state.issue_ticket()["ComponentVerifyTicket"])
    assert first != second
    assert state.current_ticket == second
    assert "component_access_token" in state.component_access_token(APPID, SECRET, first)


def test_ticket_push_fields_follow_the_protocol(state: SandboxState, clock: ManualClock) -> None:
    fields = state.issue_ticket()
    assert fields == {
        "AppId": APPID,
        "CreateTime": int(clock.now),
        "InfoType": "component_verify_ticket",
        "ComponentVerifyTicket": state.current_ticket,
    }
    assert str(fields["ComponentVerifyTicket"]).startswith("ticket@@@")


def test_component_token_expires_after_its_ttl(state: SandboxState, clock: ManualClock) -> None:
    token = component_token(state)
    clock.advance(7199)
    state.check_component_token(token)
    clock.advance(1)
    assert errcode_of(state.check_component_token, token) == 42001


def test_old_component_token_works_five_minutes_after_a_refresh(state: SandboxState, clock: ManualClock) -> None:
    old = component_token(state)
    new = component_token(state)
    clock.advance(299)
    state.check_component_token(old)
    clock.advance(1)
    assert errcode_of(state.check_component_token, old) == 40001
    state.check_component_token(new)


def test_grace_never_extends_a_token_past_its_own_expiry(state: SandboxState, clock: ManualClock) -> None:
    old = component_token(state)
    clock.advance(7100)
    component_token(state)
    clock.advance(99)
    state.check_component_token(old)
    clock.advance(1)
    assert errcode_of(state.check_component_token, old) == 42001


def test_missing_or_foreign_component_token(state: SandboxState) -> None:
    _, access_token = onboard(state)
    assert errcode_of(state.check_component_token, None) == 41001
    assert errcode_of(state.check_component_token, "") == 41001
    assert errcode_of(state.check_component_token, "made-up") == 40001
    assert errcode_of(state.check_component_token, access_token) == 61014


def test_expire_component_tokens_makes_them_answer_42001(state: SandboxState) -> None:
    token = component_token(state)
    assert state.expire_component_tokens() == 1
    assert errcode_of(state.check_component_token, token) == 42001


# --- pre-auth codes, consent, authorization codes -----------------------------------------------------


def test_pre_auth_code_is_single_use(state: SandboxState) -> None:
    code = state.create_pre_auth_code(component_token(state), APPID)["pre_auth_code"]
    first = state.create_authorizer()
    second = state.create_authorizer()
    state.consent(pre_auth_code=code, authorizer_appid=first.appid)
    with pytest.raises(ControlError) as info:
        state.consent(pre_auth_code=code, authorizer_appid=second.appid)
    assert info.value.status == 409
    assert second.authorized is False


def test_pre_auth_code_expires(state: SandboxState, clock: ManualClock) -> None:
    answer = state.create_pre_auth_code(component_token(state), APPID)
    assert answer["expires_in"] == 600
    account = state.create_authorizer()
    clock.advance(600)
    with pytest.raises(ControlError) as info:
        state.consent(pre_auth_code=answer["pre_auth_code"], authorizer_appid=account.appid)
    assert info.value.status == 410
    assert account.authorized is False


def test_pre_auth_code_needs_a_valid_component_token(state: SandboxState) -> None:
    assert errcode_of(state.create_pre_auth_code, "made-up", APPID) == 40001
    assert errcode_of(state.create_pre_auth_code, component_token(state), "wxother") == 61011
    assert state.pre_auth_codes == {}


def test_consent_announces_authorized_with_the_protocol_fields(state: SandboxState, clock: ManualClock) -> None:
    code = state.create_pre_auth_code(component_token(state), APPID)["pre_auth_code"]
    account = state.create_authorizer(appid="wx1111111111111111", func_ids=[1, 11])
    consent = state.consent(pre_auth_code=code, authorizer_appid=account.appid, func_ids=[11, 2])
    assert consent.info_type == "authorized"
    assert consent.expires_in == 600
    assert consent.event == {
        "AppId": APPID,
        "CreateTime": int(clock.now),
        "InfoType": "authorized",
        "AuthorizerAppid": "wx1111111111111111",
        "AuthorizationCode": consent.auth_code,
        "AuthorizationCodeExpiredTime": int(clock.now) + 600,
        "PreAuthCode": code,
    }
    assert account.authorized is True
    assert account.func_ids == [2, 11]


def test_consent_of_an_authorized_account_is_updateauthorized(state: SandboxState) -> None:
    account, _ = onboard(state)
    code = state.create_pre_auth_code(component_token(state), APPID)["pre_auth_code"]
    consent = state.consent(pre_auth_code=code, authorizer_appid=account.appid)
    assert consent.info_type == "updateauthorized"
    assert consent.event["InfoType"] == "updateauthorized"


def test_consent_respects_auth_type_and_biz_appid(state: SandboxState) -> None:
    token = component_token(state)
    mini = state.create_authorizer(kind="mini_program")
    official = state.create_authorizer(kind="subscription")
    for auth_type, account in ((1, mini), (2, official)):
        code = state.create_pre_auth_code(token, APPID)["pre_auth_code"]
        with pytest.raises(ControlError):
            state.consent(pre_auth_code=code, authorizer_appid=account.appid, auth_type=auth_type)
        assert state.pre_auth_codes[code].used is False
    code = state.create_pre_auth_code(token, APPID)["pre_auth_code"]
    with pytest.raises(ControlError):
        state.consent(pre_auth_code=code, authorizer_appid=official.appid, biz_appid=mini.appid)
    assert mini.authorized is False
    assert official.authorized is False


def test_query_auth_returns_tokens_and_func_info(state: SandboxState) -> None:
    token = component_token(state)
    code = state.create_pre_auth_code(token, APPID)["pre_auth_code"]
    account = state.create_authorizer(func_ids=[1, 11])
    consent = state.consent(pre_auth_code=code, authorizer_appid=account.appid)
    info = state.query_auth(token, APPID, consent.auth_code)["authorization_info"]
    assert info == {
        "authorizer_appid": account.appid,
        "authorizer_access_token": account.current_token,
        "expires_in": 7200,
        "authorizer_refresh_token": account.refresh_token,
        "func_info": [
            {"funcscope_category": {"id": 1}},
            {
                "funcscope_category": {"id": 11},
                "confirm_info": {"need_confirm": 0, "already_confirm": 0, "can_confirm": 0},
            },
        ],
    }


def test_authorization_code_expires(state: SandboxState, clock: ManualClock) -> None:
    token = component_token(state)
    account = state.create_authorizer()
    code = state.issue_auth_code(account.appid).auth_code
    clock.advance(600)
    assert errcode_of(state.query_auth, token, APPID, code) == 61010
    assert errcode_of(state.query_auth, token, APPID, "queryauthcode@@@unknown") == 61009


def test_authorization_code_can_be_reused_unless_configured_single_use(state: SandboxState, clock: ManualClock) -> None:
    token = component_token(state)
    account = state.create_authorizer()
    code = state.issue_auth_code(account.appid).auth_code
    first = state.query_auth(token, APPID, code)["authorization_info"]
    second = state.query_auth(token, APPID, code)["authorization_info"]
    assert second["authorizer_refresh_token"] == first["authorizer_refresh_token"]

    single = SandboxState(SandboxConfig(auth_code_single_use=True), clock=clock)
    single_token = component_token(single)
    single_account = single.create_authorizer()
    single_code = single.issue_auth_code(single_account.appid).auth_code
    single.query_auth(single_token, APPID, single_code)
    assert errcode_of(single.query_auth, single_token, APPID, single_code) == 61009


def test_reauthorization_voids_the_previous_code_and_refresh_token(state: SandboxState) -> None:
    token = component_token(state)
    account = state.create_authorizer()
    old_code = state.issue_auth_code(account.appid).auth_code
    old_refresh = state.query_auth(token, APPID, old_code)["authorization_info"]["authorizer_refresh_token"]

    pac = state.create_pre_auth_code(token, APPID)["pre_auth_code"]
    new_code = state.consent(pre_auth_code=pac, authorizer_appid=account.appid).auth_code
    new_refresh = state.query_auth(token, APPID, new_code)["authorization_info"]["authorizer_refresh_token"]

    assert new_refresh != old_refresh
    assert errcode_of(state.authorizer_token, token, APPID, account.appid, old_refresh) == 61023
    assert errcode_of(state.query_auth, token, APPID, old_code) == 61009
    assert state.authorizer_token(token, APPID, account.appid, new_refresh)["authorizer_refresh_token"] == new_refresh


def test_update_authorization_changes_sets_and_rotates_the_refresh_token(state: SandboxState) -> None:
    account, _ = onboard(state, func_ids=[1])
    before = account.refresh_token
    consent = state.update_authorization(account.appid, func_ids=[1, 11])
    assert consent.info_type == "updateauthorized"
    assert consent.event["AuthorizerAppid"] == account.appid
    assert str(consent.event["PreAuthCode"]).startswith("preauthcode@@@")
    assert account.func_ids == [1, 11]
    assert account.refresh_token != before

    kept = account.refresh_token
    state.update_authorization(account.appid, rotate_refresh_token=False)
    assert account.refresh_token == kept


def test_issue_auth_code_authorizes_an_account_that_was_not(state: SandboxState) -> None:
    account = state.create_authorizer()
    consent = state.issue_auth_code(account.appid)
    assert consent.info_type == "authorized"
    assert account.authorized is True
    refresh = account.refresh_token
    assert state.issue_auth_code(account.appid).info_type == "updateauthorized"
    assert account.refresh_token == refresh


# --- authorizer tokens --------------------------------------------------------------------------------


def test_refresh_returns_a_new_access_token_and_the_same_refresh_token(state: SandboxState) -> None:
    token = component_token(state)
    account, old_access = onboard(state)
    answer = state.authorizer_token(token, APPID, account.appid, str(account.refresh_token))
    assert answer == {
        "authorizer_access_token": account.current_token,
        "expires_in": 7200,
        "authorizer_refresh_token": account.refresh_token,
    }
    assert answer["authorizer_access_token"] != old_access


def test_old_access_token_works_five_minutes_after_a_refresh(state: SandboxState, clock: ManualClock) -> None:
    token = component_token(state)
    account, old_access = onboard(state, draft_count=4)
    state.authorizer_token(token, APPID, account.appid, str(account.refresh_token))
    clock.advance(299)
    assert state.draft_count(old_access) == {"total_count": 4}
    clock.advance(1)
    assert errcode_of(state.draft_count, old_access) == 40001
    assert state.draft_count(account.current_token) == {"total_count": 4}


def test_access_token_expires_after_its_ttl(state: SandboxState, clock: ManualClock) -> None:
    _, access = onboard(state)
    clock.advance(7199)
    state.draft_count(access)
    clock.advance(1)
    assert errcode_of(state.draft_count, access) == 42001


def test_refresh_needs_the_current_refresh_token_of_an_authorized_account(state: SandboxState) -> None:
    token = component_token(state)
    account, _ = onboard(state)
    assert errcode_of(state.authorizer_token, token, APPID, account.appid, "refreshtoken@@@wrong") == 61023
    assert errcode_of(state.authorizer_token, token, APPID, account.appid, "") == 61023
    assert errcode_of(state.authorizer_token, token, APPID, "wxnobody", "x") == 61003
    refresh = str(account.refresh_token)
    state.revoke(account.appid)
    assert errcode_of(state.authorizer_token, token, APPID, account.appid, refresh) == 61003
    assert state.counters.authorizer_token_calls == {account.appid: 3, "wxnobody": 1}


def test_expire_and_invalidate_authorizer_tokens(state: SandboxState) -> None:
    first, first_access = onboard(state)
    second, second_access = onboard(state)
    assert state.expire_authorizer_tokens(first.appid) == 1
    assert state.invalidate_authorizer_tokens(second.appid) == 1
    assert errcode_of(state.draft_count, first_access) == 42001
    assert errcode_of(state.draft_count, second_access) == 40001


# --- draft/count and quotas ---------------------------------------------------------------------------


def test_draft_count_answers_without_errcode(state: SandboxState) -> None:
    _, access = onboard(state, draft_count=15)
    assert state.draft_count(access) == {"total_count": 15}
    assert state.counters.draft_count_calls == {state.authorizer_tokens[access].owner: 1}


@pytest.mark.parametrize(
    ("kind", "func_ids", "errcode"),
    [
        ("subscription", [1, 11], None),
        ("service", [100], None),
        ("service", [1, 2, 7], 61007),
        ("mini_program", [1, 11], 48001),
        ("mini_program", [1, 2], 48001),
    ],
)
def test_draft_count_needs_an_official_account_with_set_11_or_100(
    state: SandboxState, kind: str, func_ids: list[int], errcode: int | None
) -> None:
    """61007 when the account did not grant set 11 or 100 to this platform, 48001 when the account itself may not
    use the API, whatever it granted (docs/wechat/permissions.md#missing-permission-errors)."""
    _, access = onboard(state, kind=kind, func_ids=func_ids, draft_count=2)
    if errcode is None:
        assert state.draft_count(access) == {"total_count": 2}
    else:
        assert errcode_of(state.draft_count, access) == errcode


def test_draft_count_token_errors(state: SandboxState) -> None:
    assert errcode_of(state.draft_count, None) == 41001
    assert errcode_of(state.draft_count, "") == 41001
    assert errcode_of(state.draft_count, "not-a-token") == 40001
    assert errcode_of(state.draft_count, component_token(state)) == 40001


def test_draft_count_of_a_revoked_account_is_61003(state: SandboxState) -> None:
    account, access = onboard(state)
    state.revoke(account.appid)
    assert errcode_of(state.draft_count, access) == 61003


def test_draft_count_of_a_banned_account_is_50002(state: SandboxState) -> None:
    account, access = onboard(state)
    state.update_authorizer(account.appid, {"account_status": 16})
    assert errcode_of(state.draft_count, access) == 50002


def test_quota_is_per_account(state: SandboxState) -> None:
    state.config.daily_quota = 3
    _, first_access = onboard(state)
    _, second_access = onboard(state)
    for _ in range(3):
        state.draft_count(first_access)
    assert errcode_of(state.draft_count, first_access) == 45009
    assert state.draft_count(second_access) == {"total_count": 0}
    assert state.quota_get(first_access, "/cgi-bin/draft/count")["quota"] == {"daily_limit": 3, "used": 3, "remain": 0}


def test_quota_day_starts_at_midnight_in_shanghai(clock: ManualClock) -> None:
    # 15:59:59 UTC is 23:59:59 in Asia/Shanghai.
    clock.now = datetime(2026, 3, 1, 15, 59, 59, tzinfo=UTC).timestamp()
    state = SandboxState(SandboxConfig(daily_quota=1), clock=clock)
    _, access = onboard(state)
    state.draft_count(access)
    assert errcode_of(state.draft_count, access) == 45009
    clock.advance(1)
    assert state.draft_count(access) == {"total_count": 0}


def test_set_quota_used_and_reset_quotas(state: SandboxState) -> None:
    account, access = onboard(state)
    state.set_quota_used(account.appid, 1000)
    assert errcode_of(state.draft_count, access) == 45009
    state.reset_quotas()
    assert state.draft_count(access) == {"total_count": 0}
    assert state.quota_get(access, "/cgi-bin/draft/count")["quota"] == {
        "daily_limit": 1000,
        "used": 1,
        "remain": 999,
    }


def test_quota_get_knows_the_draft_paths_only(state: SandboxState) -> None:
    account, access = onboard(state)
    assert state.quota_get(access, "/cgi-bin/draft/get") == {
        "errcode": 0,
        "errmsg": "ok",
        "quota": {"daily_limit": 500, "used": 0, "remain": 500},
        "rate_limit": {"call_count": 0, "refresh_second": 0},
        "component_rate_limit": {"call_count": 0, "refresh_second": 0},
    }
    assert errcode_of(state.quota_get, access, "/cgi-bin/nothing") == 76021
    state.revoke(account.appid)
    assert errcode_of(state.quota_get, access, "/cgi-bin/draft/count") == 61003


# --- authorizer info and list -------------------------------------------------------------------------


def test_authorizer_info_tells_mini_programs_apart(state: SandboxState) -> None:
    token = component_token(state)
    service, _ = onboard(state, kind="service", verify_type=0)
    mini, _ = onboard(state, kind="mini_program", verify_type=-1)
    service_info = state.authorizer_info(token, APPID, service.appid)
    mini_info = state.authorizer_info(token, APPID, mini.appid)
    assert service_info["authorizer_info"]["service_type_info"] == {"id": 2}
    assert service_info["authorizer_info"]["verify_type_info"] == {"id": 0}
    assert "MiniProgramInfo" not in service_info["authorizer_info"]
    assert mini_info["authorizer_info"]["service_type_info"] == {"id": 0}
    assert mini_info["authorizer_info"]["verify_type_info"] == {"id": -1}
    assert "MiniProgramInfo" in mini_info["authorizer_info"]
    assert service_info["authorization_info"] == {
        "authorizer_appid": service.appid,
        "authorizer_refresh_token": service.refresh_token,
        "func_info": state.func_info(service),
    }
    assert str(service_info["authorizer_info"]["user_name"]).startswith("gh_")


def test_authorizer_info_of_an_unauthorized_account_is_61003(state: SandboxState) -> None:
    token = component_token(state)
    account = state.create_authorizer()
    assert errcode_of(state.authorizer_info, token, APPID, account.appid) == 61003


def test_authorizer_list_pages_current_authorizations_in_order(state: SandboxState) -> None:
    token = component_token(state)
    accounts = [onboard(state)[0] for _ in range(5)]
    state.revoke(accounts[1].appid)
    state.update_authorizer(accounts[2].appid, {"omit_refresh_token_in_list": True})
    page = state.authorizer_list(token, APPID, 1, 2)
    assert page == {
        "total_count": 4,
        "list": [
            {"authorizer_appid": accounts[2].appid, "auth_time": accounts[2].auth_time},
            {
                "authorizer_appid": accounts[3].appid,
                "auth_time": accounts[3].auth_time,
                "refresh_token": accounts[3].refresh_token,
            },
        ],
    }
    assert state.authorizer_list(token, APPID, 10**30, 500) == {"total_count": 4, "list": []}
    assert errcode_of(state.authorizer_list, token, APPID, 0, 501) == 40097
    assert errcode_of(state.authorizer_list, token, APPID, -1, 10) == 40097


# --- accounts -----------------------------------------------------------------------------------------


def test_bulk_create_draws_draft_counts_from_the_range(state: SandboxState) -> None:
    accounts = state.bulk_create_authorizers(count=200, prefix="t", draft_count=(3, 5), func_ids=[11])
    assert len({a.appid for a in accounts}) == 200
    assert {a.draft_count for a in accounts} == {3, 4, 5}
    assert all(a.authorized and a.current_token and a.func_ids == [11] for a in accounts)
    assert [a.nickname for a in accounts[:2]] == ["t00000", "t00001"]


def test_the_same_seed_gives_the_same_identifiers(clock: ManualClock) -> None:
    first = SandboxState(SandboxConfig(seed=42), clock=clock).create_authorizer(authorized=True)
    second = SandboxState(SandboxConfig(seed=42), clock=clock).create_authorizer(authorized=True)
    assert (first.appid, first.refresh_token, first.current_token) == (
        second.appid,
        second.refresh_token,
        second.current_token,
    )


def test_invalid_account_changes_change_nothing(state: SandboxState) -> None:
    account = state.create_authorizer(draft_count=1, kind="service")
    for changes in ({"draft_count": 5, "kind": "newsroom"}, {"func_ids": [0]}, {"owner": "x"}):
        with pytest.raises(ControlError) as info:
            state.update_authorizer(account.appid, changes)
        assert info.value.status == 400
    assert (account.draft_count, account.kind, account.func_ids) == (1, "service", [1, 11])


def test_duplicate_and_malformed_appids_are_refused(state: SandboxState) -> None:
    state.create_authorizer(appid="wxdup")
    for appid, status in (("wxdup", 409), ("wx bad", 400), ("", 400)):
        with pytest.raises(ControlError) as info:
            state.create_authorizer(appid=appid)
        assert info.value.status == status
    assert [appid for appid, a in state.authorizers.items() if not a.test_account] == ["wxdup"]


def test_reset_forgets_everything_and_restores_the_config(state: SandboxState) -> None:
    onboard(state)
    component_token(state)
    state.update_config({"event_url": "http://127.0.0.1:9/events", "daily_quota": 5})
    state.set_latency(0.5, "/cgi-bin/draft/count")
    state.set_faults(FaultPlan(rate=1.0, kinds=[-1]))
    state.reset()
    # Only WeChat's own release-test accounts, never authorized.
    assert {a.test_account and not a.authorized for a in state.authorizers.values()} == {True}
    assert state.component_tokens == {}
    assert state.current_ticket is None
    assert state.faults is None
    assert state.config == SandboxConfig(seed=1)


def test_update_config_refuses_unknown_or_ill_typed_fields(state: SandboxState) -> None:
    for changes in ({"component_appsecret": "x"}, {"ticket_interval": -1}, {"event_url": "ftp://x"}):
        with pytest.raises(ControlError):
            state.update_config(changes)
    assert state.config == SandboxConfig(seed=1)


# --- faults -------------------------------------------------------------------------------------------


def test_fault_plan_is_reproducible_from_its_seed() -> None:
    def run() -> list[int | str | None]:
        plan = FaultPlan(rate=0.3, kinds=[-1, "http_502"], seed=7)
        return [plan.pick("/cgi-bin/draft/count") for _ in range(200)]

    first = run()
    assert first == run()
    faults = [f for f in first if f is not None]
    assert set(faults) == {-1, "http_502"}
    assert 0 < len(faults) < 200


def test_fault_plan_rate_endpoints_and_cap() -> None:
    assert [FaultPlan(rate=0.0, kinds=[-1]).pick("/p") for _ in range(50)] == [None] * 50
    capped = FaultPlan(rate=1.0, kinds=[45011], max_faults=3, endpoints=["/only"])
    assert [capped.pick("/other") for _ in range(3)] == [None] * 3
    assert [capped.pick("/only") for _ in range(5)] == [45011, 45011, 45011, None, None]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rate": 1.5, "kinds": [-1]},
        {"rate": 0.5, "kinds": []},
        {"rate": 0.5, "kinds": [0]},
        {"rate": 0.5, "kinds": ["explode"]},
        {"rate": 0.5, "kinds": [True]},
        {"rate": 0.5, "kinds": [-1], "max_faults": -1},
    ],
)
def test_fault_plan_refuses_nonsense(kwargs: dict[str, object]) -> None:
    with pytest.raises(ControlError):
        FaultPlan(**kwargs)  # type: ignore[arg-type]
