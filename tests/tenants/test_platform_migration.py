"""The migration of a single-platform database: every tenant, token, code and API key keeps working, and all of
them belong to the default platform, whose record now holds its secrets (encrypted) from the settings."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
from rest_framework_api_key.crypto import KeyGenerator

from tenants.models import AuthorizationCode, Tenant
from tenants.selectors import api_key_find
from tenants.services import tenant_access_token
from wxplatform.component.models import Platform
from wxplatform.component.services import default_component

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("component", "0001_initial"), ("tenants", "0014_support_group_sees_push_log")]


def _migrate(targets: list[tuple[str, str]]) -> Any:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return MigrationExecutor(connection).loader.project_state(targets).apps


def _latest() -> list[tuple[str, str]]:
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


def test_a_single_platform_database_migrates_with_every_tenant_token_and_key_working(settings: Any) -> None:
    old = _migrate(BEFORE)
    try:
        now = timezone.now()
        OldCredential = old.get_model("component", "ComponentCredential")
        OldTenant = old.get_model("tenants", "Tenant")
        OldKey = old.get_model("tenants", "TenantAPIKey")
        OldCode = old.get_model("tenants", "AuthorizationCode")
        # As a database from before several platforms holds it: the one credential row, no secrets in it.
        OldCredential.objects.all().delete()
        OldCredential.objects.create(
            component_appid=settings.WECHAT_COMPONENT_APPID,
            verify_ticket="ticket@@@from-before",
            access_token="component-token-from-before",
            access_token_expires_at=now + timedelta(hours=1),
        )
        tenants = [
            OldTenant.objects.create(
                authorizer_appid=f"wxmigrated00000{i:03d}",
                account_kind="service",
                eligibility="eligible",
                status="active",
                func_ids=[1, 11],
                access_token=f"access-{i}",
                access_token_expires_at=now + timedelta(hours=2),
                refresh_token=f"refresh-{i}",
                token_version=1,
            )
            for i in range(3)
        ]
        raw, prefix, hashed = KeyGenerator().generate()
        OldKey.objects.create(tenant=tenants[0], name="ERP", prefix=prefix, hashed_key=hashed, id=f"{prefix}.x")
        OldCode.objects.create(code_hash="c" * 64, code="pending-code", pushed=True, authorizer_appid="wxpending")
    finally:
        _migrate(_latest())

    # The migration itself copied the settings' secrets into the row (not default_component() later).
    default = Platform.objects.get()
    assert default.verify_ticket == "ticket@@@from-before"
    assert default.access_token == "component-token-from-before"
    assert (default.appsecret, default.token, default.aes_key) == (
        settings.WECHAT_COMPONENT_APPSECRET,
        settings.WECHAT_COMPONENT_TOKEN,
        settings.WECHAT_COMPONENT_AES_KEY,
    )
    migrated = list(Tenant.objects.order_by("authorizer_appid"))
    assert [t.authorizer_appid for t in migrated] == [f"wxmigrated00000{i:03d}" for i in range(3)]
    assert {t.component_id for t in migrated} == {default.pk}
    assert [t.refresh_token for t in migrated] == ["refresh-0", "refresh-1", "refresh-2"]
    assert tenant_access_token(tenant=migrated[1]) == ("access-1", 1)
    key = api_key_find(raw_key=raw)
    assert key is not None and key.tenant_id == migrated[0].pk
    assert default_component().pk == default.pk
    code = AuthorizationCode.objects.get(code_hash="c" * 64)
    assert code.component_id == default.pk and code.code == "pending-code"


def test_an_empty_database_migrates_without_inventing_tenants() -> None:
    _migrate(BEFORE)
    _migrate(_latest())

    assert Tenant.objects.count() == 0
    assert AuthorizationCode.objects.count() == 0


def test_the_rename_to_platform_keeps_every_row_and_the_groups_permissions(settings: Any) -> None:
    from django.contrib.auth.models import Group

    old = _migrate([("component", "0002_platform_record"), ("tenants", "0017_tenant_unique_per_platform")])
    try:
        OldPlatform = old.get_model("component", "ComponentCredential")
        OldPermission = old.get_model("auth", "Permission")
        OldGroup = old.get_model("auth", "Group")
        OldContentType = old.get_model("contenttypes", "ContentType")
        OldPlatform.objects.all().delete()
        OldPlatform.objects.create(component_appid="wxrenamed0000001", name="Kept", token="kept-token")
        content_type, _ = OldContentType.objects.get_or_create(app_label="component", model="componentcredential")
        view, _ = OldPermission.objects.get_or_create(
            content_type=content_type, codename="view_componentcredential", defaults={"name": "Can view"}
        )
        group = OldGroup.objects.create(name="renamed-support")
        group.permissions.add(view)
    finally:
        _migrate(_latest())

    renamed = Platform.objects.get(component_appid="wxrenamed0000001")
    assert (renamed.name, renamed.token) == ("Kept", "kept-token")
    codenames = set(Group.objects.get(name="renamed-support").permissions.values_list("codename", flat=True))
    assert codenames == {"view_platform"}
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM component_platform")
        assert cursor.fetchone()[0] >= 1
