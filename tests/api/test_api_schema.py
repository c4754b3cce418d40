"""The OpenAPI schema at /api/schema/ and the Swagger UI at /api/docs/, served without any CDN."""

from __future__ import annotations

import codecs
import re
from typing import Any

import pytest
from django.test import Client
from drf_spectacular.validation import validate_schema

pytestmark = pytest.mark.django_db

OPERATIONS = {
    ("get", "/api/v1/tenant"): "tenant_retrieve",
    ("get", "/api/v1/draft-count"): "draft_count_retrieve",
    ("post", "/api/v1/draft-count/sync"): "draft_count_sync_create",
    ("get", "/api/v1/draft-count/sync/{job_id}"): "draft_count_sync_job_retrieve",
    ("get", "/api/v1/draft-count/history"): "draft_count_history_list",
    ("get", "/api/v1/quota"): "quota_retrieve",
    ("get", "/api/v1/webhooks"): "webhooks_list",
    ("post", "/api/v1/webhooks"): "webhooks_create",
    ("get", "/api/v1/webhooks/{webhook_id}"): "webhooks_retrieve",
    ("patch", "/api/v1/webhooks/{webhook_id}"): "webhooks_partial_update",
    ("delete", "/api/v1/webhooks/{webhook_id}"): "webhooks_destroy",
    ("post", "/api/v1/webhooks/{webhook_id}/rotate-secret"): "webhooks_rotate_secret",
    ("get", "/api/v1/webhooks/{webhook_id}/deliveries"): "webhooks_deliveries_list",
}


def schema(client: Client) -> dict[str, Any]:
    """The English schema, which the assertions below quote."""
    return schema_in(client, lang="en")


def schema_in(client: Client, *, lang: str) -> dict[str, Any]:
    response = client.get("/api/schema/", {"format": "json", "lang": lang})
    assert response.status_code == 200
    return dict(response.json())


@pytest.mark.smoke
def test_schema_is_valid_openapi_3_without_authentication(client: Client) -> None:
    document = schema(client)

    validate_schema(document)
    assert document["openapi"].startswith("3.")


def test_schema_lists_every_operation_with_its_id(client: Client) -> None:
    paths = schema(client)["paths"]

    found = {(method, path): op["operationId"] for path, item in paths.items() for method, op in item.items()}
    assert found == OPERATIONS


def test_schema_declares_the_api_key_header_on_every_operation(client: Client) -> None:
    document = schema(client)

    assert document["components"]["securitySchemes"] == {
        "ApiKeyAuth": {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "Send `Authorization: Api-Key <key>`. Keys are issued per merchant account and shown once.",
        }
    }
    for item in document["paths"].values():
        for operation in item.values():
            assert operation["security"] == [{"ApiKeyAuth": []}]


def test_schema_documents_every_error_with_the_one_error_shape(client: Client) -> None:
    document = schema(client)
    error_ref = {"$ref": "#/components/schemas/Error"}

    statuses: dict[str, list[str]] = {}
    for item in document["paths"].values():
        for operation in item.values():
            errors = {code: r for code, r in operation["responses"].items() if int(code) >= 400}
            statuses[operation["operationId"]] = sorted(errors)
            for response in errors.values():
                assert response["content"]["application/json"]["schema"] == error_ref

    assert statuses == {
        "tenant_retrieve": ["401", "429", "503"],
        "quota_retrieve": ["401", "429", "503"],
        "draft_count_retrieve": ["401", "403", "404", "429", "503"],
        "draft_count_sync_create": ["401", "403", "429", "503"],
        "draft_count_sync_job_retrieve": ["401", "404", "429", "503"],
        "draft_count_history_list": ["400", "401", "429", "503"],
        "webhooks_list": ["401", "429", "503"],
        "webhooks_create": ["400", "401", "429", "503"],
        "webhooks_retrieve": ["401", "404", "429", "503"],
        "webhooks_partial_update": ["400", "401", "404", "429", "503"],
        "webhooks_destroy": ["401", "404", "429", "503"],
        "webhooks_rotate_secret": ["401", "404", "429", "503"],
        "webhooks_deliveries_list": ["400", "401", "404", "429", "503"],
    }
    assert document["components"]["schemas"]["ErrorBody"]["required"] == ["code", "message", "request_id"]


