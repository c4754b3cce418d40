"""The console in both of its languages: Simplified Chinese (the default) and English."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from drafts.models import AttemptOutcome, SkipReason, SyncAttempt, SyncTrigger
from tenants.models import Tenant
from wxplatform.models import AuditEntry


@pytest.mark.django_db
@pytest.mark.parametrize(("language", "home"), [("zh-hans", "首页"), ("en", "Home")])
def test_console_pages_render_in_each_language(admin_client: Client, tenant: Tenant, language: str, home: str) -> None:
    pages = [
        reverse("admin:index"),
        reverse("admin-platform-status"),
        reverse("admin:tenants_tenant_changelist"),
        reverse("admin:tenants_tenant_change", args=[tenant.pk]),
        reverse("admin:tenants_tenant_revoke", args=[tenant.pk]),
    ]
    for url in pages:
        response = admin_client.get(url, headers={"accept-language": language})
        html = response.content.decode()
        assert response.status_code == 200, url
        assert f'<html lang="{language}"' in html, url
    assert home in admin_client.get(pages[1], headers={"accept-language": language}).content.decode()


@pytest.mark.django_db
def test_language_can_be_switched_from_the_admin(admin_client: Client) -> None:
    html = admin_client.get(reverse("admin:index"), headers={"accept-language": "en"}).content.decode()
    assert f'action="{reverse("set_language")}"' in html

    admin_client.post(reverse("set_language"), {"language": "zh-hans", "next": reverse("admin:index")})

    assert '<html lang="zh-hans"' in admin_client.get(reverse("admin:index")).content.decode()


ZH = {"accept-language": "zh-hans"}


@pytest.mark.django_db
def test_chinese_schedule_list_names_the_tasks_and_its_columns_in_chinese(admin_client: Client) -> None:
    if not PeriodicTask.objects.filter(task="drafts.sync_all").exists():
        importlib.import_module("drafts.migrations.0002_beat_schedule").create_entries(apps, None)

    html = admin_client.get(reverse("admin:django_celery_beat_periodictask_changelist"), headers=ZH).content.decode()

    names = [cell.split("</th>")[0] for cell in html.split('class="field-translated_name">')[1:]]
    assert any("同步草稿数\uff08全部商户\uff09" in name for name in names)  # full-width parentheses
    assert not any("Sync draft counts" in name for name in names)
    for english in ("Task Name", "SCHEDULER", "Scheduler"):
        assert english not in html


@pytest.mark.django_db
def test_chinese_audit_log_says_what_each_action_means(admin_client: Client, tenant: Tenant) -> None:
    AuditEntry.objects.create(actor_label="ops", action="tenant.sync", target=f"tenant:{tenant.pk}")

    html = admin_client.get(reverse("admin:wxplatform_auditentry_changelist"), headers=ZH).content.decode()

    row = html.split('class="field-action_label"')[1].split("</td>")[0]
    assert '<span title="tenant.sync">同步了账号的草稿数</span>' in row


@pytest.mark.django_db
def test_chinese_sync_attempts_name_the_account_column_and_say_why_not_called(
    admin_client: Client, tenant: Tenant
) -> None:
    SyncAttempt.objects.create(
        tenant=tenant,
        at=timezone.now(),
        trigger=SyncTrigger.SCHEDULE,
        outcome=AttemptOutcome.SKIPPED,
        skip_reason=SkipReason.INELIGIBLE,
    )

    html = admin_client.get(reverse("admin:drafts_syncattempt_changelist"), headers=ZH).content.decode()

    header = html.split('class="sortable column-tenant">')[1].split("</th>")[0]
    assert "商户账号" in header
    body = html.split("<tbody")[1]
    assert "不符合调用 draft/count 的条件" in body and ">ineligible<" not in body
