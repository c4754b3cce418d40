"""Reconciliation with WeChat's authorizer list, against the sandbox: missed pushes, revocations without a push,
changed refresh tokens, profiles, status and kind read again, quotas, concurrency and a pass cut short."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from drafts.models import DraftSnapshot, SkipReason, SyncTrigger
from drafts.rules import quota_budget, skip_reason
from tenants import reconcile
from tenants.models import Eligibility, Tenant, TenantProfileChange, TenantStatus
from tenants.reconcile import authorizers_reconcile
from tenants.tasks import reconcile_authorizers
from tests.factories import make_snapshot
from tests.fixtures.sandbox import SECOND_COMPONENT, Sandbox
from tests.fixtures.sync import component_ready, sandbox_tenant, worker_env
from tests.fixtures.worker import Worker
from wxplatform.component.services import (
    component_access_token,
    component_add,
    component_ticket_store,
    default_component,
)
from wxplatform.wechat.bulk import _transport_error
from wxsandbox.control import SandboxControl

pytestmark = pytest.mark.django_db(transaction=True)

LIST_PATH = "/cgi-bin/component/api_get_authorizer_list"


@pytest.fixture
def wechat(sync_settings: Sandbox) -> Sandbox:
    component_ready(sync_settings)
    return sync_settings


def reconciled(wechat: Sandbox, appid: str) -> Tenant:
    return Tenant.objects.get(authorizer_appid=appid)


def test_an_account_whose_authorized_push_was_missed_becomes_a_tenant(wechat: Sandbox) -> None:
    account = wechat.control.create_authorizer(authorized=True, kind="service", nickname="Missed", func_ids=[1, 11])

    report = authorizers_reconcile(default_component())

    tenant = reconciled(wechat, account["appid"])
    assert (report.added, report.revoked, report.listed, report.complete) == (1, 0, 1, True)
    assert tenant.status == TenantStatus.ACTIVE
    assert tenant.eligibility == Eligibility.ELIGIBLE
    assert (tenant.nickname, tenant.account_kind, tenant.func_ids) == ("Missed", "service", [1, 11])
    assert tenant.refresh_token == account["authorizer_refresh_token"]
    assert tenant.profile_raw["nick_name"] == "Missed"
    # No change log for a first reading: there is nothing to compare with.
    assert not TenantProfileChange.objects.exists()


def test_a_tenant_revoked_without_a_push_is_revoked_and_keeps_its_history(wechat: Sandbox) -> None:
    tenant = sandbox_tenant(wechat, draft_count=3)
    make_snapshot(tenant, total_count=3, fetched_at=timezone.now())
    Tenant.objects.filter(pk=tenant.pk).update(authorized_at=timezone.now() - timedelta(days=1))
    wechat.control.revoke(tenant.authorizer_appid, push=False)

    report = authorizers_reconcile(default_component())

    tenant.refresh_from_db()
    assert (report.revoked, report.listed) == (1, 0)
    assert tenant.status == TenantStatus.REVOKED
    assert (tenant.access_token, tenant.refresh_token, tenant.access_token_expires_at) == ("", "", None)
    assert DraftSnapshot.objects.filter(tenant=tenant).count() == 1


def test_a_tenant_still_authorized_but_not_listed_is_left_alone(wechat: Sandbox) -> None:
    # An account authorized after the pass began may be missing from its pages: only 61003 revokes.
    tenant = sandbox_tenant(wechat)

    report = authorizers_reconcile(default_component())

    tenant.refresh_from_db()
    assert tenant.status == TenantStatus.ACTIVE
    assert report.revoked == 0


def test_a_listed_refresh_token_that_differs_replaces_the_stored_one(wechat: Sandbox) -> None:
    tenant = sandbox_tenant(wechat)
    Tenant.objects.filter(pk=tenant.pk).update(refresh_token="stale-refresh-token")
    listed = wechat.control.get_authorizer(tenant.authorizer_appid)["authorizer_refresh_token"]

    report = authorizers_reconcile(default_component())

    after = reconciled(wechat, tenant.authorizer_appid)
    assert report.tokens_replaced == 1
    assert after.refresh_token == listed
    assert after.token_version == tenant.token_version + 1


def test_a_tenant_that_needed_reauthorization_is_active_again_with_the_listed_token(wechat: Sandbox) -> None:
    tenant = sandbox_tenant(wechat)
    Tenant.objects.filter(pk=tenant.pk).update(status=TenantStatus.NEEDS_REAUTH, refresh_token="", access_token="")

    authorizers_reconcile(default_component())

    after = reconciled(wechat, tenant.authorizer_appid)
    assert after.status == TenantStatus.ACTIVE
    assert after.refresh_token == wechat.control.get_authorizer(tenant.authorizer_appid)["authorizer_refresh_token"]


def test_a_refresh_token_stored_after_the_page_was_listed_is_kept(wechat: Sandbox, monkeypatch: Any) -> None:
    tenant = sandbox_tenant(wechat)
    Tenant.objects.filter(pk=tenant.pk).update(refresh_token="newer-than-the-list")
    later = timezone.now() + timedelta(hours=1)
    Tenant.objects.filter(pk=tenant.pk).update(token_refreshed_at=later)

    report = authorizers_reconcile(default_component())

    assert reconciled(wechat, tenant.authorizer_appid).refresh_token == "newer-than-the-list"
    assert report.tokens_replaced == 0


def test_profile_changes_are_recorded_and_a_second_pass_finds_nothing_new(wechat: Sandbox) -> None:
    account = wechat.control.create_authorizer(authorized=True, kind="service", nickname="Before", verify_type=-1)
    authorizers_reconcile(default_component())
    wechat.control.update_authorizer(account["appid"], nickname="After", verify_type=0)

    first = authorizers_reconcile(default_component())
    second = authorizers_reconcile(default_component())

    changes = {
        c.field: (c.old, c.new) for c in TenantProfileChange.objects.filter(tenant__authorizer_appid=account["appid"])
    }
    assert changes == {"nickname": ("Before", "After"), "verify_type_id": ("-1", "0")}
    assert (first.profiles_changed, second.profiles_changed, second.unchanged) == (1, 0, 1)
    assert reconciled(wechat, account["appid"]).verify_type_id == 0


@pytest.mark.parametrize(
    ("change", "eligibility", "detail_has"),
    [
        ({"account_status": 16}, Eligibility.ACCOUNT_STATUS, "banned"),
        ({"account_status": 14}, Eligibility.ACCOUNT_STATUS, "deregistered"),
        ({"account_status": 19}, Eligibility.ACCOUNT_STATUS, "frozen"),
        ({"account_status": 18}, Eligibility.ELIGIBLE, "warned"),
        ({"kind": "mini_program"}, Eligibility.WRONG_KIND, ""),
        ({"kind": "channels"}, Eligibility.WRONG_KIND, ""),
        ({"func_ids": [1, 15]}, Eligibility.MISSING_PERMISSION, ""),
        ({"func_ids": [1, 100]}, Eligibility.ELIGIBLE, ""),
    ],
)
def test_eligibility_follows_status_kind_and_sets(
    wechat: Sandbox, change: dict[str, Any], eligibility: str, detail_has: str
) -> None:
    tenant = sandbox_tenant(wechat)
    authorizers_reconcile(default_component())
    wechat.control.update_authorizer(tenant.authorizer_appid, **change)

    authorizers_reconcile(default_component())

    after = reconciled(wechat, tenant.authorizer_appid)
    assert after.eligibility == eligibility
    assert detail_has in after.eligibility_detail
    if eligibility != Eligibility.ELIGIBLE:
        # An ineligible tenant is not called by the sync.
        assert skip_reason(after, trigger=SyncTrigger.SCHEDULE, now=timezone.now()) == SkipReason.INELIGIBLE
        assert TenantProfileChange.objects.filter(tenant=after, field="eligibility").exists()


def test_a_tenant_rejected_by_wechat_is_checked_again(wechat: Sandbox) -> None:
    tenant = sandbox_tenant(wechat)
    authorizers_reconcile(default_component())
    Tenant.objects.filter(pk=tenant.pk).update(eligibility=Eligibility.REJECTED, eligibility_detail="48001")

    authorizers_reconcile(default_component())

    assert reconciled(wechat, tenant.authorizer_appid).eligibility == Eligibility.ELIGIBLE


def test_each_accounts_own_quota_is_read_and_sets_the_budget(wechat: Sandbox) -> None:
    tenant = sandbox_tenant(wechat)
    wechat.control.set_quota(tenant.authorizer_appid, daily_limit=200, used=50)

    report = authorizers_reconcile(default_component())

    after = reconciled(wechat, tenant.authorizer_appid)
    assert report.quotas_read == 1
    assert (after.quota_daily_limit, after.quota_wechat_used, after.quota_remain) == (200, 50, 150)
    assert after.quota_read_at is not None
    assert quota_budget(SyncTrigger.SCHEDULE, after.quota_daily_limit) == 160
    assert quota_budget(SyncTrigger.SCHEDULE, None) == 800


def test_a_pass_cut_short_by_a_failed_page_revokes_nothing(wechat: Sandbox, monkeypatch: Any) -> None:
    monkeypatch.setattr(reconcile, "PAGE_SIZE", 3)
    wechat.control.bulk_create_authorizers(7, prefix="cut")
    gone = sandbox_tenant(wechat)
    Tenant.objects.filter(pk=gone.pk).update(authorized_at=timezone.now() - timedelta(days=1))
    wechat.control.revoke(gone.authorizer_appid, push=False)

    def fail_the_next_page(done: int, total: int) -> None:
        if done == 3:
            wechat.control.set_faults(rate=1.0, kinds=[-1], endpoints=[LIST_PATH])

    with pytest.raises(Exception, match="-1"):
        authorizers_reconcile(default_component(), on_progress=fail_the_next_page)

    # The first page is written; the unlisted tenant is not revoked by an incomplete pass.
    assert Tenant.objects.filter(nickname__startswith="cut").count() == 3
    assert reconciled(wechat, gone.authorizer_appid).status == TenantStatus.ACTIVE
    wechat.control.clear_faults()
    report = authorizers_reconcile(default_component())
    assert (report.added, report.revoked) == (4, 1)


def test_two_passes_at_once_onboard_each_account_once(wechat: Sandbox, monkeypatch: Any) -> None:
    monkeypatch.setattr(reconcile, "PAGE_SIZE", 10)
    wechat.control.bulk_create_authorizers(40, prefix="twice")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            authorizers_reconcile(default_component(), concurrency=4)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert errors == []
    assert Tenant.objects.filter(nickname__startswith="twice").count() == 40
    assert Tenant.objects.filter(status=TenantStatus.ACTIVE).count() == 40


def test_the_command_prints_a_summary_table(wechat: Sandbox) -> None:
    wechat.control.create_authorizer(authorized=True)
    out = io.StringIO()

    call_command("reconcile_authorizers", "--no-progress", stdout=out, stderr=io.StringIO())

    text = out.getvalue()
    assert "1 accounts listed by WeChat" in text
    for label in ("added", "revoked", "refresh tokens replaced", "profiles changed", "unchanged", "failed"):
        assert label in text
    assert [line.split()[-1] for line in text.splitlines() if line.startswith("added")] == ["1"]


def test_the_beat_task_reconciles_through_a_worker(wechat: Sandbox, worker_factory: Callable[..., Worker]) -> None:
    account = wechat.control.create_authorizer(authorized=True, nickname="Via worker")
    worker_factory(env=worker_env())

    reconcile_authorizers.delay()

    deadline = time.monotonic() + 60
    while not Tenant.objects.filter(authorizer_appid=account["appid"]).exists():
        assert time.monotonic() < deadline, "the worker did not reconcile"
        time.sleep(0.1)
    assert reconciled(wechat, account["appid"]).nickname == "Via worker"


# --- Values that do not fit, and failures that must not stop the others (issue 28, finding 2) ----------------

LONG = {
    "nickname": "昵" * 300,
    "principal_name": "主体" * 200,
    "alias": "a" * 100,
    "head_img": "http://wx.qlogo.cn/mmopen/" + "x" * 600,
}


def test_over_long_profile_values_are_stored_cut_and_kept_whole_in_the_raw_profile(wechat: Sandbox) -> None:
    before = wechat.control.create_authorizer(authorized=True, nickname="Before")
    long = wechat.control.create_authorizer(authorized=True, **LONG)
    after = wechat.control.create_authorizer(authorized=True, nickname="After\x00NUL")

    report = authorizers_reconcile(default_component())

    assert (report.added, report.listed, report.not_stored) == (3, 3, [])
    tenant = reconciled(wechat, long["appid"])
    assert (tenant.nickname, tenant.principal_name) == ("昵" * 255, ("主体" * 200)[:255])
    assert (tenant.alias, tenant.head_img) == ("a" * 64, LONG["head_img"][:500])
    assert tenant.profile_raw["nick_name"] == LONG["nickname"]
    assert tenant.profile_raw["head_img"] == LONG["head_img"]
    assert reconciled(wechat, before["appid"]).nickname == "Before"
    assert reconciled(wechat, after["appid"]).nickname == "AfterNUL"
    # The cut value is what the column holds: the next pass sees no change.
    again = authorizers_reconcile(default_component())
    assert (again.unchanged, again.profiles_changed) == (3, 0)
    assert not TenantProfileChange.objects.exists()


def test_a_profile_that_grows_too_long_is_recorded_as_a_change_and_cut(wechat: Sandbox) -> None:
    tenant = sandbox_tenant(wechat)
    authorizers_reconcile(default_component())
    wechat.control.update_authorizer(tenant.authorizer_appid, nickname="长" * 400)

    report = authorizers_reconcile(default_component())

    assert report.profiles_changed == 1
    assert reconciled(wechat, tenant.authorizer_appid).nickname == "长" * 255
    change = TenantProfileChange.objects.get(field="nickname")
    assert change.new == "长" * 255


@pytest.fixture
def refused_nickname() -> Iterator[str]:
    """The database itself refuses one value (a CHECK constraint of this test's own): a row that cannot be
    stored, whatever the reason, as a real database refuses it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE tenants_tenant ADD CONSTRAINT test_refused_nickname CHECK (nickname <> 'Refused here')"
        )
    try:
        yield "Refused here"
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE tenants_tenant DROP CONSTRAINT test_refused_nickname")


