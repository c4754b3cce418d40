"""Events are written by the change that causes them, in its transaction: the sync's bulk write (changed
counts, rejections), revocation, re-authorization (active again, eligibility changed) and needs-reauth."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.utils import timezone

from drafts.models import SyncChunk, SyncTrigger
from drafts.services import draft_count_chunk_sync, draft_count_run_start
from tenants.models import Eligibility, EventType, OutboxEvent, Tenant, TenantStatus
from tenants.services import tenant_revoke, tenant_token_refresh
from tests.factories import make_tenant
from tests.fixtures.platform import LivePlatform, onboard
from tests.fixtures.sandbox import Sandbox
from tests.fixtures.sync import sandbox_tenant
from tests.webhooks.helpers import make_endpoint
from webhooks.services import endpoint_update
from wxplatform.component.services import default_component
from wxplatform.core.times import machine_time
from wxplatform.wechat.errors import RefreshTokenError

HOOK = "https://hooks.example.net/wx"


def events(tenant: Tenant, type: str | None = None) -> list[OutboxEvent]:
    rows = OutboxEvent.objects.filter(tenant=tenant).order_by("created_at")
    return list(rows.filter(type=type) if type else rows)


def run_chunks() -> list[int]:
    run = draft_count_run_start(trigger=SyncTrigger.SCHEDULE, enqueue_chunks=False).run
    chunk_ids = list(run.chunks.order_by("index").values_list("pk", flat=True))
    for chunk_id in chunk_ids:
        draft_count_chunk_sync(chunk_id=chunk_id, chain=False)
    return chunk_ids


@pytest.mark.django_db
def test_the_sync_writes_one_event_per_changed_count_for_subscribed_tenants_only(
    sync_settings: Sandbox, settings: Any
) -> None:
    sandbox = sync_settings
    changes, stays, unsubscribed, other_events = (sandbox_tenant(sandbox, draft_count=5) for _ in range(4))
    for tenant in (changes, stays, unsubscribed):
        Tenant.objects.filter(pk=tenant.pk).update(
            draft_count=5, draft_count_fetched_at=timezone.now() - timedelta(hours=1)
        )
    make_endpoint(changes, HOOK, events=[EventType.DRAFT_COUNT_CHANGED])
    make_endpoint(stays, HOOK, events=[EventType.DRAFT_COUNT_CHANGED])
    make_endpoint(other_events, HOOK, events=[EventType.TENANT_STATUS_CHANGED])
    disabled, _secret = make_endpoint(unsubscribed, HOOK, events=[EventType.DRAFT_COUNT_CHANGED])
    endpoint_update(endpoint=disabled, enabled=False)
    sandbox.control.update_authorizer(changes.authorizer_appid, draft_count=9)
    sandbox.control.update_authorizer(unsubscribed.authorizer_appid, draft_count=9)

    run_chunks()

    [event] = events(changes)
    changes.refresh_from_db()
    assert event.type == EventType.DRAFT_COUNT_CHANGED
    assert event.payload == {
        "appid": changes.authorizer_appid,
        "total_count": 9,
        "previous_total_count": 5,
        "fetched_at": machine_time(changes.draft_count_fetched_at),
    }
    assert events(stays) == []
    assert events(unsubscribed) == []  # its count changed, but its only endpoint is disabled
    assert events(other_events) == []  # a first count (None → 5), but not subscribed to counts


@pytest.mark.django_db
def test_a_redelivered_chunk_writes_no_second_event(sync_settings: Sandbox) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=4)
    make_endpoint(tenant, HOOK)

    [chunk_id] = run_chunks()
    draft_count_chunk_sync(chunk_id=chunk_id, chain=False)

    assert SyncChunk.objects.get(pk=chunk_id).done_at is not None
    [event] = events(tenant)
    assert (event.payload["total_count"], event.payload["previous_total_count"]) == (4, None)


@pytest.mark.django_db
def test_a_rejection_by_wechat_writes_an_eligibility_event(sync_settings: Sandbox) -> None:
    sandbox = sync_settings
    tenant = sandbox_tenant(sandbox)
    make_endpoint(tenant, HOOK, events=[EventType.TENANT_ELIGIBILITY_CHANGED])
    sandbox.control.update_authorizer(tenant.authorizer_appid, func_ids=[1])

    run_chunks()

    tenant.refresh_from_db()
    assert tenant.eligibility == Eligibility.REJECTED
    [event] = events(tenant)
    assert event.type == EventType.TENANT_ELIGIBILITY_CHANGED
    assert event.payload["eligibility"] == "rejected"
    assert event.payload["previous_eligibility"] == "eligible"
    assert event.payload["reason"] == tenant.eligibility_detail


@pytest.mark.django_db
def test_revocation_writes_a_status_event_once() -> None:
    tenant = make_tenant()

    tenant_revoke(component_id=default_component().pk, authorizer_appid=tenant.authorizer_appid)
    tenant_revoke(component_id=default_component().pk, authorizer_appid=tenant.authorizer_appid)

    [event] = events(tenant)
    assert (event.type, event.payload["status"], event.payload["previous_status"]) == (
        EventType.TENANT_STATUS_CHANGED,
        TenantStatus.REVOKED,
        TenantStatus.ACTIVE,
    )


def authorize_again(platform: LivePlatform, appid: str) -> None:
    page = requests.get(f"{platform.url}/wechat/authorize", timeout=10)
    link = unescape(re.search(r'id="authorize-pc"[^>]*href="([^"]+)"', page.text).group(1))  # type: ignore[union-attr]
    query = {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}
    answer = platform.control.consent(query["pre_auth_code"], appid, redirect_uri=query["redirect_uri"], push=False)
    assert requests.get(answer["redirect_url"], timeout=30).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_re_authorization_writes_active_again_and_the_eligibility_change(ready_platform: LivePlatform) -> None:
    tenant = onboard(ready_platform)
    tenant_revoke(component_id=default_component().pk, authorizer_appid=tenant.authorizer_appid)
    ready_platform.control.update_authorizer(tenant.authorizer_appid, func_ids=[1])

    authorize_again(ready_platform, tenant.authorizer_appid)

    revoked, active, eligibility = events(tenant)
    assert (revoked.payload["status"], active.payload["status"]) == ("revoked", "active")
    assert active.payload["previous_status"] == "revoked"
    assert eligibility.type == EventType.TENANT_ELIGIBILITY_CHANGED
    assert (eligibility.payload["previous_eligibility"], eligibility.payload["eligibility"]) == (
        "eligible",
        "missing_permission",
    )
    assert "11" in eligibility.payload["reason"]


@pytest.mark.django_db(transaction=True)
def test_a_dead_refresh_token_writes_needs_reauthorization(ready_platform: LivePlatform) -> None:
    tenant = onboard(ready_platform)
    ready_platform.control.update_authorizer(tenant.authorizer_appid, omit_refresh_token_in_list=True)
    Tenant.objects.filter(pk=tenant.pk).update(
        refresh_token="stale-refresh-token", access_token_expires_at=timezone.now() - timedelta(seconds=1)
    )

    with pytest.raises(RefreshTokenError):
        tenant_token_refresh(tenant_id=tenant.pk)

    [event] = events(tenant)
    assert (event.payload["status"], event.payload["previous_status"]) == ("needs_reauth", "active")
