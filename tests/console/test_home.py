"""The console's landing page: the platform at a glance, its charts and entry points."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from drafts.models import AttemptOutcome, SkipReason, SyncAttempt, SyncRun, SyncTrigger
from tenants.models import Eligibility, Tenant, TenantStatus
from tests.factories import make_tenant
from tests.fixtures.sandbox import Sandbox
from wxplatform.component.models import Platform
from wxplatform.component.services import component_add, default_component

AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


@pytest.mark.django_db
def test_the_landing_page_shows_the_platform_at_a_glance_and_its_charts(admin_client: Client) -> None:
    now = timezone.now()
    make_tenant(nickname="ok")
    make_tenant(nickname="failing", last_error_at=now, last_error_code=45009)
    make_tenant(eligibility=Eligibility.MISSING_PERMISSION)
    make_tenant(status=TenantStatus.REVOKED)
    SyncRun.objects.create(trigger=SyncTrigger.SCHEDULE, changed=3, unchanged=5, failed=2, finished_at=now)

    html = admin_client.get("/admin/").content.decode()

    failing = html.split('id="wxp-card-failing"')[1].split("</div>")[0]
    assert "?failing=yes" in failing and ">1</a> / 4" in failing
    run = html.split('id="wxp-card-run"')[1].split("</div>")[0]
    assert "Schedule" in run and "Today: 8 synced, 0 not called on purpose, 2 failed" in run
    accounts = html.split('id="wxp-chart-accounts"')[1].split("</div>")[0]
    assert "<svg" in accounts and "Revoked" in accounts and "Permission set 11 or 100 not granted" in accounts
    syncs = html.split('id="wxp-chart-syncs"')[1].split("</div>")[0]
    assert f">{timezone.localtime(now):%Y-%m-%d}</text>" in syncs and ">8</text>" in syncs
    errors = html.split('id="wxp-chart-errors"')[1].split("</div>")[0]
    assert ">2</text>" in errors
    # Django's app list is still there below.
    assert 'id="wxp-console"' in html and "app-tenants" in html


@pytest.mark.django_db
def test_runs_older_than_the_window_are_left_out(admin_client: Client) -> None:
    old = SyncRun.objects.create(trigger=SyncTrigger.SCHEDULE, changed=9, finished_at=timezone.now())
    SyncRun.objects.filter(pk=old.pk).update(started_at=timezone.now() - timedelta(days=8))

    html = admin_client.get("/admin/").content.decode()

    assert ">9</text>" not in html.split('id="wxp-chart-syncs"')[1].split("</div>")[0]


@pytest.mark.django_db
def test_the_platform_card_summarises_every_platform(admin_client: Client) -> None:
    now = timezone.now()
    default = default_component()
    Platform.objects.filter(pk=default.pk).update(verify_ticket="ticket@@@1", ticket_received_at=now)
    second = component_add(appid="wx2c2769f8efd9abc2", secret="s" * 32, token="second", aes_key=AES_KEY, name="Second")
    Platform.objects.filter(pk=second.pk).update(problem="component_verify_ticket rejected", problem_code=61006)
    old = component_add(appid="wx0000000000000003", secret="t" * 32, token="third", aes_key=AES_KEY, name="Old")
    Platform.objects.filter(pk=old.pk).update(active=False)

    html = admin_client.get("/admin/").content.decode()

    card = html.split('id="wxp-card-platforms"')[1].split("</div>")[0]
    assert "wxp-card-bad" in html.split('id="wxp-card-platforms"')[0].rsplit("<div", 1)[1]
    assert ">1 of 2 ready</a>" in card
    assert f"{default.component_appid}: ready</li>" in card
    assert "Second: 61006 verify ticket invalid</li>" in card
    assert "Old: switched off</li>" in card


@pytest.mark.django_db
def test_one_platform_ready_makes_a_calm_card(admin_client: Client) -> None:
    Platform.objects.filter(pk=default_component().pk).update(
        verify_ticket="ticket@@@1", ticket_received_at=timezone.now()
    )

    html = admin_client.get("/admin/").content.decode()

    assert "wxp-card-bad" not in html.split('id="wxp-card-platforms"')[0].rsplit("<div", 1)[1]
    assert ">1 of 1 ready</a>" in html


def _chart_values(html: str, chart: str) -> dict[str, int]:
    """A bar chart's bars as {label: value}, read from its SVG."""
    svg = html.split(f'id="wxp-chart-{chart}"')[1].split("</svg>")[0]
    labels = re.findall(r'class="wxp-bar-label">([^<]*)</text>', svg)
    values = re.findall(r'fill="#79aec8"/><text [^>]*>(\d+)</text>', svg)
    return dict(zip(labels, map(int, values), strict=True))


