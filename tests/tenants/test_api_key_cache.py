"""A verified API key is remembered per process for API_KEY_CACHE_SECONDS: its row is not read again in that
time, revoking or deleting it takes effect within that time, and the tenant row is still read on every
request. The lookups behind it are compiled once and load what the ORM would."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from pytest_django.fixtures import Settings

from tenants import authentication
from tenants.models import Tenant, TenantAPIKey, TenantStatus
from tenants.selectors import TENANT_API_FIELDS, api_key_find, tenant_get
from tenants.services import api_key_revoke
from tests.factories import api_headers, make_api_key, make_tenant

pytestmark = pytest.mark.django_db

TENANT_URL = "/api/v1/tenant"
DRAFT_COUNT_URL = "/api/v1/draft-count"


@pytest.fixture(autouse=True)
def remembering_keys(settings: Settings) -> Iterator[None]:
    settings.API_KEY_CACHE_SECONDS = 5
    authentication.api_key_cache_clear()
    yield
    authentication.api_key_cache_clear()


class Clock:
    """Stands in for the cache's monotonic clock, so that tests move time instead of sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(authentication, "_clock", fake)
    return fake


def fetched_tenant(**overrides: object) -> Tenant:
    return make_tenant(**{"draft_count": 15, "draft_count_fetched_at": timezone.now(), **overrides})


def error_code(response: object) -> str:
    return str(response.json()["error"]["code"])  # type: ignore[attr-defined]


# --- What is remembered, and for how long ------------------------------------------------------------


def test_a_remembered_key_is_not_read_again_but_its_tenant_is(client: Client, tenant: Tenant) -> None:
    _key, raw = make_api_key(tenant)
    assert client.get(TENANT_URL, **api_headers(raw)).status_code == 200

    with CaptureQueriesContext(connection) as queries:
        response = client.get(TENANT_URL, **api_headers(raw))

    assert response.status_code == 200
    assert len(queries) == 1
    sql = queries[0]["sql"]
    assert "tenants_tenant" in sql
    assert "tenants_tenantapikey" not in sql
    # Tokens are never loaded for a merchant.
    assert '"access_token"' not in sql
    assert '"refresh_token"' not in sql


def test_draft_count_read_with_a_remembered_key_is_one_query_for_the_draft_count_fields(client: Client) -> None:
    tenant = fetched_tenant()
    _key, raw = make_api_key(tenant)
    client.get(DRAFT_COUNT_URL, **api_headers(raw))

    with CaptureQueriesContext(connection) as queries:
        response = client.get(DRAFT_COUNT_URL, **api_headers(raw))

    assert response.status_code == 200
    assert response.json()["total_count"] == 15
    assert len(queries) == 1  # no deferred field is read afterwards
    assert "nickname" not in queries[0]["sql"]


def test_only_verified_keys_are_remembered_and_never_by_their_raw_value(client: Client, tenant: Tenant) -> None:
    _key, raw = make_api_key(tenant)
    prefix, secret = raw.split(".")
    client.get(TENANT_URL, **api_headers(f"{prefix}.{secret[::-1]}"))
    client.get(TENANT_URL, **api_headers("abcdefgh.0123456789abcdef0123456789abcdef"))
    assert authentication._verified_keys == {}

    client.get(TENANT_URL, **api_headers(raw))

    assert len(authentication._verified_keys) == 1
    [(digest, remembered)] = authentication._verified_keys.items()
    assert secret.encode() not in digest
    assert secret not in repr(remembered)
    assert remembered.tenant_id == tenant.pk


def test_a_revoked_key_is_refused_once_the_cache_time_has_passed(client: Client, tenant: Tenant, clock: Clock) -> None:
    key, raw = make_api_key(tenant)
    assert client.get(TENANT_URL, **api_headers(raw)).status_code == 200

    api_key_revoke(key=key)
    clock.now += 4.9
    within = client.get(TENANT_URL, **api_headers(raw))
    clock.now += 0.2
    after = client.get(TENANT_URL, **api_headers(raw))

    assert within.status_code == 200  # the documented bound: up to API_KEY_CACHE_SECONDS
    assert after.status_code == 401
    assert error_code(after) == "api_key_revoked"


def test_a_deleted_key_is_refused_once_the_cache_time_has_passed(client: Client, tenant: Tenant, clock: Clock) -> None:
    key, raw = make_api_key(tenant)
    assert client.get(TENANT_URL, **api_headers(raw)).status_code == 200

    TenantAPIKey.objects.filter(pk=key.pk).delete()
    clock.now += 5.1
    response = client.get(TENANT_URL, **api_headers(raw))

    assert response.status_code == 401
    assert error_code(response) == "authentication_failed"
    assert authentication._verified_keys == {}