def test_an_account_the_database_refuses_is_reported_and_the_others_are_reconciled(
    wechat: Sandbox, refused_nickname: str, monkeypatch: Any, caplog: Any
) -> None:
    monkeypatch.setattr(reconcile, "PAGE_SIZE", 3)
    accounts = [wechat.control.create_authorizer(authorized=True, nickname=f"Kept {i}") for i in range(5)]
    refused = wechat.control.create_authorizer(authorized=True, nickname=refused_nickname)
    changed = sandbox_tenant(wechat)
    authorizers_reconcile(default_component())  # the existing tenant's first reading
    wechat.control.update_authorizer(changed.authorizer_appid, nickname="Renamed")

    report = authorizers_reconcile(default_component())

    assert report.not_stored == [refused["appid"]]
    assert report.complete
    assert report.as_dict()["not_stored"] == 1
    assert not Tenant.objects.filter(authorizer_appid=refused["appid"]).exists()
    assert set(Tenant.objects.filter(nickname__startswith="Kept").values_list("authorizer_appid", flat=True)) == {
        a["appid"] for a in accounts
    }
    assert reconciled(wechat, changed.authorizer_appid).nickname == "Renamed"
    assert TenantProfileChange.objects.filter(tenant=changed, field="nickname").count() == 1
    message = "reconciliation could not store an account: IntegrityError"
    logged = [r for r in caplog.records if r.getMessage() == message]
    assert [r.appid for r in logged] == [refused["appid"], refused["appid"]]  # each of the two passes
    out = io.StringIO()
    call_command("reconcile_authorizers", "--no-progress", stdout=out, stderr=io.StringIO())
    assert [line.split()[-1] for line in out.getvalue().splitlines() if line.startswith("not stored")] == ["1"]
    assert f"Not stored: {refused['appid']}" in out.getvalue()


