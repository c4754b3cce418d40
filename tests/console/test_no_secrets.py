"""No admin page ever shows a secret: every page is rendered for rows holding known token values, and the
HTML is searched for those values (and for their ciphertexts)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from drafts.models import AttemptOutcome, JobState, SyncAttempt, SyncJob, SyncRun, SyncTrigger
from tenants.models import AuthorizationCode, Tenant
from tests.factories import make_api_key, make_service_key, make_snapshot, make_tenant
from wxplatform.authority.models import TokenHandout
from wxplatform.component.models import Platform
from wxplatform.component.services import component_add, default_component
from wxplatform.core.encryption import encrypt_str
from wxplatform.models import AuditEntry

TENANT_ACCESS = "tenant-access-token-KNOWN-1111"
TENANT_REFRESH = "tenant-refresh-token-KNOWN-2222"
TICKET = "ticket@@@KNOWN-3333"
COMPONENT_TOKEN = "component-access-token-KNOWN-4444"
PLATFORM_SECRET = "platform-appsecret-KNOWN-5555"
PLATFORM_TOKEN = "platformtokenKNOWN6666"
PLATFORM_AES_KEY = "KNOWN7777abcdefghijklmnopqrstuvwxyz01234567"
AUTH_CODE = "queryauthcode@@@KNOWN-5555"


def _stored(table: str, column: str, pk: object) -> str:
    """The column as stored (the ciphertext), read past the field's decryption."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])  # noqa: S608 - fixed names
        return str(cursor.fetchone()[0])


@pytest.fixture
def secrets_everywhere(admin_user: object) -> list[str]:
    """Rows of every kind the admin shows, holding known secrets; returns every value that must not appear."""
    now = timezone.now()
    tenant = make_tenant(
        nickname="Secretive",
        access_token=TENANT_ACCESS,
        refresh_token=TENANT_REFRESH,
        draft_count=4,
        draft_count_fetched_at=now,
        last_error_code=40001,
        last_error_message="invalid credential",
        last_error_at=now,
    )
    credential = default_component()
    Platform.objects.filter(pk=credential.pk).update(
        verify_ticket=encrypt_str(TICKET),
        ticket_received_at=now,
        access_token=encrypt_str(COMPONENT_TOKEN),
        access_token_expires_at=now + timedelta(hours=1),
    )
    # A second platform, whose own secrets were given in the admin or to add_component.
    other = component_add(
        appid="wx00secretive00000", secret=PLATFORM_SECRET, token=PLATFORM_TOKEN, aes_key=PLATFORM_AES_KEY
    )
    make_tenant(component=other, nickname="Second's merchant")
    code = AuthorizationCode.objects.create(
        component=default_component(), code_hash="f" * 64, code=AUTH_CODE, tenant=tenant
    )
    key, raw_key = make_api_key(tenant, name="ERP")
    service_key, raw_service_key = make_service_key(name="publishing", component=default_component())
    TokenHandout.objects.create(
        key=service_key, kind="authorizer", component_appid=credential.component_appid,
        authorizer_appid=tenant.authorizer_appid, outcome="issued", at=now,
    )  # fmt: skip
    make_snapshot(tenant, total_count=4, fetched_at=now - timedelta(days=1))
    SyncAttempt.objects.create(
        tenant=tenant, at=now, trigger=SyncTrigger.SCHEDULE, outcome=AttemptOutcome.FAILED, errcode=40001
    )
    SyncJob.objects.create(tenant=tenant, trigger=SyncTrigger.ADMIN, state=JobState.SUCCEEDED, total_count=4)
    SyncRun.objects.create(trigger=SyncTrigger.SCHEDULE, chunks_total=1, chunks_done=1, changed=1)
    # An entry written carelessly by some other code path: the audit log must still not show the secret.
    AuditEntry.objects.create(
        actor_label="system",
        action="tenant.debug",
        target=f"tenant:{tenant.pk}",
        detail={"access_token": TENANT_ACCESS, "nested": {"refresh_token": TENANT_REFRESH}, "raw_key": raw_key},
    )
    for obj in (tenant, credential):
        LogEntry.objects.log_action(
            user_id=admin_user.pk,  # type: ignore[attr-defined]
            content_type_id=ContentType.objects.get_for_model(obj).pk,
            object_id=obj.pk,
            object_repr=str(obj),
            action_flag=CHANGE,
            change_message='[{"changed": {"fields": ["status"]}}]',
        )
    return [
        TENANT_ACCESS,
        TENANT_REFRESH,
        TICKET,
        COMPONENT_TOKEN,
        AUTH_CODE,
        PLATFORM_SECRET,
        PLATFORM_TOKEN,
        PLATFORM_AES_KEY,
        settings.WECHAT_COMPONENT_APPSECRET,
        settings.WECHAT_COMPONENT_AES_KEY,
        raw_key,
        key.hashed_key,
        raw_service_key,
        service_key.hashed_key,
        _stored("tenants_tenant", "access_token", tenant.pk),
        _stored("tenants_tenant", "refresh_token", tenant.pk),
        _stored("component_platform", "verify_ticket", credential.pk),
        _stored("component_platform", "access_token", credential.pk),
        _stored("tenants_authorizationcode", "code", code.pk),
        _stored("component_platform", "appsecret", other.pk),
        _stored("component_platform", "aes_key", other.pk),
        _stored("component_platform", "token", other.pk),
        settings.WECHAT_COMPONENT_TOKEN,
        *(_stored("component_platform", column, credential.pk) for column in ("appsecret", "token", "aes_key")),
    ]


