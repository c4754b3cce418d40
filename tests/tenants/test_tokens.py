"""Authorizer and component tokens: refreshed ahead of expiry, single-flight, never overwritten by older ones."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from tenants.models import Tenant, TenantStatus
from tenants.services import (
    TenantNotActive,
    tenant_access_token,
    tenant_revoke,
    tenant_token_refresh,
)
from tenants.tasks import refresh_token
from tests.factories import make_tenant
from tests.fixtures.platform import LivePlatform, onboard
from wxplatform.component.clients import wechat_client
from wxplatform.component.models import Platform
from wxplatform.component.services import default_component
from wxplatform.component.tasks import refresh_component_token
from wxplatform.wechat.errors import RefreshTokenError

pytestmark = pytest.mark.django_db(transaction=True)

AUTHORIZER_TOKEN = "/cgi-bin/component/api_authorizer_token"
COMPONENT_TOKEN = "/cgi-bin/component/api_component_token"


def calls(platform: LivePlatform, path: str) -> int:
    return int(platform.control.counters()["endpoints"].get(path, {}).get("calls", 0))


def expire_locally(tenant: Tenant) -> None:
    Tenant.objects.filter(pk=tenant.pk).update(access_token_expires_at=timezone.now() - timedelta(seconds=1))


def draft_count(token: str) -> int:
    return wechat_client().draft_count(access_token=token)


def wait_until(predicate: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def test_tokens_are_encrypted_at_rest(ready_platform: LivePlatform) -> None:
    tenant = onboard(ready_platform)

    with connection.cursor() as cursor:
        cursor.execute("SELECT access_token, refresh_token FROM tenants_tenant WHERE id = %s", [tenant.pk])
        raw_access, raw_refresh = cursor.fetchone()
    assert tenant.access_token not in raw_access
    assert tenant.refresh_token not in raw_refresh


def test_expired_token_is_refreshed_before_use(ready_platform: LivePlatform) -> None:
    tenant = onboard(ready_platform, draft_count=6)
    old_token, old_version = tenant.access_token, tenant.token_version
    expire_locally(tenant)
    tenant.refresh_from_db()

    token, version = tenant_access_token(tenant=tenant)

    assert token != old_token and version == old_version + 1
    assert draft_count(token) == 6
    assert calls(ready_platform, AUTHORIZER_TOKEN) == 1


def test_fresh_token_is_used_without_calling_wechat(ready_platform: LivePlatform) -> None:
    tenant = onboard(ready_platform)

    token, _version = tenant_access_token(tenant=tenant)

    assert token == tenant.access_token
    assert calls(ready_platform, AUTHORIZER_TOKEN) == 0


def test_an_older_token_never_replaces_a_newer_one(ready_platform: LivePlatform) -> None:
    tenant = onboard(ready_platform)
    stale_version = tenant.token_version
    expire_locally(tenant)
    newer, newer_version = tenant_token_refresh(tenant_id=tenant.pk, stale_version=stale_version)

    # A second refresher that saw the same stale version arrives late: it gets the newer token, no call.
    again, again_version = tenant_token_refresh(tenant_id=tenant.pk, stale_version=stale_version)

    assert (again, again_version) == (newer, newer_version)
    assert calls(ready_platform, AUTHORIZER_TOKEN) == 1


def test_refresh_token_rejected_is_recovered_from_the_authorizer_list(ready_platform: LivePlatform) -> None:
    tenant = onboard(ready_platform, draft_count=2)
    real_refresh = tenant.refresh_token
    Tenant.objects.filter(pk=tenant.pk).update(refresh_token="stale-refresh-token")
    expire_locally(tenant)

    token, _version = tenant_token_refresh(tenant_id=tenant.pk)

    tenant.refresh_from_db()
    assert tenant.refresh_token == real_refresh
    assert tenant.status == TenantStatus.ACTIVE
    assert draft_count(token) == 2


def test_unrecoverable_refresh_token_marks_the_tenant_for_reauthorization(ready_platform: LivePlatform) -> None:
    tenant = onboard(ready_platform)
    ready_platform.control.update_authorizer(tenant.authorizer_appid, omit_refresh_token_in_list=True)
    Tenant.objects.filter(pk=tenant.pk).update(refresh_token="stale-refresh-token")
    expire_locally(tenant)

    with pytest.raises(RefreshTokenError):
        tenant_token_refresh(tenant_id=tenant.pk)

    tenant.refresh_from_db()
    assert tenant.status == TenantStatus.NEEDS_REAUTH
    assert (tenant.access_token, tenant.refresh_token, tenant.last_error_code) == ("", "", 61023)
    with pytest.raises(TenantNotActive):
        tenant_access_token(tenant=tenant)


def test_threads_meeting_an_expired_token_make_one_refresh(ready_platform: LivePlatform) -> None:
    tenant = onboard(ready_platform)
    expire_locally(tenant)
    tenant.refresh_from_db()
    tokens: list[str] = []

    def use() -> None:
        tokens.append(tenant_access_token(tenant=tenant)[0])
        connection.close()

    threads = [threading.Thread(target=use) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(tokens) == 16 and len(set(tokens)) == 1
    assert calls(ready_platform, AUTHORIZER_TOKEN) == 1


def test_many_worker_processes_meeting_an_expired_token_make_one_refresh(
    ready_platform: LivePlatform, worker_factory: Any
) -> None:
    tenant = onboard(ready_platform)
    expire_locally(tenant)
    worker_factory(concurrency=8)

    for _ in range(32):
        refresh_token.delay(tenant.pk)

    wait_until(lambda: Tenant.objects.get(pk=tenant.pk).access_token_expires_at > timezone.now())
    time.sleep(2)  # let the other 31 tasks run: each must find the fresh token and not call WeChat
    assert calls(ready_platform, AUTHORIZER_TOKEN) == 1


def test_component_token_storm_across_worker_processes_makes_one_call(
    ready_platform: LivePlatform, worker_factory: Any
) -> None:
    Platform.objects.update(access_token="", access_token_expires_at=None)
    ready_platform.control.reset_counters()
    worker_factory(concurrency=8)

    for _ in range(24):
        refresh_component_token.delay()

    wait_until(lambda: Platform.objects.exclude(access_token="").exists())
    time.sleep(2)
    assert calls(ready_platform, COMPONENT_TOKEN) == 1


def test_revocation_purges_tokens_and_keeps_history(ready_platform: LivePlatform) -> None:
    tenant = onboard(ready_platform)
    Tenant.objects.filter(pk=tenant.pk).update(draft_count=5)

    ready_platform.control.revoke(tenant.authorizer_appid, push=True)

    tenant.refresh_from_db()
    assert tenant.status == TenantStatus.REVOKED
    assert (tenant.access_token, tenant.refresh_token, tenant.access_token_expires_at) == ("", "", None)
    assert tenant.draft_count == 5
    with pytest.raises(TenantNotActive):
        tenant_access_token(tenant=tenant)


def test_a_late_unauthorized_push_does_not_revoke_a_newer_authorization(ready_platform: LivePlatform) -> None:
    tenant = onboard(ready_platform)

    tenant_revoke(
        component_id=default_component().pk,
        authorizer_appid=tenant.authorizer_appid,
        revoked_at=timezone.now() - timedelta(minutes=5),
    )

    tenant.refresh_from_db()
    assert tenant.status == TenantStatus.ACTIVE
    assert tenant.access_token


@pytest.mark.django_db
def test_the_beat_refresher_leaves_wechat_test_accounts_alone() -> None:
    from tenants.services import tenants_with_expiring_tokens

    soon = timezone.now() + timedelta(minutes=5)
    merchant = make_tenant(access_token_expires_at=soon)
    make_tenant(authorizer_appid="wx570bc396a51b8ff8", access_token_expires_at=soon, is_test_account=True)

    assert tenants_with_expiring_tokens(within=timedelta(minutes=30)) == [merchant.pk]