@pytest.mark.django_db
def test_the_home_counts_a_command_line_sync_of_named_accounts(admin_client: Client, wechat_settings: Sandbox) -> None:
    """`make run` syncs its demo merchants with `sync_drafts --tenant …`: no run, one job per account."""
    account = wechat_settings.control.create_authorizer(
        kind="service", func_ids=[1, 11], draft_count=4, authorized=True
    )
    eligible = make_tenant(
        authorizer_appid=account["appid"],
        access_token=account["authorizer_access_token"],
        refresh_token=account["authorizer_refresh_token"],
    )
    ineligible = make_tenant(eligibility=Eligibility.WRONG_KIND)

    call_command("sync_drafts", "--tenant", eligible.authorizer_appid, ineligible.authorizer_appid, "--no-progress")
    html = admin_client.get("/admin/").content.decode()

    assert not SyncRun.objects.exists()
    run = html.split('id="wxp-card-run"')[1].split("</div>")[0]
    assert "none yet" not in run
    assert "Command line" in run and "Today: 1 synced, 1 not called on purpose, 0 failed" in run
    today = f"{timezone.localtime():%Y-%m-%d}"
    syncs = _chart_values(html, "syncs")
    assert len(syncs) == 7 and syncs[today] == 1 and sum(syncs.values()) == 1
    assert sum(_chart_values(html, "errors").values()) == 0
    assert _chart_values(html, "skipped") == {"Not eligible for draft/count": 1}


@pytest.mark.django_db
def test_the_home_counts_each_sync_once_whatever_started_it(admin_client: Client, tenant: Tenant) -> None:
    now = timezone.now()
    # A scheduled run: its counters only (its skipped account also wrote an attempt, counted by the run).
    SyncRun.objects.create(trigger=SyncTrigger.SCHEDULE, changed=2, unchanged=3, skipped=1, failed=1, finished_at=now)
    SyncAttempt.objects.create(
        tenant=tenant,
        at=now,
        trigger=SyncTrigger.SCHEDULE,
        outcome=AttemptOutcome.SKIPPED,
        skip_reason=SkipReason.QUOTA_BUDGET,
    )
    SyncAttempt.objects.create(tenant=tenant, at=now, trigger=SyncTrigger.SCHEDULE, outcome=AttemptOutcome.FAILED)
    # Syncs of one account: the merchant API, "Sync now", WeChat's event.
    SyncAttempt.objects.create(tenant=tenant, at=now, trigger=SyncTrigger.API, outcome=AttemptOutcome.CHANGED)
    SyncAttempt.objects.create(
        tenant=tenant,
        at=now,
        trigger=SyncTrigger.ADMIN,
        outcome=AttemptOutcome.CACHED,
        skip_reason=SkipReason.RECENTLY_SYNCED,
    )
    SyncAttempt.objects.create(tenant=tenant, at=now, trigger=SyncTrigger.EVENT, outcome=AttemptOutcome.FAILED)

    html = admin_client.get("/admin/").content.decode()

    today = f"{timezone.localtime(now):%Y-%m-%d}"
    assert _chart_values(html, "syncs")[today] == 6
    assert _chart_values(html, "errors")[today] == 2
    assert "Today: 6 synced, 2 not called on purpose, 2 failed" in html
    assert _chart_values(html, "skipped") == {"Daily quota budget used": 1, "Synced moments ago": 1}


def test_a_sync_stamped_after_today_by_a_clock_ahead_is_left_out(admin_client: Client, tenant: Tenant) -> None:
    """A worker whose clock runs a little ahead stamps an attempt with tomorrow's date just after midnight: the
    home still answers, and counts it once its day comes."""
    SyncAttempt.objects.create(
        tenant=tenant, at=timezone.now() + timedelta(days=1), trigger=SyncTrigger.API, outcome=AttemptOutcome.CHANGED
    )
    SyncRun.objects.create(trigger=SyncTrigger.SCHEDULE, changed=1)
    SyncRun.objects.filter(trigger=SyncTrigger.SCHEDULE).update(started_at=timezone.now() + timedelta(days=1))

    response = admin_client.get("/admin/")

    assert response.status_code == 200
