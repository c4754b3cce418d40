"""The tenant page: details, permission sets, chart, sync attempts, API keys, and its actions."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from drafts.models import AttemptOutcome, SyncAttempt, SyncJob, SyncTrigger
from tenants.models import Tenant, TenantAPIKey, TenantStatus
from tenants.services import tenant_revoke
from tests.factories import api_headers, make_api_key, make_snapshot, make_tenant
from tests.fixtures.sandbox import Sandbox
from wxplatform.component.services import component_ticket_store, default_component
from wxplatform.models import AuditEntry


def _page(tenant: Tenant) -> str:
    return reverse("admin:tenants_tenant_change", args=[tenant.pk])


def _url(name: str, tenant: Tenant, *args: object) -> str:
    return reverse(f"admin:tenants_tenant_{name}", args=[tenant.pk, *args])


def _sandbox_tenant(sandbox: Sandbox, *, draft_count: int, **overrides: object) -> Tenant:
    """A tenant whose tokens the sandbox really issued, so that syncs and refreshes reach it."""
    account = sandbox.control.create_authorizer(
        kind="service", func_ids=[1, 11], draft_count=draft_count, authorized=True
    )
    return make_tenant(
        authorizer_appid=account["appid"],
        access_token=account["authorizer_access_token"],
        access_token_expires_at=timezone.now() + timedelta(seconds=account["expires_in"]),
        refresh_token=account["authorizer_refresh_token"],
        **overrides,
    )


@pytest.mark.django_db
def test_page_names_the_granted_permission_sets(admin_client: Client) -> None:
    tenant = make_tenant(func_ids=[1, 11, 15, 999])

    html = admin_client.get(_page(tenant)).content.decode()

    assert "<td>1</td><td>Message management</td>" in html
    assert "<td>11</td><td>Material management</td>" in html
    assert "<td>15</td><td>Menu management</td>" in html
    assert "<td>999</td><td>Permission set 999</td>" in html


@pytest.mark.django_db
def test_page_charts_the_last_30_days_of_draft_counts(admin_client: Client) -> None:
    now = timezone.now()
    tenant = make_tenant(draft_count=9, draft_count_fetched_at=now - timedelta(hours=1))
    make_snapshot(tenant, total_count=2, fetched_at=now - timedelta(days=40))
    make_snapshot(tenant, total_count=5, fetched_at=now - timedelta(days=10))
    make_snapshot(tenant, total_count=9, fetched_at=now - timedelta(days=2))

    html = admin_client.get(_page(tenant)).content.decode()

    assert '<div id="draft-chart"><svg' in html
    assert 'aria-label="Draft count, last 30 days"' in html
    # Two changes and the latest fetch inside the window are dots; the value from 40 days ago starts the line.
    assert html.count('r="2.5"') == 3
    assert 'class="wxp-chart-latest">9</text>' in html
    assert '<strong id="latest-count">9</strong>' in html


@pytest.mark.django_db
def test_page_lists_recent_sync_attempts_with_their_errcodes(admin_client: Client, tenant: Tenant) -> None:
    now = timezone.now()
    SyncAttempt.objects.create(
        tenant=tenant, at=now, trigger=SyncTrigger.SCHEDULE, outcome=AttemptOutcome.FAILED, errcode=45009
    )
    SyncAttempt.objects.create(
        tenant=tenant, at=now - timedelta(minutes=1), trigger=SyncTrigger.ADMIN, outcome=AttemptOutcome.CHANGED
    )

    html = admin_client.get(_page(tenant)).content.decode()

    assert '<td class="errcode">45009</td>' in html
    assert "Synced, changed" in html


@pytest.mark.django_db
def test_an_account_synced_by_the_schedule_shows_its_last_successful_sync() -> None:
    fetched_at = timezone.now() - timedelta(minutes=3)
    tenant = make_tenant(draft_count=17, draft_count_fetched_at=fetched_at)
    client = Client()
    client.force_login(User.objects.create_superuser("ops", password="x"))

    html = client.get(_page(tenant)).content.decode()

    row = html.split('id="last-success"')[1].split("</tr>")[0]
    assert timezone.localtime(fetched_at).strftime("%Y-%m-%d %H:%M:%S") in row
    assert "<td>17</td>" in row
    assert "No sync attempts recorded." not in html


@pytest.mark.django_db
def test_the_last_success_is_not_repeated_when_an_attempt_tells_of_it(admin_client: Client) -> None:
    fetched_at = timezone.now() - timedelta(minutes=3)
    tenant = make_tenant(draft_count=17, draft_count_fetched_at=fetched_at)
    SyncAttempt.objects.create(
        tenant=tenant, at=fetched_at, trigger=SyncTrigger.API, outcome=AttemptOutcome.CHANGED, total_count=17
    )

    assert 'id="last-success"' not in admin_client.get(_page(tenant)).content.decode()


@pytest.mark.django_db
def test_page_lists_api_keys_by_prefix_without_secrets(admin_client: Client, tenant: Tenant) -> None:
    key, raw = make_api_key(tenant, name="ERP")

    html = admin_client.get(_page(tenant)).content.decode()

    assert f'id="api-key-{key.prefix}"' in html
    assert raw not in html
    assert key.hashed_key not in html


@pytest.mark.django_db
def test_details_form_cannot_be_saved(admin_client: Client, tenant: Tenant) -> None:
    # Saving the read-only form would write every column, tokens included, from a possibly stale copy.
    before = Tenant.objects.values().get(pk=tenant.pk)

    response = admin_client.post(_page(tenant), {"nickname": "changed"})

    assert response.status_code == 405
    assert Tenant.objects.values().get(pk=tenant.pk) == before
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db
def test_sync_now_fetches_the_count_from_wechat_and_audits_it(admin_client: Client, wechat_settings: Sandbox) -> None:
    tenant = _sandbox_tenant(wechat_settings, draft_count=23)

    response = admin_client.post(_url("sync", tenant), follow=True)

    html = response.content.decode()
    assert "Synced: 23 drafts." in html
    assert '<strong id="latest-count">23</strong>' in html
    tenant.refresh_from_db()
    assert tenant.draft_count == 23
    entry = AuditEntry.objects.get(action="tenant.sync")
    assert (entry.actor_label, entry.target) == ("admin", f"tenant:{tenant.pk} {tenant.authorizer_appid}")
    assert entry.detail == {"outcome": "changed", "total_count": 23, "errcode": None, "reason": None}


@pytest.mark.django_db
def test_sync_now_shows_wechats_errcode_when_the_sync_fails(admin_client: Client, wechat_settings: Sandbox) -> None:
    tenant = _sandbox_tenant(wechat_settings, draft_count=3)
    wechat_settings.control.set_quota_used(tenant.authorizer_appid, 1000)

    html = admin_client.post(_url("sync", tenant), follow=True).content.decode()

    assert "Sync failed: errcode 45009" in html
    assert AuditEntry.objects.get(action="tenant.sync").detail["errcode"] == 45009


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["sync", "refresh_token", "clear_quota"])
def test_a_revoked_account_refuses_every_call_to_wechat_and_records_nothing(
    admin_client: Client, wechat_settings: Sandbox, action: str
) -> None:
    """Its page offers none of these; a stale page or a hand-made POST is refused with the reason."""
    tenant = _sandbox_tenant(wechat_settings, draft_count=3)
    tenant_revoke(component_id=tenant.component_id, authorizer_appid=tenant.authorizer_appid)
    tenant.refresh_from_db()
    before = Tenant.objects.filter(pk=tenant.pk).values().get()

    html = admin_client.post(_url(action, tenant), follow=True).content.decode()

    when = timezone.localtime(tenant.revoked_at).strftime("%Y-%m-%d %H:%M:%S")
    assert (
        f"This account revoked its authorization of the platform ({when}): it has no token, so it cannot be "
        "synced and has no token to refresh until it authorizes again."
    ) in html
    assert Tenant.objects.filter(pk=tenant.pk).values().get() == before
    assert not SyncJob.objects.exists() and not SyncAttempt.objects.exists() and not AuditEntry.objects.exists()
    assert wechat_settings.control.counters()["draft_count_calls"] == {}


@pytest.mark.django_db
def test_an_account_that_must_authorize_again_refuses_sync_with_the_reason(admin_client: Client) -> None:
    tenant = make_tenant(status=TenantStatus.NEEDS_REAUTH)

    html = admin_client.post(_url("sync", tenant), follow=True).content.decode()

    assert "This account&#x27;s authorization is no longer valid: it cannot be synced" in html
    assert not SyncJob.objects.exists() and not AuditEntry.objects.exists()


@pytest.mark.django_db
def test_a_revoked_accounts_page_offers_no_sync_or_refresh_and_says_why(admin_client: Client, tenant: Tenant) -> None:
    tenant_revoke(component_id=tenant.component_id, authorizer_appid=tenant.authorizer_appid)

    html = admin_client.get(_page(tenant)).content.decode()

    for button in ('id="sync-now"', 'id="refresh-token"', 'id="clear-quota"', 'id="mark-revoked"'):
        assert button not in html
    assert 'id="tenant-inactive"' in html and "it cannot be synced and has no token to refresh" in html


@pytest.mark.django_db
def test_a_revoked_accounts_keys_are_shown_as_the_api_treats_them(admin_client: Client, tenant: Tenant) -> None:
    """Before the revocation: history only, then expired (403 api_key_history_only); issued after: the draft
    count refused (403 tenant_revoked). The page says what the API answers, and the API answers it."""
    _old, old_raw = make_api_key(tenant, name="before")
    tenant_revoke(component_id=tenant.component_id, authorizer_appid=tenant.authorizer_appid)
    _new, new_raw = make_api_key(tenant, name="after")
    api = Client()

    old_answer = api.get("/api/v1/draft-count", **api_headers(old_raw))
    new_answer = api.get("/api/v1/draft-count", **api_headers(new_raw))
    html = admin_client.get(_page(tenant)).content.decode()

    assert (old_answer.status_code, old_answer.json()["error"]["code"]) == (403, "api_key_history_only")
    assert (new_answer.status_code, new_answer.json()["error"]["code"]) == (403, "tenant_revoked")
    keys = html.split('id="api-keys"')[1].split('id="webhooks"')[0]
    states = re.findall(r'<span class="wxp-badge ([a-z-]+)" title="[^"]*">([^<]+)</span>', keys)
    assert states == [("wxp-warn", "draft count refused"), ("wxp-warn", "history only")]
    assert ">active<" not in keys
    assert "403 api_key_history_only" in keys and "403 tenant_revoked" in keys


@pytest.mark.django_db
def test_refresh_token_gets_a_new_token_from_wechat(admin_client: Client, wechat_settings: Sandbox) -> None:
    pushed = wechat_settings.control.push_ticket()
    component_ticket_store(default_component(), ticket=pushed["ticket"], created_at=timezone.now())
    tenant = _sandbox_tenant(wechat_settings, draft_count=0)
    old_token, old_version = tenant.access_token, tenant.token_version

    html = admin_client.post(_url("refresh_token", tenant), follow=True).content.decode()

    assert "Token refreshed." in html
    tenant.refresh_from_db()
    assert tenant.token_version == old_version + 1
    assert tenant.access_token != old_token
    assert AuditEntry.objects.get(action="tenant.refresh_token").detail == {"ok": True, "errcode": None}


@pytest.mark.django_db
def test_revoke_asks_for_confirmation_before_changing_anything(admin_client: Client, tenant: Tenant) -> None:
    response = admin_client.get(_url("revoke", tenant))

    assert response.status_code == 200
    assert 'id="confirm-revoke"' in response.content.decode()
    tenant.refresh_from_db()
    assert tenant.status == TenantStatus.ACTIVE
    assert tenant.refresh_token != ""
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db
def test_confirmed_revoke_marks_revoked_and_purges_tokens(admin_client: Client, tenant: Tenant) -> None:
    response = admin_client.post(_url("revoke", tenant))

    assert response.status_code == 302
    tenant.refresh_from_db()
    assert tenant.status == TenantStatus.REVOKED
    assert (tenant.access_token, tenant.refresh_token, tenant.access_token_expires_at) == ("", "", None)
    assert tenant.revoked_at is not None
    assert AuditEntry.objects.get(action="tenant.revoke").target == f"tenant:{tenant.pk} {tenant.authorizer_appid}"


@pytest.mark.django_db
def test_create_api_key_shows_the_raw_key_once_and_stores_only_its_hash(admin_client: Client, tenant: Tenant) -> None:
    response = admin_client.post(_url("api_key_create", tenant), {"name": "Warehouse"})

    key = TenantAPIKey.objects.get(tenant=tenant)
    html = response.content.decode()
    raw = html.split('id="raw-api-key">')[1].split("<")[0]
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert raw.startswith(f"{key.prefix}.")
    assert key.is_valid(raw)
    assert key.name == "Warehouse"
    # Never again: not on the tenant page, not in the audit entry.
    assert raw not in admin_client.get(_page(tenant)).content.decode()
    entry = AuditEntry.objects.get(action="api_key.create")
    assert entry.detail == {"prefix": key.prefix, "name": "Warehouse"}
    assert raw not in str(entry.detail)


@pytest.mark.django_db
def test_revoke_api_key_revokes_it_and_audits_it(admin_client: Client, tenant: Tenant) -> None:
    key, _raw = make_api_key(tenant)

    response = admin_client.post(_url("api_key_revoke", tenant, key.prefix))

    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked is True
    assert AuditEntry.objects.get(action="api_key.revoke").detail["prefix"] == key.prefix


@pytest.mark.django_db
def test_rotate_api_key_shows_a_new_key_once_and_revokes_the_old(admin_client: Client, tenant: Tenant) -> None:
    old, _old_raw = make_api_key(tenant, name="ERP")

    response = admin_client.post(_url("api_key_rotate", tenant, old.prefix))

    old.refresh_from_db()
    new = TenantAPIKey.objects.get(tenant=tenant, revoked=False)
    raw = response.content.decode().split('id="raw-api-key">')[1].split("<")[0]
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert (old.revoked, new.name, new.is_valid(raw)) == (True, "ERP", True)
    assert raw not in admin_client.get(_page(tenant)).content.decode()
    entry = AuditEntry.objects.get(action="api_key.rotate")
    assert entry.detail == {"prefix": new.prefix, "replaced": old.prefix, "name": "ERP"}


@pytest.mark.django_db
def test_rotating_a_revoked_key_issues_nothing(admin_client: Client, tenant: Tenant) -> None:
    old, _raw = make_api_key(tenant)
    admin_client.post(_url("api_key_revoke", tenant, old.prefix))

    response = admin_client.post(_url("api_key_rotate", tenant, old.prefix))

    assert response.status_code == 302
    assert TenantAPIKey.objects.filter(tenant=tenant).count() == 1
    assert not AuditEntry.objects.filter(action="api_key.rotate").exists()


@pytest.mark.django_db
def test_rotating_another_tenants_key_is_not_found_and_changes_nothing(
    admin_client: Client, tenant: Tenant, other_tenant: Tenant
) -> None:
    key, _raw = make_api_key(other_tenant)

    response = admin_client.post(_url("api_key_rotate", tenant, key.prefix))

    assert response.status_code == 404
    assert TenantAPIKey.objects.filter(tenant=other_tenant, revoked=False).count() == 1
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db
def test_revoking_another_tenants_key_is_not_found_and_changes_nothing(
    admin_client: Client, tenant: Tenant, other_tenant: Tenant
) -> None:
    key, _raw = make_api_key(other_tenant)

    response = admin_client.post(_url("api_key_revoke", tenant, key.prefix))

    assert response.status_code == 404
    key.refresh_from_db()
    assert key.revoked is False
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["sync", "refresh_token", "api_key_create"])
def test_actions_refuse_get(admin_client: Client, tenant: Tenant, name: str) -> None:
    assert admin_client.get(_url(name, tenant)).status_code == 405
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db
def test_admin_sees_every_action_button(admin_client: Client, tenant: Tenant) -> None:
    make_api_key(tenant)

    html = admin_client.get(_page(tenant)).content.decode()

    buttons = ('id="sync-now"', 'id="refresh-token"', 'id="mark-revoked"', 'id="api-key-create"', 'value="Revoke"')
    for button in (*buttons, 'value="Rotate"'):
        assert button in html


@pytest.mark.django_db
def test_page_shows_when_the_account_is_next_polled_in_chinese(admin_client: Client) -> None:
    tenant = make_tenant(next_poll_at=timezone.now() + timedelta(hours=2), draft_activity_at=timezone.now())

    html = admin_client.get(_page(tenant), headers={"accept-language": "zh-hans"}).content.decode()

    assert "下次定时查询时间" in html
    assert "草稿箱最近变动时间" in html
    shown = timezone.localtime(tenant.next_poll_at)
    # The console's one format (wxplatform/formats), in Chinese too.
    assert f"{shown:%Y-%m-%d %H:%M:%S}" in html