def test_docs_page_loads_swagger_ui_from_this_server_only(client: Client) -> None:
    page = client.get("/api/docs/")

    assert page.status_code == 200
    html = page.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    # Four sidecar files, and the start-up script as a file of its own (no inline script, for the CSP).
    assert len(assets) == 5
    assert "/api/docs/?script=" in assets
    for asset in assets:
        assert asset.startswith(("/static/drf_spectacular_sidecar/swagger-ui-dist/", "/api/docs/?script"))
        response = client.get(asset)
        assert response.status_code == 200
        response.close()
    assert "cdn" not in html.lower()
    assert "https://" not in html


def test_the_docs_say_that_a_disabled_webhook_drops_new_events(client: Client) -> None:
    # Issue 28, finding 10c: the API said nothing of what happens to events while a webhook is disabled.
    operation = schema(client)["paths"]["/api/v1/webhooks/{webhook_id}"]["patch"]
    webhook = schema(client)["components"]["schemas"]["Webhook"]["properties"]["enabled"]

    assert "Events raised while it is disabled are dropped, not kept for later" in operation["description"]
    assert "new events are dropped for this webhook" in webhook["description"]


# --- The schema in the reader's language (issue 27: the API docs were English only) -----------------------

CJK = re.compile(r"[\u4e00-\u9fff]")


def texts(document: dict[str, Any]) -> dict[str, str]:
    """Every title, summary and description a reader of the docs sees, by where it is."""
    found = {"info.title": document["info"]["title"], "info.description": document["info"]["description"]}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            where = f"{method} {path}"
            found[f"{where} summary"] = operation["summary"]
            if "description" in operation:
                found[f"{where} description"] = operation["description"]
            for status, response in operation["responses"].items():
                if response["description"]:  # a 200's is empty: its schema says it all
                    found[f"{where} {status}"] = response["description"]
            for parameter in operation.get("parameters", []):
                if "description" in parameter:
                    found[f"{where} ?{parameter['name']}"] = parameter["description"]
    for name, component in document["components"]["schemas"].items():
        for field, schema in component.get("properties", {}).items():
            if "description" in schema:
                found[f"{name}.{field}"] = schema["description"]
    for name, scheme in document["components"]["securitySchemes"].items():
        found[name] = scheme["description"]
    for tag in document["tags"]:
        found[f"tag {tag['name']}"] = tag["description"]
    return found


def test_the_schema_in_zh_hans_describes_every_operation_and_error_in_chinese(client: Client) -> None:
    document = schema_in(client, lang="zh-hans")
    found = texts(document)

    assert len(found) > 100
    assert {where: text for where, text in found.items() if not CJK.search(text)} == {}
    # The error shape, as a merchant's developer reads it.
    error = document["components"]["schemas"]["ErrorBody"]["properties"]
    assert error["code"]["description"] == "稳定的、供程序判断的错误代码。"
    assert document["paths"]["/api/v1/draft-count"]["get"]["summary"] == "已保存的草稿数量"


def test_the_schema_in_english_stays_english(client: Client) -> None:
    found = texts(schema_in(client, lang="en"))

    # Chinese words kept on purpose: the WeChat term beside its translation, the link to the Chinese docs.
    kept = ("权限集", "[中文](/api/docs/?lang=zh-hans)")
    plain = {where: re.sub("|".join(map(re.escape, kept)), "", text) for where, text in found.items()}
    assert {where: text for where, text in plain.items() if CJK.search(text)} == {}
    assert found["get /api/v1/draft-count summary"] == "The stored draft count"


def test_the_schema_follows_accept_language_without_lang(client: Client) -> None:
    chinese = client.get("/api/schema/", {"format": "json"}, HTTP_ACCEPT_LANGUAGE="zh-CN").json()
    english = client.get("/api/schema/", {"format": "json"}, HTTP_ACCEPT_LANGUAGE="en").json()

    assert chinese["paths"]["/api/v1/tenant"]["get"]["summary"] == "调用方的账号"
    assert english["paths"]["/api/v1/tenant"]["get"]["summary"] == "The calling account"


def test_the_docs_page_links_both_languages_and_loads_the_schema_in_its_own(client: Client) -> None:
    description = schema_in(client, lang="zh-hans")["info"]["description"]
    assert "[English](/api/docs/?lang=en)" in description
    assert "[中文](/api/docs/?lang=zh-hans)" in schema_in(client, lang="en")["info"]["description"]

    page = client.get("/api/docs/", {"lang": "zh-hans"}).content.decode()
    assert "/api/docs/?lang=zh-hans&amp;script=" in page
    script = client.get("/api/docs/", {"lang": "zh-hans", "script": ""}).content.decode()
    assert "/api/schema/?lang=zh-hans" in codecs.decode(script, "unicode_escape")  # escapejs
