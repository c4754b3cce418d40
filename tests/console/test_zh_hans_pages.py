"""What a Chinese-speaking operator reads (issue 27, zh-Hans gaps): each page and command rendered in zh-Hans,
with codes shown beside their meaning, never alone."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone, translation

from drafts.models import SyncRun
from tests.factories import api_headers, make_api_key, make_service_key, make_tenant
from wxplatform.authority.models import HandoutKind, HandoutOutcome, TokenHandout
from wxplatform.models import AuditEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def zh_client(admin_client: Client) -> Client:
    admin_client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    return admin_client


def page(client: Client, path: str, **query: Any) -> str:
    response = client.get(path, query)
    assert response.status_code == 200, path
    return response.content.decode()


def test_the_login_lockouts_section_reads_in_chinese(zh_client: Client) -> None:
    AccessAttempt.objects.create(
        user_agent="curl",
        ip_address="198.51.100.9",
        username="operator",
        http_accept="*/*",
        path_info="/admin/",
        get_data="",
        post_data="",
        failures_since_start=3,
    )
    home = page(zh_client, "/admin/")
    attempts = page(zh_client, "/admin/axes/accessattempt/")

    assert "登录锁定" in home and ">Axes<" not in home
    assert "登录尝试" in attempts
    for header in ("IP 地址", "用户名", "尝试时间", "失败次数"):
        assert header in attempts, header
    assert "以 已锁定" in attempts


def test_the_service_key_pages_read_in_chinese(zh_client: Client) -> None:
    make_service_key(name="发布系统")

    listing = page(zh_client, "/admin/authority/servicekey/")
    adding = page(zh_client, "/admin/authority/servicekey/add/")

    for header in ("名称", "前缀", "创建时间", "已吊销", "过期时间"):
        assert header in listing, header
    assert "以 已吊销" in listing
    assert "自由命名" in adding  # the name's help text
    assert "过期后" in adding  # the expiry's help text
    assert "free-form" not in adding and "Expires" not in adding


def test_the_sync_runs_list_names_its_columns_in_chinese(zh_client: Client) -> None:
    SyncRun.objects.create(trigger="schedule", chunks_total=4, chunks_done=3)

    runs = page(zh_client, "/admin/drafts/syncrun/")

    assert "已完成分块" in runs and "分块总数" in runs
    assert "Chunks" not in runs and "3 / 4" in runs


def test_the_audit_log_names_actions_and_targets_in_words(zh_client: Client) -> None:
    AuditEntry.objects.create(actor_label="operator", action="tenants.sync_selected", target="2 tenants")
    AuditEntry.objects.create(actor_label="operator", action="pushes.replay", target="3 pushes")

    log = page(zh_client, "/admin/wxplatform/auditentry/")

    filters = log[log.index('id="changelist-filter"') :]
    assert "同步了所选账号" in filters and ">tenants.sync_selected<" not in filters
    assert "重放微信推送" in filters
    assert "2 个商户账号" in log and "2 tenants" not in log
    assert "3 条推送" in log and "3 pushes" not in log


def test_token_hand_outs_show_the_refusal_code_with_its_meaning(zh_client: Client) -> None:
    key, _raw = make_service_key()
    TokenHandout.objects.create(
        key=key,
        kind=HandoutKind.AUTHORIZER,
        component_appid="wx0000sandbox0comp",
        authorizer_appid="wxrevoked00000001",
        outcome=HandoutOutcome.FORBIDDEN,
        error_code="tenant_revoked",
        at=timezone.now(),
    )

    handouts = page(zh_client, "/admin/authority/tokenhandout/")

    assert "tenant_revoked（账号已取消授权）" in handouts  # noqa: RUF001


def test_a_network_failure_reads_as_words_on_the_merchant_page(zh_client: Client) -> None:
    tenant = make_tenant(
        last_error_code=None, last_error_message="connection error: Unknown error -2", last_error_at=timezone.now()
    )

    merchant = page(zh_client, f"/admin/tenants/tenant/{tenant.pk}/change/")

    assert "无法连接微信：域名无法解析（DNS）" in merchant  # noqa: RUF001
    assert "connection error" not in merchant


def test_the_login_lockout_page_reads_in_chinese() -> None:
    get_user_model().objects.create_user("operator", password="right-password-1", is_staff=True)
    client = Client(REMOTE_ADDR="198.51.100.30")
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    for n in range(settings.AXES_FAILURE_LIMIT):
        client.post("/admin/login/", {"username": "operator", "password": f"wrong-{n}"})

    locked = client.post("/admin/login/", {"username": "operator", "password": "right-password-1"})

    assert locked.status_code == 429
    text = locked.content.decode()
    assert "登录失败次数过多" in text and "分钟后再试" in text
    assert "Account locked" not in text


def test_release_check_prints_its_table_in_chinese() -> None:
    from wxsandbox.devtools.management.commands.release_check import Command

    out = StringIO()
    command = Command(stdout=out)
    result = {
        "group": 1,
        "authorizer_appid": "wx570bc396a51b8ff8",
        "user_name": "gh_3c884a361561",
        "duration_ms": 812,
        "passed": True,
        "rows": [
            {"step": "ticket", "name": "验证票据推送", "result": "pass", "detail": "answered success"},
            {"step": "text_message", "name": "普通文本消息", "result": "pass", "detail": "passive reply received"},
            {"step": "event_message", "name": "事件消息", "result": "skipped", "detail": "no message URL"},
        ],
    }

    with translation.override("zh-hans"):
        command._print(result)

    text = out.getvalue()
    assert "通过" in text and "跳过" in text and "已回复 success" in text and "收到被动回复" in text
    assert " pass " not in text and "answered success" not in text and "PASSED" not in text


def test_a_malformed_json_body_is_refused_in_chinese() -> None:
    _key, raw = make_api_key(make_tenant())

    response = Client().post(
        "/api/v1/webhooks",
        "{not json",
        content_type="application/json",
        HTTP_ACCEPT_LANGUAGE="zh-hans",
        **api_headers(raw),
    )
    body = json.loads(response.content)

    assert response.status_code == 400, body
    assert body["error"]["code"] == "parse_error"
    assert body["error"]["message"].startswith("请求体不是有效的 JSON")
