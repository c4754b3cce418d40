"""The merchant-account list: columns, badges, filters, search, sorting, bulk actions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework_api_key.models import APIKey

from drafts.models import JobState, SyncJob, SyncTrigger
from tenants.models import AccountKind, Eligibility, Tenant, TenantStatus
from tests.factories import make_tenant
from wxplatform.component.services import component_add, default_component
from wxplatform.console import admin as tenants_admin
from wxplatform.models import AuditEntry

CHANGELIST = reverse("admin:tenants_tenant_changelist")


def _listed(response: Any) -> list[str]:
    return [t.authorizer_appid for t in response.context["cl"].result_list]


@pytest.mark.django_db
def test_list_shows_count_last_sync_error_and_token_expiry(admin_client: Client) -> None:
    now = timezone.now()
    make_tenant(
        authorizer_appid="wxlistcolumns001",
        nickname="Columns",
        draft_count=17,
        draft_count_fetched_at=now - timedelta(hours=1),
        last_error_code=45009,
        last_error_message="reach max api daily quota limit",
        last_error_at=now,
    )

    html = admin_client.get(CHANGELIST).content.decode()

    assert "wxlistcolumns001" in html
    assert '<td class="field-latest_count">17</td>' in html
    error = html.split('<td class="field-last_error">')[1].split("</td>")[0]
    # The code on a badge, what WeChat said in its tooltip; bad because the error is newer than the last success.
    assert "wxp-badge wxp-bad" in error and ">45009</span>" in error
    assert "reach max api daily quota limit" in error.split('title="')[1]
    assert "field-token_expiry" in html


@pytest.mark.django_db
def test_eligibility_badge_names_the_missing_permission_sets(admin_client: Client) -> None:
    make_tenant(func_ids=[1, 7], eligibility=Eligibility.MISSING_PERMISSION)

    html = admin_client.get(CHANGELIST).content.decode()

    badge = html.split("wxp-badge wxp-warn")[1].split("</span>")[0]
    assert ">Missing: 11 / 100" in badge
    assert 'title="11 Material management / 100 Draft box (set 100, undocumented).' in badge


@pytest.mark.django_db
def test_wechat_test_accounts_are_badged_and_can_be_filtered(admin_client: Client) -> None:
    make_tenant(authorizer_appid="wx570bc396a51b8ff8", nickname="WeChat test", is_test_account=True)
    make_tenant(authorizer_appid="wxmerchant000001", nickname="Merchant")

    html = admin_client.get(CHANGELIST).content.decode()
    tests_only = admin_client.get(CHANGELIST, {"is_test_account__exact": "1"})

    assert html.count("WeChat test account</span>") == 1
    assert _listed(tests_only) == ["wx570bc396a51b8ff8"]


@pytest.mark.django_db
def test_failing_filter_lists_accounts_whose_last_error_is_newer_than_their_last_success(
    admin_client: Client,
) -> None:
    now = timezone.now()
    failing = make_tenant(draft_count_fetched_at=now - timedelta(hours=2), last_error_at=now - timedelta(hours=1))
    never_succeeded = make_tenant(draft_count_fetched_at=None, last_error_at=now)
    recovered = make_tenant(draft_count_fetched_at=now, last_error_at=now - timedelta(hours=1))
    healthy = make_tenant(draft_count_fetched_at=now, last_error_at=None)

    failing_list = _listed(admin_client.get(CHANGELIST, {"failing": "yes"}))
    healthy_list = _listed(admin_client.get(CHANGELIST, {"failing": "no"}))

    assert sorted(failing_list) == sorted([failing.authorizer_appid, never_succeeded.authorizer_appid])
    assert sorted(healthy_list) == sorted([recovered.authorizer_appid, healthy.authorizer_appid])


@pytest.mark.django_db
def test_filters_by_status_eligibility_and_kind(admin_client: Client) -> None:
    wanted = make_tenant(account_kind=AccountKind.SERVICE, status=TenantStatus.NEEDS_REAUTH)
    make_tenant(account_kind=AccountKind.SERVICE, status=TenantStatus.ACTIVE)
    make_tenant(account_kind=AccountKind.SUBSCRIPTION, status=TenantStatus.NEEDS_REAUTH)
    make_tenant(
        account_kind=AccountKind.SERVICE, status=TenantStatus.NEEDS_REAUTH, eligibility=Eligibility.MISSING_PERMISSION
    )

    response = admin_client.get(
        CHANGELIST,
        {"status__exact": "needs_reauth", "account_kind__exact": "service", "eligibility__exact": "eligible"},
    )

    assert _listed(response) == [wanted.authorizer_appid]


@pytest.mark.django_db
def test_filters_by_platform_and_the_account_page_names_it(admin_client: Client) -> None:
    second = component_add(
        appid="wx2c2769f8efd9abc2",
        secret="s" * 32,
        token="second",
        aes_key="abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
        name="Second entity",
    )
    # The same Official Account authorized both platforms: two tenants.
    on_second = make_tenant(component=second, authorizer_appid="wx570bc396a51b8ff8")
    make_tenant(authorizer_appid="wx570bc396a51b8ff8")

    response = admin_client.get(CHANGELIST, {"component": second.component_appid})

    assert [t.pk for t in response.context["cl"].result_list] == [on_second.pk]
    assert "Second entity (wx2c2769f8efd9abc2)" in response.content.decode()
    page = admin_client.get(reverse("admin:tenants_tenant_change", args=[on_second.pk])).content.decode()
    assert "Third-party platform:" in page
    assert "Second entity (wx2c2769f8efd9abc2)</a>" in page


@pytest.mark.django_db
def test_search_finds_accounts_by_appid_and_by_nickname(admin_client: Client) -> None:
    by_appid = make_tenant(authorizer_appid="wxsearchme0000001", nickname="Alpha")
    by_nickname = make_tenant(nickname="示例服务号")
    make_tenant(nickname="Unrelated")

    assert _listed(admin_client.get(CHANGELIST, {"q": "wxsearchme"})) == [by_appid.authorizer_appid]
    assert _listed(admin_client.get(CHANGELIST, {"q": "示例"})) == [by_nickname.authorizer_appid]


@pytest.mark.django_db
def test_list_sorts_by_latest_count_and_by_last_sync(admin_client: Client) -> None:
    now = timezone.now()
    small = make_tenant(draft_count=1, draft_count_fetched_at=now - timedelta(minutes=5))
    large = make_tenant(draft_count=30, draft_count_fetched_at=now - timedelta(minutes=50))
    medium = make_tenant(draft_count=7, draft_count_fetched_at=now - timedelta(minutes=20))
    columns = list(tenants_admin.TenantAdmin.list_display)
    # The changelist's "o" counts columns from the action checkbox, which comes first.
    by_count = str(columns.index("latest_count") + 1)
    by_sync = str(columns.index("last_sync") + 1)

    assert _listed(admin_client.get(CHANGELIST, {"o": f"-{by_count}"})) == [
        large.authorizer_appid,
        medium.authorizer_appid,
        small.authorizer_appid,
    ]
    assert _listed(admin_client.get(CHANGELIST, {"o": by_sync})) == [
        large.authorizer_appid,
        medium.authorizer_appid,
        small.authorizer_appid,
    ]


@pytest.mark.django_db
def test_sync_selected_queues_one_admin_job_per_account_and_audits_it(admin_client: Client) -> None:
    first, second = make_tenant(), make_tenant()
    revoked = make_tenant(status=TenantStatus.REVOKED)

    response = admin_client.post(
        CHANGELIST, {"action": "sync_selected", "_selected_action": [first.pk, second.pk, revoked.pk]}
    )

    assert response.status_code == 302
    open_jobs = SyncJob.objects.filter(state=JobState.PENDING, trigger=SyncTrigger.ADMIN)
    assert sorted(open_jobs.values_list("tenant_id", flat=True)) == sorted([first.pk, second.pk])
    # A revoked account is answered at once (job finished, skipped), and never reaches WeChat.
    assert SyncJob.objects.get(tenant=revoked).state == JobState.FAILED
    entry = AuditEntry.objects.get(action="tenants.sync_selected")
    assert entry.actor_label == "admin"
    assert sorted(entry.detail["queued"]) == sorted([first.pk, second.pk])
    assert entry.detail["not_called"] == [revoked.pk]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("language", "expected"),
    [
        (
            "en",
            "Syncs queued: 1; already queued: 0; WeChat not called for 3 "
            "(Authorization revoked or to be renewed: 2 · Not eligible for draft/count: 1).",
        ),
        (
            "zh-hans",
            "已排队同步：1；已在队列中：0；3 个账号未调用微信"  # noqa: RUF001
            "（已取消授权或需重新授权：2 · 不符合调用 draft/count 的条件：1）。",  # noqa: RUF001
        ),
    ],
)
def test_sync_selected_says_why_each_account_was_not_called(admin_client: Client, language: str, expected: str) -> None:
    active = make_tenant()
    revoked = [make_tenant(status=TenantStatus.REVOKED), make_tenant(status=TenantStatus.NEEDS_REAUTH)]
    ineligible = make_tenant(account_kind=AccountKind.MINI_PROGRAM, eligibility=Eligibility.WRONG_KIND)
    selected = [active.pk, *(t.pk for t in revoked), ineligible.pk]

    response = admin_client.post(
        CHANGELIST,
        {"action": "sync_selected", "_selected_action": selected},
        headers={"accept-language": language},
        follow=True,
    )

    assert [str(m) for m in response.context["messages"]] == [expected]


@pytest.mark.django_db
def test_refresh_tokens_selected_queues_a_refresh_task_per_active_account(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    queued: list[tuple[str, tuple[Any, ...]]] = []
    monkeypatch.setattr(tenants_admin, "enqueue", lambda task, *args, **kw: queued.append((task.name, args)) or True)
    active = make_tenant()
    revoked = make_tenant(status=TenantStatus.REVOKED, access_token="", refresh_token="")

    response = admin_client.post(
        CHANGELIST, {"action": "refresh_tokens_selected", "_selected_action": [active.pk, revoked.pk]}
    )

    assert response.status_code == 302
    assert queued == [("tenants.refresh_token", (active.pk,))]
    entry = AuditEntry.objects.get(action="tenants.refresh_tokens_selected")
    assert entry.detail == {"queued": [active.pk], "not_queued": [], "skipped": 1}


@pytest.mark.django_db
def test_refresh_tokens_selected_reports_a_queue_outage(admin_client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tenants_admin, "enqueue", lambda task, *args, **kw: False)
    active = make_tenant()

    response = admin_client.post(
        CHANGELIST, {"action": "refresh_tokens_selected", "_selected_action": [active.pk]}, follow=True
    )

    assert "The task queue is unavailable: 1 token refreshes could not be queued." in response.content.decode()
    assert AuditEntry.objects.get(action="tenants.refresh_tokens_selected").detail["not_queued"] == [active.pk]


@pytest.mark.django_db
def test_tenants_cannot_be_added_or_deleted_in_the_admin(admin_client: Client, tenant: Tenant) -> None:
    assert admin_client.get(reverse("admin:tenants_tenant_add")).status_code == 403
    delete = reverse("admin:tenants_tenant_delete", args=[tenant.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert Tenant.objects.filter(pk=tenant.pk).exists()


def test_the_api_key_librarys_own_admin_is_not_offered() -> None:
    # Merchant keys are TenantAPIKey, managed on the merchant page; the library's APIKey model is unused.
    assert not admin.site.is_registered(APIKey)


@pytest.mark.django_db
def test_with_several_platforms_each_row_names_its_platform_under_the_appid(admin_client: Client) -> None:
    only = make_tenant(authorizer_appid="wx0a1b2c3d4e5f6a7b")
    single = admin_client.get(CHANGELIST).content.decode()
    # One platform: nothing more to say than the AppID.
    assert f'{only.authorizer_appid}<br><span class="quiet">' not in single

    second = component_add(
        appid="wx3d3769f8efd9abc3",
        secret="s" * 32,
        token="second",
        aes_key="abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
        name="Second entity",
    )
    make_tenant(component=second, authorizer_appid=only.authorizer_appid)
    several = admin_client.get(CHANGELIST).content.decode()

    assert f'{only.authorizer_appid}<br><span class="quiet">Second entity</span>' in several
    default_label = default_component().name or default_component().component_appid
    assert f'{only.authorizer_appid}<br><span class="quiet">{default_label}</span>' in several
