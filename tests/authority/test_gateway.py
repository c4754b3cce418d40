"""The WeChat gateway: a service calls WeChat through this service with its service key and never a token. The
sandbox is WeChat; every refusal of the gateway happens before any WeChat call, and WeChat's own answers come
back unchanged."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from pytest_django import DjangoAssertNumQueries

from tenants.models import Tenant, TenantStatus
from tests.authority.helpers import METRICS_TOKEN
from tests.factories import make_service_key, service_headers
from tests.fixtures.sandbox import Sandbox
from tests.fixtures.sync import component_ready, sandbox_tenant
from wxplatform.authority.models import GatewayUsage
from wxplatform.component.services import default_component

pytestmark = pytest.mark.django_db(transaction=True)

DRAFT_COUNT = "/cgi-bin/draft/count"
AUTHORIZER_TOKEN = "/cgi-bin/component/api_authorizer_token"
AUTHORIZER_LIST = "/cgi-bin/component/api_get_authorizer_list"


def gateway_url(path: str, appid: str | None = None, component_appid: str | None = None) -> str:
    component = component_appid or default_component().component_appid
    account = f"/authorizers/{appid}" if appid else ""
    return f"/internal/v1/components/{component}{account}/wechat{path}"


def calls(sandbox: Sandbox, path: str) -> int:
    return int(sandbox.control.counters()["endpoints"].get(path, {}).get("calls", 0))


@pytest.fixture(autouse=True)
def _metrics(settings: Any) -> None:
    settings.METRICS_TOKEN = METRICS_TOKEN


@pytest.fixture
def drafts_key() -> str:
    return make_service_key(name="editor", allowed_paths=["/cgi-bin/draft/*"])[1]


def gateway_metric(client: Client, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    body = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}").content.decode()
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == "wxp_gateway_calls_total" and sample.labels == labels:
                return float(sample.value)
    return 0.0


def test_an_allowed_call_reaches_wechat_with_the_accounts_token_and_comes_back_unchanged(
    wechat_settings: Sandbox, client: Client, drafts_key: str
) -> None:
    component_ready(wechat_settings)
    tenant = sandbox_tenant(wechat_settings, draft_count=7)

    response = client.get(gateway_url(DRAFT_COUNT, tenant.authorizer_appid), **service_headers(drafts_key))

    assert response.status_code == 200
    assert json.loads(response.content) == {"total_count": 7}
    assert response["Content-Type"].startswith("application/json")
    assert response["Cache-Control"] == "no-store"
    assert tenant.access_token not in response.content.decode()
    assert wechat_settings.control.counters()["draft_count_calls"] == {tenant.authorizer_appid: 1}
    usage = GatewayUsage.objects.get()
    assert (usage.authorizer_appid, usage.path, usage.calls, usage.failures) == (
        tenant.authorizer_appid,
        DRAFT_COUNT,
        1,
        0,
    )


def test_a_call_reads_the_key_and_the_account_with_its_platform_in_two_queries_and_counts_in_one(
    wechat_settings: Sandbox, client: Client, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    component_ready(wechat_settings)
    tenant = sandbox_tenant(wechat_settings, draft_count=4)
    raw = make_service_key(name="editor", component=default_component(), allowed_paths=["/cgi-bin/draft/*"])[1]
    url = gateway_url(DRAFT_COUNT, tenant.authorizer_appid)
    client.get(url, **service_headers(raw))  # the key's first use is recorded

    with django_assert_num_queries(3) as queries:
        response = client.get(url, **service_headers(raw))

    assert response.status_code == 200
    key_sql, account_sql, usage_sql = (query["sql"] for query in queries.captured_queries)
    assert 'FROM "authority_servicekey"' in key_sql
    assert 'FROM "tenants_tenant"' in account_sql and 'JOIN "component_platform"' in account_sql
    assert usage_sql.startswith("INSERT INTO authority_gatewayusage")
    # Neither the account's refresh token nor the platform's secrets and token are read (or decrypted) for it.
    for column in ('"refresh_token"', '"appsecret"', '"aes_key"', '"verify_ticket"', '"component_platform"."access'):
        assert column not in key_sql + account_sql


def test_each_call_is_counted_per_key_account_and_path_once_a_day(wechat_settings: Sandbox, client: Client) -> None:
    component_ready(wechat_settings)
    tenant = sandbox_tenant(wechat_settings, draft_count=2)
    key, raw = make_service_key(name="editor", allowed_paths=["/cgi-bin/draft/*"])
    before = gateway_metric(
        client, key=key.prefix, component=default_component().component_appid, pattern="/cgi-bin/draft/*", outcome="0"
    )

    for _ in range(3):
        assert client.get(gateway_url(DRAFT_COUNT, tenant.authorizer_appid), **service_headers(raw)).status_code == 200

    assert list(GatewayUsage.objects.values_list("key_id", "calls", "failures")) == [(key.pk, 3, 0)]
    after = gateway_metric(
        client, key=key.prefix, component=default_component().component_appid, pattern="/cgi-bin/draft/*", outcome="0"
    )
    assert after - before == 3


def test_a_path_the_key_is_not_allowed_is_refused_before_any_wechat_call(
    wechat_settings: Sandbox, client: Client, drafts_key: str
) -> None:
    component_ready(wechat_settings)
    tenant = sandbox_tenant(wechat_settings, draft_count=1)

    response = client.post(
        gateway_url("/cgi-bin/message/custom/send", tenant.authorizer_appid),
        data=b"{}",
        content_type="application/json",
        **service_headers(drafts_key),
    )

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "wechat_path_not_allowed"
    assert wechat_settings.control.counters()["endpoints"] == {}
    assert GatewayUsage.objects.count() == 0


def test_a_key_without_paths_calls_nothing_through_the_gateway(wechat_settings: Sandbox, client: Client) -> None:
    component_ready(wechat_settings)
    tenant = sandbox_tenant(wechat_settings, draft_count=1)
    _key, raw = make_service_key(name="hand-outs only")

    response = client.get(gateway_url(DRAFT_COUNT, tenant.authorizer_appid), **service_headers(raw))

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "wechat_path_not_allowed"
    assert calls(wechat_settings, DRAFT_COUNT) == 0


@pytest.mark.parametrize(
    "path",
    ["/cgi-bin/draft/../clear_quota", "/cgi-bin/draft/count%00", "/cgi-bin//draft/count", "/" + "a" * 200],
)
def test_a_path_that_is_no_wechat_path_is_refused(
    wechat_settings: Sandbox, client: Client, drafts_key: str, path: str
) -> None:
    component_ready(wechat_settings)
    tenant = sandbox_tenant(wechat_settings)

    response = client.get(gateway_url(path, tenant.authorizer_appid), **service_headers(drafts_key))

    assert response.status_code in {403, 404}
    # A NUL byte is refused as not_found before any view runs (wxplatform.core.observability.NulByteMiddleware).
    assert response.json()["error"]["code"] in {"wechat_path_invalid", "wechat_path_not_allowed", "not_found"}
    assert wechat_settings.control.counters()["endpoints"] == {}


def test_a_key_of_another_platform_is_refused_before_any_wechat_call(
    wechat_settings: Sandbox, client: Client, second_component: Any
) -> None:
    from wxplatform.component.services import component_add

    component_ready(wechat_settings)
    tenant = sandbox_tenant(wechat_settings, draft_count=1)
    other = component_add(
        appid="wx0000sandbox1comp",
        secret="s",
        token="sandboxtoken2",
        aes_key="ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvutsrqponmlkj",
    )
    _key, raw = make_service_key(name="other platform", component=other, allowed_paths=["/cgi-bin/draft/*"])

    response = client.get(gateway_url(DRAFT_COUNT, tenant.authorizer_appid), **service_headers(raw))

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "service_key_out_of_scope"
    assert calls(wechat_settings, DRAFT_COUNT) == 0


def test_a_revoked_account_is_refused_and_wechat_is_not_called(
    wechat_settings: Sandbox, client: Client, drafts_key: str
) -> None:
    component_ready(wechat_settings)
    tenant = sandbox_tenant(wechat_settings, draft_count=1)
    Tenant.objects.filter(pk=tenant.pk).update(status=TenantStatus.REVOKED)

    response = client.get(gateway_url(DRAFT_COUNT, tenant.authorizer_appid), **service_headers(drafts_key))

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "tenant_revoked"
    assert calls(wechat_settings, DRAFT_COUNT) == 0


def test_a_token_wechat_no_longer_accepts_is_refreshed_once_and_the_call_repeated(
    wechat_settings: Sandbox, client: Client, drafts_key: str
) -> None:
    component_ready(wechat_settings)
    tenant = sandbox_tenant(wechat_settings, draft_count=5)
    version = tenant.token_version
    # WeChat invalidated the token (a refresh elsewhere, a restored database): the next call answers 40001.
    wechat_settings.control.invalidate_authorizer_tokens(tenant.authorizer_appid)

    response = client.get(gateway_url(DRAFT_COUNT, tenant.authorizer_appid), **service_headers(drafts_key))

    assert response.status_code == 200
    assert json.loads(response.content) == {"total_count": 5}
    assert calls(wechat_settings, AUTHORIZER_TOKEN) == 1
    assert calls(wechat_settings, DRAFT_COUNT) == 2
    tenant.refresh_from_db()
    assert tenant.token_version > version


def test_a_second_token_refusal_goes_back_as_wechat_said_it(
    wechat_settings: Sandbox, client: Client, drafts_key: str
) -> None:
    component_ready(wechat_settings)
    tenant = sandbox_tenant(wechat_settings, draft_count=5)
    wechat_settings.control.set_faults(rate=1.0, kinds=[40001], endpoints=[DRAFT_COUNT])

    response = client.get(gateway_url(DRAFT_COUNT, tenant.authorizer_appid), **service_headers(drafts_key))

    body = json.loads(response.content)
    assert body["errcode"] == 40001
    assert calls(wechat_settings, AUTHORIZER_TOKEN) == 1  # refreshed once, not once per refusal
    assert calls(wechat_settings, DRAFT_COUNT) == 2
    assert tenant.access_token not in response.content.decode()
    assert GatewayUsage.objects.get().failures == 1


def test_the_platforms_own_api_gets_the_component_token_and_the_body_as_sent(
    wechat_settings: Sandbox, client: Client
) -> None:
    component_ready(wechat_settings)
    sandbox_tenant(wechat_settings)
    _key, raw = make_service_key(name="ops", allowed_paths=[AUTHORIZER_LIST])
    appid = default_component().component_appid

    response = client.post(
        gateway_url(AUTHORIZER_LIST) + "?access_token=forged-by-the-caller",
        data=json.dumps({"component_appid": appid, "offset": 0, "count": 10}),
        content_type="application/json",
        **service_headers(raw),
    )

    assert response.status_code == 200
    body = json.loads(response.content)
    assert body["total_count"] == 1
    assert len(body["list"]) == 1
    assert calls(wechat_settings, AUTHORIZER_LIST) == 1


def test_a_body_over_wechats_upload_limit_is_refused_unread(
    wechat_settings: Sandbox, client: Client, settings: Any
) -> None:
    settings.WECHAT_GATEWAY_MAX_BODY = 1024
    component_ready(wechat_settings)
    tenant = sandbox_tenant(wechat_settings)
    _key, raw = make_service_key(name="uploader", allowed_paths=["/cgi-bin/material/*"])

    response = client.post(
        gateway_url("/cgi-bin/material/add_material", tenant.authorizer_appid),
        data=b"x" * 2048,
        content_type="application/octet-stream",
        **service_headers(raw),
    )

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    assert wechat_settings.control.counters()["endpoints"] == {}


def test_wechat_unreachable_is_a_502_with_retry_after_and_no_token(
    wechat_settings: Sandbox, client: Client, drafts_key: str, settings: Any
) -> None:
    component_ready(wechat_settings)
    tenant = sandbox_tenant(wechat_settings)
    settings.WECHAT_API_BASE = "http://127.0.0.1:1"  # nothing listens on port 1

    response = client.get(gateway_url(DRAFT_COUNT, tenant.authorizer_appid), **service_headers(drafts_key))

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "wechat_unreachable"
    assert response["Retry-After"] == "5"
    assert tenant.access_token not in response.content.decode()


def test_no_key_no_call(wechat_settings: Sandbox, client: Client) -> None:
    response = client.get(gateway_url(DRAFT_COUNT, "wxanyaccount00001"))

    assert response.status_code == 401
    assert wechat_settings.control.counters()["endpoints"] == {}