def _every_admin_url() -> list[str]:
    urls = [
        reverse("admin:index"),
        reverse("admin-platform-status"),
        reverse("admin:tenants_tenant_changelist") + "?failing=yes",
        reverse("admin:tenants_tenant_changelist") + "?q=Secretive",
        reverse("admin:component_platform_add"),
    ]
    for model in admin.site._registry:
        name = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        urls.append(reverse("admin:app_list", args=[model._meta.app_label]))
        urls.append(reverse(f"{name}_changelist"))
        for pk in model._default_manager.values_list("pk", flat=True)[:5]:
            urls.append(reverse(f"{name}_change", args=[pk]))
            urls.append(reverse(f"{name}_history", args=[pk]))
    for tenant in Tenant.objects.all():
        urls.append(reverse("admin:tenants_tenant_revoke", args=[tenant.pk]))
    return sorted(set(urls))


@pytest.mark.django_db
def test_no_admin_page_shows_a_token_ticket_code_or_key(admin_client: Client, secrets_everywhere: list[str]) -> None:
    urls = _every_admin_url()
    assert reverse("admin:tenants_tenant_change", args=[Tenant.objects.get(nickname="Secretive").pk]) in urls
    assert reverse("admin:component_platform_change", args=[default_component().pk]) in urls
    assert any("/wxplatform/auditentry/" in url and url.rstrip("/").split("/")[-2].isdigit() for url in urls)

    for url in urls:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        for secret in secrets_everywhere:
            assert secret not in html, f"{url} shows a secret"


@pytest.mark.django_db
def test_the_support_group_sees_no_secret_either(support_client: Client, secrets_everywhere: list[str]) -> None:
    for url in _every_admin_url():
        response = support_client.get(url)
        # Pages of apps it may not see (users, groups) are refused or hidden.
        assert response.status_code in (200, 403, 404), url
        html = response.content.decode()
        for secret in secrets_everywhere:
            assert secret not in html, f"{url} shows a secret"


@pytest.mark.django_db
def test_audit_entry_detail_hides_secret_looking_keys(admin_client: Client, secrets_everywhere: list[str]) -> None:
    entry = AuditEntry.objects.get(action="tenant.debug")

    html = admin_client.get(reverse("admin:wxplatform_auditentry_change", args=[entry.pk])).content.decode()

    assert "&quot;access_token&quot;: &quot;***&quot;" in html
    assert "&quot;refresh_token&quot;: &quot;***&quot;" in html
