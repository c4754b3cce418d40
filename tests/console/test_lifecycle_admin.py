"""The merchant page's lifecycle parts: labels instead of WeChat's numbers, the profile change log, each
account's quota with the audited "clear quota" action, and explaining a stored rid, against the sandbox."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from drafts.models import SyncAttempt, SyncTrigger
from drafts.services import draft_count_sync_tenant
from tenants.models import Tenant, TenantProfileChange
from tests.factories import make_tenant
from tests.fixtures.sandbox import Sandbox
from tests.fixtures.sync import component_ready, sandbox_tenant
from wxplatform.models import AuditEntry

pytestmark = pytest.mark.django_db(transaction=True)


def _page(tenant: Tenant) -> str:
    return reverse("admin:tenants_tenant_change", args=[tenant.pk])


def _url(name: str, tenant: Tenant) -> str:
    return reverse(f"admin:tenants_tenant_{name}", args=[tenant.pk])


@pytest.fixture
def wechat(sync_settings: Sandbox) -> Sandbox:
    component_ready(sync_settings)
    return sync_settings


def test_service_and_verification_types_are_shown_as_labels(admin_client: Client) -> None:
    tenant = make_tenant(service_type_id=2, verify_type_id=0, account_status=18)

    page = admin_client.get(_page(tenant)).content.decode()
    listing = admin_client.get(reverse("admin:tenants_tenant_changelist")).content.decode()

    for html in (page, listing):
        assert "Service Account (2)" in html
        assert "WeChat verified (0)" in html
    assert "warned (18)" in page


def test_an_unknown_code_is_shown_as_unknown_with_its_number(admin_client: Client) -> None:
    tenant = make_tenant(service_type_id=10, verify_type_id=-1)

    html = admin_client.get(_page(tenant)).content.decode()

    assert "unknown (10)" in html
    assert "not verified (-1)" in html


def test_the_page_lists_profile_changes_with_labels(admin_client: Client) -> None:
    tenant = make_tenant()
    now = timezone.now()
    TenantProfileChange.objects.create(tenant=tenant, field="nickname", old="Old shop", new="New shop", at=now)
    TenantProfileChange.objects.create(tenant=tenant, field="verify_type_id", old="-1", new="0", at=now)

    html = admin_client.get(_page(tenant)).content.decode()

    assert "<td>nickname</td><td>Old shop</td><td>New shop</td>" in html
    assert "<td>verification type</td><td>not verified (-1)</td><td>WeChat verified (0)</td>" in html


def test_clear_quota_asks_first_then_clears_and_is_audited(admin_client: Client, wechat: Sandbox) -> None:
    tenant = sandbox_tenant(wechat)
    wechat.control.set_quota(tenant.authorizer_appid, used=1000)
    Tenant.objects.filter(pk=tenant.pk).update(quota_used=800, paused_until=timezone.now() + timedelta(hours=3))

    confirmation = admin_client.get(_url("clear_quota", tenant)).content.decode()
    assert "This service made 0 this month" in confirmation
    response = admin_client.post(_url("clear_quota", tenant), follow=True)

    html = response.content.decode()
    assert "Quota cleared: 1 of 10 clears used this month by this service." in html
    tenant.refresh_from_db()
    assert (tenant.quota_clears, tenant.quota_used, tenant.paused_until) == (1, 0, None)
    # WeChat's count restarted too, and the reading after the clear says so.
    assert (tenant.quota_wechat_used, tenant.quota_daily_limit) == (0, 1000)
    entry = AuditEntry.objects.get(action="tenant.clear_quota")
    assert entry.detail == {"cleared": True, "errcode": None, "clears_used": 1}


def test_clear_quota_reports_48006_plainly_and_counts_nothing(admin_client: Client, wechat: Sandbox) -> None:
    tenant = sandbox_tenant(wechat)
    wechat.control.set_quota(tenant.authorizer_appid, clears=10)

    html = admin_client.post(_url("clear_quota", tenant), follow=True).content.decode()

    assert "WeChat refused (48006): this account&#x27;s 10 quota clears for this month are used up" in html
    tenant.refresh_from_db()
    assert tenant.quota_clears == 0
    assert AuditEntry.objects.get(action="tenant.clear_quota").detail["errcode"] == 48006


def test_support_users_cannot_clear_quota(support_client: Client, wechat: Sandbox) -> None:
    tenant = sandbox_tenant(wechat)

    assert support_client.post(_url("clear_quota", tenant)).status_code == 403

    tenant.refresh_from_db()
    assert tenant.quota_clears == 0
    assert not AuditEntry.objects.filter(action="tenant.clear_quota").exists()


def test_a_failed_syncs_rid_is_stored_and_explained_with_tokens_masked(admin_client: Client, wechat: Sandbox) -> None:
    tenant = sandbox_tenant(wechat)
    wechat.control.set_quota(tenant.authorizer_appid, used=1000)
    draft_count_sync_tenant(tenant=tenant, trigger=SyncTrigger.ADMIN)
    attempt = SyncAttempt.objects.get(tenant=tenant)
    tenant.refresh_from_db()
    assert attempt.errcode == 45009
    assert attempt.rid and attempt.message.endswith(attempt.rid)
    assert tenant.last_error_rid == attempt.rid

    page = admin_client.get(_page(tenant)).content.decode()
    assert f"?rid={attempt.rid}" in page
    html = admin_client.get(_url("explain_rid", tenant), {"rid": attempt.rid}).content.decode()

    assert '<td id="rid-client-ip"><code>127.0.0.1</code></td>' in html
    assert "access_token=***" in html
    assert "45009" in html
    assert tenant.access_token not in html
    assert AuditEntry.objects.get(action="tenant.explain_rid").detail == {"rid": attempt.rid, "explained": True}


def test_only_a_rid_stored_for_the_tenant_is_explained(admin_client: Client, wechat: Sandbox) -> None:
    tenant = sandbox_tenant(wechat)
    other = sandbox_tenant(wechat)
    wechat.control.set_quota(other.authorizer_appid, used=1000)
    draft_count_sync_tenant(tenant=other, trigger=SyncTrigger.ADMIN)
    rid = SyncAttempt.objects.get(tenant=other).rid
    calls = wechat.control.counters()["endpoints"].get("/cgi-bin/openapi/rid/get", {}).get("calls", 0)

    assert admin_client.get(_url("explain_rid", tenant), {"rid": rid}).status_code == 404
    assert admin_client.get(_url("explain_rid", tenant), {"rid": "made-up"}).status_code == 404
    after = wechat.control.counters()["endpoints"].get("/cgi-bin/openapi/rid/get", {}).get("calls", 0)
    assert after == calls


def test_a_rid_older_than_seven_days_is_not_asked_for(admin_client: Client, wechat: Sandbox) -> None:
    tenant = sandbox_tenant(wechat)
    SyncAttempt.objects.create(
        tenant=tenant,
        at=timezone.now() - timedelta(days=8),
        trigger=SyncTrigger.SCHEDULE,
        outcome="failed",
        errcode=-1,
        rid="0123abcd-0123abcd-0123abcd",
    )

    html = admin_client.get(_url("explain_rid", tenant), {"rid": "0123abcd-0123abcd-0123abcd"}).content.decode()

    assert "WeChat keeps a rid for 7 days only; this one is older." in html
    assert wechat.control.counters()["endpoints"].get("/cgi-bin/openapi/rid/get", {}).get("calls", 0) == 0
