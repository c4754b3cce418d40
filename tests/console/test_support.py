"""The read-only "support" group: sees everything, can do nothing, and every refusal changes nothing."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django_celery_beat.models import PeriodicTask

from drafts.models import SyncJob
from tenants.models import Tenant, TenantAPIKey
from tests.factories import make_api_key
from wxplatform.models import AuditEntry


def _tenant_row(tenant: Tenant) -> dict[str, object]:
    return Tenant.objects.values().get(pk=tenant.pk)


@pytest.mark.django_db
def test_support_group_holds_view_permissions_only(support_group: Group) -> None:
    codenames = set(support_group.permissions.values_list("codename", flat=True))

    assert {"view_tenant", "view_tenantapikey", "view_syncattempt", "view_auditentry", "view_periodictask"} <= codenames
    assert {"view_platform", "view_draftsnapshot"} <= codenames
    assert all(codename.startswith("view_") for codename in codenames)
    assert not support_group.permissions.filter(content_type__app_label="auth").exists()


@pytest.mark.django_db
def test_support_sees_the_list_and_the_page_without_actions_or_buttons(support_client: Client, tenant: Tenant) -> None:
    make_api_key(tenant)

    listing = support_client.get(reverse("admin:tenants_tenant_changelist"))
    page = support_client.get(reverse("admin:tenants_tenant_change", args=[tenant.pk]))

    assert listing.status_code == 200
    assert tenant.authorizer_appid in listing.content.decode()
    assert 'name="action"' not in listing.content.decode()
    html = page.content.decode()
    assert page.status_code == 200
    assert 'id="draft-chart"' in html
    buttons = ('id="sync-now"', 'id="refresh-token"', 'id="mark-revoked"', 'id="api-key-create"', 'value="Revoke"')
    for button in (*buttons, 'value="Rotate"'):
        assert button not in html


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["sync", "refresh_token", "revoke", "api_key_create"])
def test_support_posting_a_tenant_action_is_refused_and_changes_nothing(
    support_client: Client, tenant: Tenant, name: str
) -> None:
    before = _tenant_row(tenant)

    response = support_client.post(reverse(f"admin:tenants_tenant_{name}", args=[tenant.pk]), {"name": "x"})

    assert response.status_code == 403
    assert _tenant_row(tenant) == before
    assert not AuditEntry.objects.exists()
    assert not SyncJob.objects.exists()
    assert not TenantAPIKey.objects.exists()


@pytest.mark.django_db
def test_support_cannot_open_the_revoke_confirmation(support_client: Client, tenant: Tenant) -> None:
    assert support_client.get(reverse("admin:tenants_tenant_revoke", args=[tenant.pk])).status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["api_key_revoke", "api_key_rotate"])
def test_support_revoking_or_rotating_an_api_key_is_refused_and_the_key_keeps_working(
    support_client: Client, tenant: Tenant, name: str
) -> None:
    key, raw = make_api_key(tenant)

    response = support_client.post(reverse(f"admin:tenants_tenant_{name}", args=[tenant.pk, key.prefix]))

    assert response.status_code == 403
    key.refresh_from_db()
    assert key.revoked is False
    assert key.is_valid(raw)
    assert TenantAPIKey.objects.filter(tenant=tenant).count() == 1
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["sync_selected", "refresh_tokens_selected"])
def test_support_posting_a_bulk_action_is_refused_and_changes_nothing(
    support_client: Client, tenant: Tenant, action: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    queued: list[object] = []
    monkeypatch.setattr("wxplatform.console.admin.enqueue", lambda *args, **kw: queued.append(args) or True)
    before = _tenant_row(tenant)

    response = support_client.post(
        reverse("admin:tenants_tenant_changelist"), {"action": action, "_selected_action": [tenant.pk]}
    )

    assert response.status_code == 403
    assert _tenant_row(tenant) == before
    assert queued == []
    assert not SyncJob.objects.exists()
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db
def test_support_sees_the_schedule_but_cannot_run_disable_or_edit_it(
    support_client: Client, sync_schedule: PeriodicTask
) -> None:
    task = sync_schedule
    changelist = reverse("admin:django_celery_beat_periodictask_changelist")

    listing = support_client.get(changelist)
    refused_action = support_client.post(changelist, {"action": "disable_tasks", "_selected_action": [task.pk]})
    refused_edit = support_client.post(
        reverse("admin:django_celery_beat_periodictask_change", args=[task.pk]), {"name": "renamed"}
    )

    assert listing.status_code == 200
    assert 'name="action"' not in listing.content.decode()
    assert refused_action.status_code == 403
    assert refused_edit.status_code == 403
    task.refresh_from_db()
    assert (task.enabled, task.name) == (True, "Sync draft counts (all tenants)")
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db
def test_support_sees_the_status_page_and_the_audit_log(support_client: Client) -> None:
    assert support_client.get(reverse("admin-platform-status")).status_code == 200
    assert support_client.get(reverse("admin:wxplatform_auditentry_changelist")).status_code == 200
