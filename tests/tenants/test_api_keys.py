"""API keys: issued hashed and shown once, resolved to their tenant, refused when revoked or expired (from
the very next request: nothing is remembered between requests), rotated and revoked by services, issued by
`manage.py issue_api_key`, throttled per key."""

from __future__ import annotations

import re
import socket
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import ManagementUtility, call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries
from pytest_django.fixtures import Settings

from tenants.models import Tenant, TenantAPIKey, TenantStatus
from tenants.selectors import TENANT_API_FIELDS, api_key_find
from tenants.services import APIKeyAlreadyRevoked, api_key_issue, api_key_replace, api_key_revoke, api_key_rotate
from tests.factories import make_api_key, make_tenant

pytestmark = pytest.mark.django_db

TENANT_URL = "/api/v1/tenant"
KEY_SHAPE = re.compile(r"[A-Za-z0-9]{8}\.[A-Za-z0-9]{32}")


def auth(raw: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Api-Key {raw}"}


def error_of(response: object) -> dict[str, object]:
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"}, body
    return dict(body["error"])


# --- Issuing -----------------------------------------------------------------------------------------


def test_issued_key_is_stored_only_as_its_hash_with_a_visible_prefix(tenant: Tenant) -> None:
    key, raw = api_key_issue(tenant=tenant, name="shop backend")

    assert KEY_SHAPE.fullmatch(raw)
    prefix, secret = raw.split(".")
    stored = TenantAPIKey.objects.get(pk=key.pk)
    assert stored.prefix == prefix
    assert stored.name == "shop backend"
    assert stored.tenant_id == tenant.pk
    assert stored.created is not None
    assert stored.last_used_at is None
    assert stored.hashed_key.startswith("sha512$$")
    assert secret not in stored.hashed_key
    assert secret not in stored.id
    assert not TenantAPIKey.objects.filter(hashed_key__contains=secret).exists()


@pytest.mark.smoke
def test_a_tenant_can_hold_several_keys_and_each_authenticates(client: Client, tenant: Tenant) -> None:
    _first, raw_first = make_api_key(tenant, name="first")
    _second, raw_second = make_api_key(tenant, name="second")

    for raw in (raw_first, raw_second):
        response = client.get(TENANT_URL, **auth(raw))
        assert response.status_code == 200
        assert response.json()["appid"] == tenant.authorizer_appid


def test_each_key_resolves_to_its_own_tenant(client: Client, tenant: Tenant, other_tenant: Tenant) -> None:
    _key, raw = make_api_key(tenant)
    _other, other_raw = make_api_key(other_tenant)

    assert client.get(TENANT_URL, **auth(raw)).json()["appid"] == tenant.authorizer_appid
    assert client.get(TENANT_URL, **auth(other_raw)).json()["appid"] == other_tenant.authorizer_appid


# --- Refused keys: 401 in the one error shape ----------------------------------------------------------


@pytest.mark.smoke
def test_request_without_a_key_is_401_not_authenticated(client: Client) -> None:
    response = client.get(TENANT_URL)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Api-Key"
    error = error_of(response)
    assert error["code"] == "not_authenticated"
    assert error["message"] == "Authentication credentials were not provided."


@pytest.mark.parametrize(
    "header",
    [
        "Api-Key",
        "Api-Key ",
        "Api-Key not-a-key",
        "Api-Key abcdefgh.",
        "Api-Key abcdefgh.0123456789abcdef0123456789abcdef",
        "Bearer abcdefgh.0123456789abcdef0123456789abcdef",
        "Api-Key abc\x00defg.0123456789abcdef0123456789abcdef",
        "Api-Key " + "x" * 5000,
    ],
)
def test_garbled_or_unknown_key_is_401_authentication_failed(client: Client, tenant: Tenant, header: str) -> None:
    make_api_key(tenant)

    response = client.get(TENANT_URL, HTTP_AUTHORIZATION=header)

    assert response.status_code == 401
    assert error_of(response)["code"] == "authentication_failed"


def test_key_with_right_prefix_but_wrong_secret_is_401_authentication_failed(client: Client, tenant: Tenant) -> None:
    _key, raw = make_api_key(tenant)
    prefix, secret = raw.split(".")
    forged = f"{prefix}.{secret[::-1]}"

    response = client.get(TENANT_URL, **auth(forged))

    assert response.status_code == 401
    assert error_of(response)["code"] == "authentication_failed"


def test_revoked_key_is_401_api_key_revoked(client: Client, tenant: Tenant) -> None:
    key, raw = make_api_key(tenant)
    api_key_revoke(key=key)

    response = client.get(TENANT_URL, **auth(raw))

    assert response.status_code == 401
    assert error_of(response) | {"request_id": "-"} == {
        "code": "api_key_revoked",
        "message": "This API key has been revoked.",
        "request_id": "-",
    }


def test_expired_key_is_401_api_key_expired(client: Client, tenant: Tenant) -> None:
    _key, raw = make_api_key(tenant, expiry_date=timezone.now() - timedelta(seconds=1))

    response = client.get(TENANT_URL, **auth(raw))

    assert response.status_code == 401
    assert error_of(response)["code"] == "api_key_expired"


def test_key_expiring_later_still_works(client: Client, tenant: Tenant) -> None:
    _key, raw = make_api_key(tenant, expiry_date=timezone.now() + timedelta(days=1))

    assert client.get(TENANT_URL, **auth(raw)).status_code == 200


def test_refused_key_leaves_last_used_at_unset(client: Client, tenant: Tenant) -> None:
    key, raw = make_api_key(tenant)
    api_key_revoke(key=key)

    client.get(TENANT_URL, **auth(raw))

    key.refresh_from_db()
    assert key.last_used_at is None


# --- Every request reads the key and its tenant anew ----------------------------------------------------


def test_a_key_revoked_after_use_is_refused_on_the_next_request(client: Client, tenant: Tenant) -> None:
    key, raw = make_api_key(tenant)
    assert client.get(TENANT_URL, **auth(raw)).status_code == 200

    api_key_revoke(key=key)
    response = client.get(TENANT_URL, **auth(raw))

    assert response.status_code == 401
    assert error_of(response)["code"] == "api_key_revoked"


def test_a_key_deleted_after_use_is_refused_on_the_next_request(client: Client, tenant: Tenant) -> None:
    key, raw = make_api_key(tenant)
    assert client.get(TENANT_URL, **auth(raw)).status_code == 200

    TenantAPIKey.objects.filter(pk=key.pk).delete()
    response = client.get(TENANT_URL, **auth(raw))

    assert response.status_code == 401
    assert error_of(response)["code"] == "authentication_failed"


def test_a_key_whose_expiry_passes_between_requests_is_refused(client: Client, tenant: Tenant) -> None:
    _key, raw = make_api_key(tenant, expiry_date=timezone.now() + timedelta(seconds=1))
    assert client.get(TENANT_URL, **auth(raw)).status_code == 200

    later = timezone.now() + timedelta(seconds=2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(timezone, "now", lambda: later)
        response = client.get(TENANT_URL, **auth(raw))

    assert response.status_code == 401
    assert error_of(response)["code"] == "api_key_expired"


def test_tenant_changes_show_on_the_next_request(client: Client) -> None:
    tenant = make_tenant(draft_count=15, draft_count_fetched_at=timezone.now())
    _key, raw = make_api_key(tenant)
    assert client.get("/api/v1/draft-count", **auth(raw)).json()["total_count"] == 15

    Tenant.objects.filter(pk=tenant.pk).update(draft_count=16)
    changed = client.get("/api/v1/draft-count", **auth(raw))
    Tenant.objects.filter(pk=tenant.pk).update(status=TenantStatus.REVOKED)
    revoked = client.get("/api/v1/draft-count", **auth(raw))

    assert changed.json()["total_count"] == 16
    assert revoked.status_code == 403
    assert error_of(revoked)["code"] == "tenant_revoked"


def test_the_key_of_a_deleted_tenant_is_refused_on_the_next_request(client: Client, tenant: Tenant) -> None:
    _key, raw = make_api_key(tenant)
    assert client.get(TENANT_URL, **auth(raw)).status_code == 200

    tenant.delete()
    response = client.get(TENANT_URL, **auth(raw))

    assert response.status_code == 401
    assert error_of(response)["code"] == "authentication_failed"


# --- The lookup: one query, key and tenant, never the tokens --------------------------------------------


@pytest.mark.smoke
def test_key_lookup_loads_the_key_and_every_tenant_field_but_the_tokens() -> None:
    tenant = make_tenant(
        func_ids=[1, 11, 100],
        draft_count=7,
        draft_count_fetched_at=datetime(2025, 3, 1, 8, 30, 15, 123456, tzinfo=UTC),
    )
    stored, raw = make_api_key(tenant, expiry_date=datetime(2030, 1, 1, tzinfo=UTC))

    with CaptureQueriesContext(connection) as queries:
        key = api_key_find(raw_key=raw)
        assert key is not None
        loaded = {field.attname: getattr(key, field.attname) for field in TenantAPIKey._meta.concrete_fields}
        tenant_values = {name: getattr(key.tenant, name) for name in TENANT_API_FIELDS}

    assert len(queries) == 1
    assert '"access_token"' not in queries[0]["sql"]
    assert '"refresh_token"' not in queries[0]["sql"]
    orm_key = TenantAPIKey.objects.get(pk=stored.pk)
    orm_tenant = Tenant.objects.get(pk=tenant.pk)
    assert loaded == {field.attname: getattr(orm_key, field.attname) for field in TenantAPIKey._meta.concrete_fields}
    assert tenant_values == {name: getattr(orm_tenant, name) for name in TENANT_API_FIELDS}
    # The platform is not loaded either: the merchant API names none.
    assert key.tenant.get_deferred_fields() == {"access_token", "refresh_token", "component_id"}


def test_key_lookup_loads_only_the_tenant_fields_asked_for(tenant: Tenant) -> None:
    _stored, raw = make_api_key(tenant)

    key = api_key_find(raw_key=raw, tenant_fields=("draft_count", "status"))

    assert key is not None
    assert (key.tenant.pk, key.tenant.status) == (tenant.pk, "active")
    assert {"nickname", "access_token", "refresh_token"} <= key.tenant.get_deferred_fields()
    assert "draft_count" not in key.tenant.get_deferred_fields()


# --- Revoked tenants ------------------------------------------------------------------------------------


def test_key_of_revoked_tenant_still_reads_its_profile(client: Client) -> None:
    revoked = make_tenant(status=TenantStatus.REVOKED, revoked_at=timezone.now(), access_token="", refresh_token="")
    _key, raw = make_api_key(revoked)

    response = client.get(TENANT_URL, **auth(raw))

    assert response.status_code == 200
    assert response.json()["status"] == "revoked"


# --- last_used_at ------------------------------------------------------------------------------------


def test_first_use_records_last_used_at(client: Client, tenant: Tenant) -> None:
    key, raw = make_api_key(tenant)
    before = timezone.now()

    client.get(TENANT_URL, **auth(raw))

    key.refresh_from_db()
    assert key.last_used_at is not None
    assert before <= key.last_used_at <= timezone.now()


def test_use_within_the_touch_interval_writes_nothing(
    client: Client, tenant: Tenant, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    key, raw = make_api_key(tenant)
    recently = timezone.now() - timedelta(seconds=30)
    TenantAPIKey.objects.filter(pk=key.pk).update(last_used_at=recently)

    with django_assert_num_queries(1):  # the key and its tenant, nothing written
        response = client.get(TENANT_URL, **auth(raw))

    assert response.status_code == 200
    key.refresh_from_db()
    assert key.last_used_at == recently


def test_use_after_the_touch_interval_moves_last_used_at_with_one_conditional_update(
    client: Client, tenant: Tenant
) -> None:
    key, raw = make_api_key(tenant)
    long_ago = timezone.now() - timedelta(seconds=61)
    TenantAPIKey.objects.filter(pk=key.pk).update(last_used_at=long_ago)

    with CaptureQueriesContext(connection) as due:
        client.get(TENANT_URL, **auth(raw))
    with CaptureQueriesContext(connection) as not_due:
        client.get(TENANT_URL, **auth(raw))

    assert [query["sql"].split()[0] for query in due] == ["SELECT", "UPDATE"]
    assert [query["sql"].split()[0] for query in not_due] == ["SELECT"]
    key.refresh_from_db()
    assert key.last_used_at is not None
    assert key.last_used_at > long_ago + timedelta(seconds=60)


# --- Revoke and rotate -------------------------------------------------------------------------------


def test_revoke_reports_whether_it_revoked(tenant: Tenant) -> None:
    key, _raw = make_api_key(tenant)

    assert api_key_revoke(key=key) is True
    assert api_key_revoke(key=key) is False
    assert TenantAPIKey.objects.get(pk=key.pk).revoked is True


def test_rotate_issues_a_working_key_with_the_same_name_and_revokes_the_old(client: Client, tenant: Tenant) -> None:
    old, old_raw = make_api_key(tenant, name="erp")

    new, new_raw = api_key_rotate(key=old)

    assert new.pk != old.pk
    assert new.name == "erp"
    assert new.tenant_id == tenant.pk
    assert TenantAPIKey.objects.get(pk=old.pk).revoked is True
    assert client.get(TENANT_URL, **auth(new_raw)).status_code == 200
    assert error_of(client.get(TENANT_URL, **auth(old_raw)))["code"] == "api_key_revoked"


def test_rotate_can_rename(tenant: Tenant) -> None:
    old, _raw = make_api_key(tenant, name="erp")

    new, _new_raw = api_key_rotate(key=old, name="erp 2025")

    assert new.name == "erp 2025"


def test_rotating_a_revoked_key_issues_nothing(tenant: Tenant) -> None:
    old, _raw = make_api_key(tenant)
    api_key_rotate(key=TenantAPIKey.objects.get(pk=old.pk))

    with pytest.raises(APIKeyAlreadyRevoked):
        api_key_rotate(key=TenantAPIKey.objects.get(pk=old.pk))

    assert TenantAPIKey.objects.filter(tenant=tenant).count() == 2
    assert TenantAPIKey.objects.filter(tenant=tenant, revoked=False).count() == 1


def test_replacing_a_named_key_twice_leaves_one_row_of_that_name_and_the_last_key_working(
    client: Client, tenant: Tenant, other_tenant: Tenant
) -> None:
    _erp, erp_raw = make_api_key(tenant, name="erp")
    _theirs, theirs_raw = make_api_key(other_tenant, name="make run demo")

    _first, first_raw = api_key_replace(tenant=tenant, name="make run demo")
    _second, second_raw = api_key_replace(tenant=tenant, name="make run demo")

    # make run's demo key on every start: no revoked row piles up, and the tenant's other keys stay as they are.
    names = sorted(TenantAPIKey.objects.filter(tenant=tenant).values_list("name", flat=True))
    assert names == ["erp", "make run demo"]
    assert TenantAPIKey.objects.filter(tenant=tenant, revoked=True).count() == 0
    assert client.get(TENANT_URL, **auth(second_raw)).status_code == 200
    assert error_of(client.get(TENANT_URL, **auth(first_raw)))["code"] == "authentication_failed"
    assert client.get(TENANT_URL, **auth(erp_raw)).status_code == 200
    assert client.get(TENANT_URL, **auth(theirs_raw)).status_code == 200


# --- manage.py issue_api_key -------------------------------------------------------------------------


def test_issue_api_key_prints_the_key_alone_on_stdout(client: Client, tenant: Tenant) -> None:
    stdout, stderr = StringIO(), StringIO()

    call_command("issue_api_key", tenant.authorizer_appid, "--name", "warehouse", stdout=stdout, stderr=stderr)

    raw = stdout.getvalue()
    assert KEY_SHAPE.fullmatch(raw.rstrip("\n"))
    assert raw.count("\n") == 1
    key = TenantAPIKey.objects.get(tenant=tenant)
    assert key.name == "warehouse"
    assert key.prefix in stderr.getvalue()
    assert raw.strip() not in stderr.getvalue()
    assert client.get(TENANT_URL, **auth(raw.strip())).json()["appid"] == tenant.authorizer_appid


def test_issue_api_key_has_a_default_name(tenant: Tenant) -> None:
    call_command("issue_api_key", tenant.authorizer_appid, stdout=StringIO(), stderr=StringIO())

    assert TenantAPIKey.objects.get(tenant=tenant).name == "Command line"


def test_issue_api_key_for_unknown_appid_fails_on_stderr_with_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    # As `python manage.py issue_api_key ...` runs it; it closes the database connection when done.
    with pytest.raises(SystemExit) as exited:
        ManagementUtility(["manage.py", "issue_api_key", "wx-no-such-account"]).execute()

    captured = capsys.readouterr()
    assert exited.value.code == 1
    assert captured.out == ""
    assert captured.err == "CommandError: No authorized account has AppID 'wx-no-such-account'.\n"


def test_issue_api_key_refuses_an_overlong_name(tenant: Tenant) -> None:
    with pytest.raises(CommandError, match="--name must be 1 to 50 characters"):
        call_command("issue_api_key", tenant.authorizer_appid, "--name", "n" * 51, stdout=StringIO())

    assert not TenantAPIKey.objects.exists()


def test_issue_api_key_for_revoked_tenant_issues_and_warns() -> None:
    revoked = make_tenant(status=TenantStatus.REVOKED)
    stdout, stderr = StringIO(), StringIO()

    call_command("issue_api_key", revoked.authorizer_appid, stdout=stdout, stderr=stderr)

    assert KEY_SHAPE.fullmatch(stdout.getvalue().strip())
    assert "is revoked" in stderr.getvalue()


# --- Throttling ----------------------------------------------------------------------------------------


def test_throttle_answers_429_with_retry_after_per_key(client: Client, tenant: Tenant, settings: Settings) -> None:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api_key": "3/min"}}
    _key, raw = make_api_key(tenant)
    _spare, spare_raw = make_api_key(tenant)

    statuses = [client.get(TENANT_URL, **auth(raw)).status_code for _ in range(3)]
    throttled = client.get(TENANT_URL, **auth(raw))

    assert statuses == [200, 200, 200]
    assert throttled.status_code == 429
    retry_after = int(throttled["Retry-After"])
    assert 1 <= retry_after <= 60
    error = error_of(throttled)
    assert error["code"] == "throttled"
    assert error["retry_after"] == retry_after
    # Another key (even of the same tenant) has its own budget.
    assert client.get(TENANT_URL, **auth(spare_raw)).status_code == 200


def test_throttle_lets_requests_through_when_redis_is_down(client: Client, tenant: Tenant, settings: Settings) -> None:
    with socket.socket() as probe:  # a port on which nothing listens
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port}/0"
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api_key": "1/min"}}
    _key, raw = make_api_key(tenant)

    statuses = [client.get(TENANT_URL, **auth(raw)).status_code for _ in range(3)]

    assert statuses == [200, 200, 200]