def test_a_key_whose_expiry_passes_while_remembered_is_refused_at_once(
    client: Client, tenant: Tenant, clock: Clock
) -> None:
    _key, raw = make_api_key(tenant, expiry_date=timezone.now() + timedelta(seconds=1))
    assert client.get(TENANT_URL, **api_headers(raw)).status_code == 200

    later = timezone.now() + timedelta(seconds=2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(timezone, "now", lambda: later)
        response = client.get(TENANT_URL, **api_headers(raw))

    assert response.status_code == 401
    assert error_code(response) == "api_key_expired"


def test_with_cache_seconds_0_a_revoked_key_is_refused_at_once(
    client: Client, tenant: Tenant, settings: Settings
) -> None:
    settings.API_KEY_CACHE_SECONDS = 0
    key, raw = make_api_key(tenant)
    assert client.get(TENANT_URL, **api_headers(raw)).status_code == 200

    api_key_revoke(key=key)
    response = client.get(TENANT_URL, **api_headers(raw))

    assert response.status_code == 401
    assert error_code(response) == "api_key_revoked"
    assert authentication._verified_keys == {}


def test_a_full_cache_is_emptied_rather_than_grown(
    client: Client, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(authentication, "_VERIFIED_KEYS_MAX", 2)
    raws = [make_api_key(tenant)[1] for _ in range(3)]

    for raw in raws:
        assert client.get(TENANT_URL, **api_headers(raw)).status_code == 200

    assert len(authentication._verified_keys) == 1


# --- The tenant is never remembered ------------------------------------------------------------------


def test_tenant_changes_show_at_once_while_the_key_is_remembered(client: Client) -> None:
    tenant = fetched_tenant(draft_count=15)
    _key, raw = make_api_key(tenant)
    assert client.get(DRAFT_COUNT_URL, **api_headers(raw)).json()["total_count"] == 15

    Tenant.objects.filter(pk=tenant.pk).update(draft_count=16)
    changed = client.get(DRAFT_COUNT_URL, **api_headers(raw))
    Tenant.objects.filter(pk=tenant.pk).update(status=TenantStatus.REVOKED)
    revoked = client.get(DRAFT_COUNT_URL, **api_headers(raw))

    assert changed.json()["total_count"] == 16
    assert revoked.status_code == 403
    assert error_code(revoked) == "tenant_revoked"


def test_a_deleted_tenants_remembered_key_is_refused_at_once(client: Client) -> None:
    tenant = fetched_tenant()
    _key, raw = make_api_key(tenant)
    assert client.get(DRAFT_COUNT_URL, **api_headers(raw)).status_code == 200

    tenant.delete()
    response = client.get(DRAFT_COUNT_URL, **api_headers(raw))

    assert response.status_code == 401
    assert error_code(response) == "authentication_failed"


# --- last_used_at -----------------------------------------------------------------------------------


def test_a_remembered_key_records_its_use_once_per_touch_interval(client: Client, tenant: Tenant) -> None:
    key, raw = make_api_key(tenant)
    client.get(TENANT_URL, **api_headers(raw))
    first_use = TenantAPIKey.objects.get(pk=key.pk).last_used_at
    assert first_use is not None

    with CaptureQueriesContext(connection) as within_interval:
        client.get(TENANT_URL, **api_headers(raw))
    later = timezone.now() + timedelta(seconds=61)
    with pytest.MonkeyPatch.context() as patch, CaptureQueriesContext(connection) as after_interval:
        patch.setattr(timezone, "now", lambda: later)
        client.get(TENANT_URL, **api_headers(raw))

    assert [q["sql"].split()[0] for q in within_interval] == ["SELECT"]
    assert [q["sql"].split()[0] for q in after_interval] == ["SELECT", "UPDATE"]
    assert TenantAPIKey.objects.get(pk=key.pk).last_used_at == later


# --- The compiled lookups load what the ORM loads ------------------------------------------------------


@pytest.mark.smoke
def test_key_lookup_loads_the_key_and_tenant_as_the_orm_does() -> None:
    tenant = make_tenant(
        func_ids=[1, 11, 100],
        draft_count=7,
        draft_count_fetched_at=datetime(2025, 3, 1, 8, 30, 15, 123456, tzinfo=UTC),
    )
    stored, raw = make_api_key(tenant, expiry_date=datetime(2030, 1, 1, tzinfo=UTC))

    key = api_key_find(raw_key=raw)

    assert key is not None
    orm_key = TenantAPIKey.objects.get(pk=stored.pk)
    orm_tenant = Tenant.objects.get(pk=tenant.pk)
    for field in TenantAPIKey._meta.concrete_fields:
        assert getattr(key, field.attname) == getattr(orm_key, field.attname), field.attname
    for name in TENANT_API_FIELDS:
        assert getattr(key.tenant, name) == getattr(orm_tenant, name), name
    assert key.tenant.get_deferred_fields() == {"access_token", "refresh_token"}
    assert key.tenant.func_ids == [1, 11, 100]
    assert key.tenant.draft_count_fetched_at == datetime(2025, 3, 1, 8, 30, 15, 123456, tzinfo=UTC)


@pytest.mark.smoke
def test_tenant_lookup_loads_only_the_fields_asked_for() -> None:
    tenant = make_tenant(draft_count=7)

    loaded = tenant_get(tenant_id=tenant.pk, fields=("draft_count", "status"))

    assert loaded is not None
    assert (loaded.pk, loaded.draft_count, loaded.status) == (tenant.pk, 7, "active")
    assert "nickname" in loaded.get_deferred_fields()
    assert tenant_get(tenant_id=tenant.pk + 1000) is None


def test_tenant_lookup_refuses_a_field_the_tenant_does_not_have(tenant: Tenant) -> None:
    with pytest.raises(ValueError, match="not fields of Tenant"):
        tenant_get(tenant_id=tenant.pk, fields=("draft_cont",))