def test_the_command_goes_on_past_a_platform_that_cannot_be_reconciled(
    wechat: Sandbox, second_component: SandboxControl
) -> None:
    second = component_add(
        appid=SECOND_COMPONENT["appid"],
        secret=SECOND_COMPONENT["appsecret"],
        token=SECOND_COMPONENT["token"],
        aes_key=SECOND_COMPONENT["aes_key"],
        name="Second entity",
    )
    component_ticket_store(second, ticket=second_component.push_ticket()["ticket"], created_at=timezone.now())
    first_account = wechat.control.create_authorizer(authorized=True)
    second_account = second_component.create_authorizer(authorized=True)
    wechat.control.set_faults(rate=1.0, kinds=[61004], endpoints=[LIST_PATH])
    out, err = io.StringIO(), io.StringIO()

    with pytest.raises(CommandError, match=r"Reconciliation failed for 1 platform\(s\): wx0000sandbox0comp\."):
        call_command("reconcile_authorizers", "--no-progress", stdout=out, stderr=err)

    assert Tenant.objects.filter(component=second, authorizer_appid=second_account["appid"]).exists()
    assert not Tenant.objects.filter(authorizer_appid=first_account["appid"]).exists()
    assert "1 accounts listed by WeChat" in out.getvalue()
    assert (
        "wx0000sandbox0comp: WeChat refused a page of the authorizer list "
        "(errcode 61004 this server's IP is not on the platform's whitelist)"
    ) in err.getvalue()


def test_an_unreachable_wechat_is_reported_as_a_network_failure_not_a_refusal(wechat: Sandbox, settings: Any) -> None:
    component_access_token(default_component())  # a fresh component token, so the next call is the list's
    # A name that never resolves (RFC 2606): a DNS failure, as a machine without the sandbox meets it.
    settings.WECHAT_API_BASE = "http://wxp-no-such-host.invalid"

    with pytest.raises(CommandError) as raised:
        call_command("reconcile_authorizers", "--no-progress", stdout=io.StringIO(), stderr=io.StringIO())

    message = str(raised.value)
    assert message.startswith("WeChat could not be reached at http://wxp-no-such-host.invalid (connection error: ")
    assert "a network failure, not a refusal; nothing was revoked." in message
    assert "refused" not in message and "Unknown error" not in message


def test_a_dns_failure_of_the_concurrent_client_names_the_resolver_not_an_unknown_error() -> None:
    error = _transport_error(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))

    assert error.errmsg == "connection error: Name or service not known"
