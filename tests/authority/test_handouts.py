"""What the token authority answers for each platform and account, and that every answer to a service key is
audited and counted without the token. Tokens here are stored and fresh: no WeChat is involved (the refreshes
are in test_single_flight.py)."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.apps import apps
from django.test import Client
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from pytest_django import DjangoAssertNumQueries

from tenants.models import Eligibility, Tenant, TenantStatus
from tests.authority.helpers import METRICS_TOKEN, authorizer_url, component_url, handouts_metric, platform_with_token
from tests.factories import make_service_key, make_tenant, service_headers
from wxplatform.authority.models import TokenHandout
from wxplatform.authority.services import token_handout_prune
from wxplatform.component.models import Platform
from wxplatform.component.services import default_component
from wxplatform.core.times import machine_time

pytestmark = pytest.mark.django_db


@pytest.fixture
def raw_key(db: None) -> str:
    return make_service_key(name="reporting")[1]


@pytest.fixture(autouse=True)
def _metrics(settings: Any) -> None:
    settings.METRICS_TOKEN = METRICS_TOKEN


def test_the_component_token_is_answered_from_storage_with_its_expiry_in_utc(client: Client, raw_key: str) -> None:
    credential = platform_with_token("component-token-stored")

    response = client.get(component_url(), **service_headers(raw_key))

    assert response.status_code == 200
    body = response.json()
    assert body["access_token"] == "component-token-stored"
    assert body["expires_at"] == machine_time(credential.access_token_expires_at)
    assert datetime.fromisoformat(body["expires_at"]) == credential.access_token_expires_at.astimezone(UTC)
    assert response["Cache-Control"] == "no-store"


def test_an_authorizer_token_is_answered_from_storage(client: Client, raw_key: str) -> None:
    platform_with_token()
    tenant = make_tenant()

    response = client.get(authorizer_url(tenant.authorizer_appid), **service_headers(raw_key))

    assert response.status_code == 200
    assert response.json() == {
        "access_token": tenant.access_token,
        "expires_at": machine_time(tenant.access_token_expires_at),
    }
    assert response["Cache-Control"] == "no-store"


def test_an_account_that_only_lacks_the_draft_permission_still_gets_its_token(client: Client, raw_key: str) -> None:
    platform_with_token()
    tenant = make_tenant(func_ids=[1, 15], eligibility=Eligibility.MISSING_PERMISSION)

    response = client.get(authorizer_url(tenant.authorizer_appid), **service_headers(raw_key))

    assert response.status_code == 200
    assert response.json()["access_token"] == tenant.access_token


def test_an_unknown_platform_is_a_404_and_counted_as_unknown(client: Client, raw_key: str) -> None:
    platform_with_token("component-token-x")
    before = handouts_metric(client, kind="component", component="unknown", outcome="not_found")

    for url in (component_url("wxnosuchplatform"), authorizer_url("wxsomeaccount", "wxnosuchplatform")):
        response = client.get(url, **service_headers(raw_key))
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "platform_not_found"
        assert "component-token-x" not in response.content.decode()

    assert handouts_metric(client, kind="component", component="unknown", outcome="not_found") == before + 1
    assert not Platform.objects.filter(component_appid="wxnosuchplatform").exists()


def test_an_account_unknown_on_the_platform_is_a_404(client: Client, raw_key: str) -> None:
    platform_with_token()

    response = client.get(authorizer_url("wxnotauthorized"), **service_headers(raw_key))

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "tenant_not_found"
    assert TokenHandout.objects.get().error_code == "tenant_not_found"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"status": TenantStatus.REVOKED}, "tenant_revoked"),
        ({"status": TenantStatus.NEEDS_REAUTH}, "tenant_needs_reauthorization"),
        ({"is_test_account": True}, "tenant_test_account"),
        ({"eligibility": Eligibility.ACCOUNT_STATUS, "account_status": 16}, "tenant_ineligible"),
        ({"access_token": "", "refresh_token": "", "access_token_expires_at": None}, "tenant_has_no_token"),
    ],
)
def test_an_account_without_a_usable_token_is_a_403_with_a_code_and_no_token(
    client: Client, raw_key: str, fields: dict[str, Any], code: str
) -> None:
    platform_with_token()
    # The stored token is kept, so that the assertion below would see it leak.
    tenant = make_tenant(**({"access_token": "access-token-that-must-not-leak"} | fields))

    response = client.get(authorizer_url(tenant.authorizer_appid), **service_headers(raw_key))

    assert response.status_code == 403
    assert response.json()["error"]["code"] == code
    assert "access_token" not in response.json()
    assert "access-token-that-must-not-leak" not in response.content.decode()
    assert response["Cache-Control"] == "no-store"
    assert Tenant.objects.get(pk=tenant.pk).token_version == tenant.token_version


def test_a_platform_without_a_ticket_is_a_503_that_says_so(client: Client, raw_key: str) -> None:
    # No token and no verify ticket: the platform cannot get one (WeChat is not reachable here either way).
    Platform.objects.filter(pk=default_component().pk).update(
        verify_ticket="", access_token="", access_token_expires_at=None
    )

    response = client.get(component_url(), **service_headers(raw_key))

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "component_not_ready"
    assert "component_verify_ticket" in response.json()["error"]["message"]
    assert response["Retry-After"] == "5"


def test_every_answer_to_a_key_is_audited_and_counted_and_neither_holds_the_token(
    client: Client, settings: Any
) -> None:
    platform_with_token("component-token-audited")
    key, raw = make_service_key(name="reporting")
    tenant = make_tenant()
    revoked = make_tenant(status=TenantStatus.REVOKED)
    appid = settings.WECHAT_COMPONENT_APPID
    counted = (("component", "issued"), ("authorizer", "issued"), ("authorizer", "forbidden"))
    before = {pair: handouts_metric(client, kind=pair[0], component=appid, outcome=pair[1]) for pair in counted}

    client.get(component_url(), **service_headers(raw))
    client.get(authorizer_url(tenant.authorizer_appid), **service_headers(raw))
    client.get(authorizer_url(tenant.authorizer_appid), **service_headers(raw))
    client.get(authorizer_url(revoked.authorizer_appid), **service_headers(raw))

    rows = list(
        TokenHandout.objects.order_by("id").values_list(
            "key", "kind", "component_appid", "authorizer_appid", "outcome", "error_code"
        )
    )
    assert rows == [
        (key.pk, "component", appid, "", "issued", ""),
        (key.pk, "authorizer", appid, tenant.authorizer_appid, "issued", ""),
        (key.pk, "authorizer", appid, tenant.authorizer_appid, "issued", ""),
        (key.pk, "authorizer", appid, revoked.authorizer_appid, "forbidden", "tenant_revoked"),
    ]
    assert all(
        abs(at - timezone.now()) < timedelta(minutes=1) for at in TokenHandout.objects.values_list("at", flat=True)
    )
    after = {pair: handouts_metric(client, kind=pair[0], component=appid, outcome=pair[1]) for pair in counted}
    assert {pair: after[pair] - before[pair] for pair in counted} == {
        ("component", "issued"): 1,
        ("authorizer", "issued"): 2,
        ("authorizer", "forbidden"): 1,
    }
    stored = " ".join(str(value) for row in TokenHandout.objects.values_list() for value in row)
    assert "component-token-audited" not in stored
    assert tenant.access_token not in stored


def test_an_unknown_path_under_internal_is_a_404_in_the_error_shape(client: Client, raw_key: str) -> None:
    response = client.get("/internal/v1/nothing-here", **service_headers(raw_key))

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_pruning_keeps_the_retention_window(settings: Any) -> None:
    settings.TOKEN_HANDOUT_RETENTION_DAYS = 30
    key, _raw = make_service_key()
    now = timezone.now()
    old = TokenHandout.objects.create(
        key=key, kind="component", component_appid="wx1", outcome="issued", at=now - timedelta(days=31)
    )
    recent = TokenHandout.objects.create(
        key=key, kind="component", component_appid="wx1", outcome="issued", at=now - timedelta(days=29)
    )

    assert token_handout_prune() == 1

    assert list(TokenHandout.objects.values_list("pk", flat=True)) == [recent.pk]
    assert not TokenHandout.objects.filter(pk=old.pk).exists()


def test_the_beat_prunes_the_hand_outs_daily() -> None:
    if not PeriodicTask.objects.filter(name="Prune token hand-outs").exists():
        # A transactional test elsewhere flushed the tables the data migration had filled; run it again.
        importlib.import_module("wxplatform.authority.migrations.0002_beat_prune").create_entry(apps, None)

    task = PeriodicTask.objects.get(name="Prune token hand-outs")
    assert (task.task, task.interval.every, task.interval.period, task.enabled) == (
        "authority.prune_token_handouts",
        1,
        "days",
        True,
    )


def test_a_switched_off_platform_hands_out_nothing(client: Client, raw_key: str) -> None:
    credential = platform_with_token("component-token-off")
    tenant = make_tenant()
    Platform.objects.filter(pk=credential.pk).update(active=False)

    for url in (component_url(), authorizer_url(tenant.authorizer_appid)):
        response = client.get(url, **service_headers(raw_key))
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "platform_inactive"
        assert "component-token-off" not in response.content.decode()
        assert tenant.access_token not in response.content.decode()


def test_an_account_of_another_platform_is_a_404_on_this_one(client: Client, raw_key: str) -> None:
    platform_with_token()
    other = Platform.objects.create(component_appid="wx0000other0platform")
    tenant = make_tenant(component=other)

    response = client.get(authorizer_url(tenant.authorizer_appid), **service_headers(raw_key))

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "tenant_not_found"
    assert tenant.access_token not in response.content.decode()


def test_an_authorizer_hand_out_reads_the_key_and_the_account_with_its_platform_in_two_queries(
    client: Client, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    credential = platform_with_token()
    tenant = make_tenant()
    raw = make_service_key(name="reporting", component=credential)[1]
    client.get(authorizer_url(tenant.authorizer_appid), **service_headers(raw))  # the key's first use is recorded

    with django_assert_num_queries(3) as queries:
        response = client.get(authorizer_url(tenant.authorizer_appid), **service_headers(raw))

    assert response.status_code == 200
    key_sql, account_sql, audit_sql = (query["sql"] for query in queries.captured_queries)
    assert 'FROM "authority_servicekey"' in key_sql
    assert 'FROM "tenants_tenant"' in account_sql and 'JOIN "component_platform"' in account_sql
    assert audit_sql.startswith('INSERT INTO "authority_tokenhandout"')
    # Neither the account's refresh token nor the platform's secrets and token are read (or decrypted) for it.
    for column in ('"refresh_token"', '"appsecret"', '"aes_key"', '"verify_ticket"', '"component_platform"."access'):
        assert column not in key_sql + account_sql
