"""/metrics: who may read it, and that it carries the series operators alert on, from every process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from drafts.models import JobState, SyncJob, SyncTrigger
from drafts.rules import quota_day
from drafts.services import (
    draft_count_chunk_sync,
    draft_count_request_sync,
    draft_count_run_start,
    draft_count_sync_tenant,
)
from tenants.models import Eligibility, Tenant, TenantStatus
from tenants.services import tenant_token_refresh
from tests.factories import make_tenant
from tests.fixtures.sandbox import Sandbox
from tests.fixtures.sync import component_ready, make_all_due, sandbox_tenant, sandbox_tenants, worker_env
from tests.fixtures.worker import ROOT, Worker
from wxplatform.celery import app as celery_app
from wxplatform.component.clients import wechat_client
from wxplatform.component.models import Platform
from wxplatform.component.services import component_add, component_ticket_store, default_component
from wxplatform.core.metrics import observe_wechat_call
from wxplatform.wechat.bulk import fetch_draft_counts
from wxplatform.wechat.errors import WeChatError

pytestmark = pytest.mark.django_db

DRAFT_COUNT = "/cgi-bin/draft/count"
AUTHORIZER_TOKEN = "/cgi-bin/component/api_authorizer_token"
TOKEN = "s3cret-scrape-token"
SECOND, THIRD = "wx2c2769f8efd9abc2", "wx0000000000000003"
SECOND_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


@pytest.fixture
def open_metrics(settings: Any) -> None:
    """Metrics readable with the test token, as a production deployment would configure them."""
    settings.METRICS_TOKEN = TOKEN


def scrape(client: Any) -> str:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("text/plain; version=")
    return str(response.content.decode())


def value(text: str, name: str, **labels: str) -> float:
    """The sample `name` with exactly these labels (0 when absent: a counter not incremented yet)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


def names(text: str) -> set[str]:
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


# --- Access --------------------------------------------------------------------------------------------


def test_unprotected_metrics_do_not_exist_in_production(client: Any, settings: Any) -> None:
    settings.DEBUG = False
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_NETWORKS = "", []

    assert client.get("/metrics").status_code == 404


def test_unprotected_metrics_are_served_in_development(client: Any, settings: Any) -> None:
    settings.DEBUG = True
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_NETWORKS = "", []

    assert client.get("/metrics").status_code == 200


def test_a_token_protects_the_metrics(client: Any, open_metrics: None) -> None:
    missing = client.get("/metrics")
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer not-it")
    basic = client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}")

    assert [r.status_code for r in (missing, wrong, basic)] == [401, 401, 401]
    assert missing["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"wxp_" not in missing.content
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_allowed_networks_hide_the_metrics_from_other_addresses(client: Any, settings: Any) -> None:
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_NETWORKS = "", ["10.0.0.0/8", "fd00::/8"]

    assert client.get("/metrics", REMOTE_ADDR="192.0.2.7").status_code == 404
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="fd00::5").status_code == 200
    # The forwarded-for header is the client's word, not a proxy's: it is not trusted.
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.7", HTTP_X_FORWARDED_FOR="10.1.2.3").status_code == 404


def test_with_both_settings_a_scrape_needs_the_network_and_the_token(client: Any, settings: Any) -> None:
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_NETWORKS = TOKEN, ["10.0.0.0/8"]
    bearer = f"Bearer {TOKEN}"

    assert client.get("/metrics", REMOTE_ADDR="192.0.2.7", HTTP_AUTHORIZATION=bearer).status_code == 404
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 401
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION=bearer).status_code == 200


def test_a_malformed_network_setting_stops_start_up_with_its_name() -> None:
    env = {"DEBUG": "false", "METRICS_ALLOWED_NETWORKS": "10.0.0.0/8,not-a-network"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={**os.environ, **env, "DJANGO_SETTINGS_MODULE": "wxplatform.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "METRICS_ALLOWED_NETWORKS: 'not-a-network' is not a network (CIDR)" in result.stderr


# --- Event series --------------------------------------------------------------------------------------


def sync_all() -> None:
    """A scheduled run, chunk after chunk, in this process, at a moment every tenant is due."""
    make_all_due()
    run = draft_count_run_start(trigger=SyncTrigger.SCHEDULE, enqueue_chunks=False).run
    for chunk_id in run.chunks.order_by("index").values_list("pk", flat=True):
        draft_count_chunk_sync(chunk_id=chunk_id, chain=False)


def test_wechat_calls_are_counted_by_endpoint_and_errcode(
    client: Any, open_metrics: None, sync_settings: Sandbox
) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=3)
    before = scrape(client)
    sync_settings.control.set_faults(rate=1.0, kinds=[45011], endpoints=[DRAFT_COUNT], max_faults=1)
    with pytest.raises(WeChatError):
        wechat_client().draft_count(access_token=tenant.access_token)
    sync_settings.control.set_faults(rate=1.0, kinds=["http_502"], endpoints=[DRAFT_COUNT], max_faults=1)
    with pytest.raises(WeChatError):
        wechat_client().draft_count(access_token=tenant.access_token)
    sync_settings.control.set_faults(rate=1.0, kinds=["malformed"], endpoints=[DRAFT_COUNT], max_faults=1)
    with pytest.raises(WeChatError):
        wechat_client().draft_count(access_token=tenant.access_token)
    assert wechat_client().draft_count(access_token=tenant.access_token) == 3

    after = scrape(client)

    def delta(errcode: str) -> float:
        name = "wxp_wechat_calls_total"
        return value(after, name, endpoint=DRAFT_COUNT, errcode=errcode) - value(
            before, name, endpoint=DRAFT_COUNT, errcode=errcode
        )

    assert [delta(code) for code in ("45011", "http_502", "malformed", "0")] == [1, 1, 1, 1]
    duration = "wxp_wechat_call_duration_seconds_count"
    assert value(after, duration, endpoint=DRAFT_COUNT) - value(before, duration, endpoint=DRAFT_COUNT) == 4


def test_a_timeout_of_the_fan_out_is_counted_as_such(client: Any, open_metrics: None, sync_settings: Sandbox) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=3)
    sync_settings.control.set_faults(
        rate=1.0, kinds=["timeout"], endpoints=[DRAFT_COUNT], max_faults=1, timeout_seconds=1.0
    )
    before = scrape(client)

    [result] = fetch_draft_counts(
        sync_settings.base_url, [(tenant.pk, tenant.access_token)], read_timeout=0.2, on_call=observe_wechat_call
    )

    assert result.error is not None and result.error.errmsg == "read timeout"
    labels = {"endpoint": DRAFT_COUNT, "errcode": "timeout"}
    after = scrape(client)
    assert value(after, "wxp_wechat_calls_total", **labels) - value(before, "wxp_wechat_calls_total", **labels) == 1


def test_a_sync_counts_its_results_and_its_fan_out_calls(
    client: Any, open_metrics: None, sync_settings: Sandbox
) -> None:
    sandbox_tenants(sync_settings, 5, draft_count=4)
    make_tenant(status=TenantStatus.REVOKED)
    before = scrape(client)

    sync_all()
    sync_all()

    after = scrape(client)
    syncs = "wxp_draft_syncs_total"
    changed = value(after, syncs, trigger="schedule", result="changed") - value(
        before, syncs, trigger="schedule", result="changed"
    )
    unchanged = value(after, syncs, trigger="schedule", result="unchanged") - value(
        before, syncs, trigger="schedule", result="unchanged"
    )
    calls = value(after, "wxp_wechat_calls_total", endpoint=DRAFT_COUNT, errcode="0") - value(
        before, "wxp_wechat_calls_total", endpoint=DRAFT_COUNT, errcode="0"
    )
    assert (changed, unchanged, calls) == (5, 5, 10)
    waits = "wxp_draft_rate_limit_wait_seconds_count"
    assert value(after, waits) - value(before, waits) == 2


def test_token_refreshes_and_lock_waits_are_recorded(client: Any, open_metrics: None, sync_settings: Sandbox) -> None:
    component_ready(sync_settings)
    tenant = sandbox_tenant(sync_settings, access_token_expires_at=timezone.now() - timedelta(minutes=1))
    before = scrape(client)

    tenant_token_refresh(tenant_id=tenant.pk)

    after = scrape(client)
    refreshes = "wxp_token_refreshes_total"
    assert (
        value(after, refreshes, token="authorizer", errcode="0")
        - value(before, refreshes, token="authorizer", errcode="0")
        == 1
    )
    # The component token was fetched first, with the ticket the platform holds.
    assert (
        value(after, refreshes, token="component", errcode="0")
        - value(before, refreshes, token="component", errcode="0")
        == 1
    )
    waits = "wxp_lock_wait_seconds_count"
    assert value(after, waits, lock="tenant_token") - value(before, waits, lock="tenant_token") == 1
    assert value(after, waits, lock="component_token") - value(before, waits, lock="component_token") >= 1


# --- State series (from the database) ----------------------------------------------------------------


def test_database_gauges_report_ticket_tenants_quota_and_jobs(client: Any, open_metrics: None, settings: Any) -> None:
    now = timezone.now()
    component_ticket_store(default_component(), ticket="ticket@@@1", created_at=now)
    Platform.objects.update(ticket_received_at=now - timedelta(minutes=40))
    default = settings.WECHAT_COMPONENT_APPID
    today = quota_day(now)
    make_tenant(draft_count=1, draft_count_fetched_at=now, quota_day=today, quota_used=1000)
    make_tenant(
        draft_count=1, draft_count_fetched_at=now, quota_day=today, quota_used=10, paused_until=now + timedelta(hours=2)
    )
    make_tenant(
        status=TenantStatus.NEEDS_REAUTH, last_error_code=61023, last_error_at=now, access_token="", refresh_token=""
    )
    make_tenant(eligibility=Eligibility.WRONG_KIND)
    failing = make_tenant(draft_count=1, draft_count_fetched_at=now - timedelta(hours=3))
    Tenant.objects.filter(pk=failing.pk).update(last_error_code=-1, last_error_at=now)
    SyncJob.objects.create(tenant=failing, trigger=SyncTrigger.API)
    # WeChat's release-test account is no merchant: it would change every count below if it were counted.
    make_tenant(
        is_test_account=True,
        quota_day=today,
        quota_used=700,
        paused_until=now + timedelta(hours=2),
        last_error_code=-1,
        last_error_at=now,
    )

    text = scrape(client)

    assert value(text, "wxp_metrics_database_up") == 1
    assert value(text, "wxp_component_ticket_present", component=default) == 1
    assert value(text, "wxp_component_active", component=default) == 1
    assert 40 * 60 <= value(text, "wxp_component_ticket_age_seconds", component=default) < 41 * 60
    assert value(text, "wxp_tenants", component=default, status="active", eligibility="eligible") == 3
    assert value(text, "wxp_tenants", component=default, status="active", eligibility="wrong_kind") == 1
    assert value(text, "wxp_tenants", component=default, status="needs_reauth", eligibility="eligible") == 1
    assert value(text, "wxp_tenants_failing", errcode="61023") == 1
    assert value(text, "wxp_tenants_failing", errcode="-1") == 1
    assert value(text, "wxp_draft_quota_calls_today") == 1010
    assert value(text, "wxp_draft_quota_used_ratio_max") == 1.0
    assert value(text, "wxp_tenants_quota_budget_spent", budget="schedule") == 1
    assert value(text, "wxp_tenants_quota_budget_spent", budget="on_demand") == 1
    assert value(text, "wxp_tenants_paused") == 1
    # Stale: the one fetched three hours ago (API_DRAFT_COUNT_STALE_AFTER is two hours).
    assert value(text, "wxp_draft_counts_stale") == 1
    assert value(text, "wxp_draft_sync_jobs_open", state=JobState.PENDING) == 1
    assert value(text, "wxp_draft_sync_jobs_open", state=JobState.RUNNING) == 0


def test_without_a_ticket_the_scrape_says_so(client: Any, open_metrics: None, settings: Any) -> None:
    text = scrape(client)

    assert value(text, "wxp_component_ticket_present", component=settings.WECHAT_COMPONENT_APPID) == 0
    assert "wxp_component_ticket_age_seconds" not in names(text)


def test_every_platform_has_its_series_and_one_switched_off_says_so(client: Any, open_metrics: None) -> None:
    now = timezone.now()
    default = default_component()
    second = component_add(appid=SECOND, secret="s" * 32, token="second", aes_key=SECOND_AES_KEY, name="Second")
    third = component_add(appid=THIRD, secret="t" * 32, token="third", aes_key=SECOND_AES_KEY)
    Platform.objects.filter(pk=second.pk).update(
        ticket_received_at=now - timedelta(minutes=5),
        access_token_expires_at=now + timedelta(minutes=90),
        problem="component_verify_ticket rejected by WeChat",
        problem_code=61006,
    )
    Platform.objects.filter(pk=third.pk).update(active=False, ticket_received_at=now - timedelta(days=2))
    make_tenant(component=second)
    make_tenant(component=second)
    make_tenant(component=default)

    text = scrape(client)

    assert value(text, "wxp_component_active", component=default.component_appid) == 1
    assert value(text, "wxp_component_active", component=SECOND) == 1
    assert value(text, "wxp_component_active", component=THIRD) == 0
    assert value(text, "wxp_component_ticket_present", component=default.component_appid) == 0
    assert value(text, "wxp_component_ticket_present", component=SECOND) == 1
    assert value(text, "wxp_component_ticket_present", component=THIRD) == 1
    assert 5 * 60 <= value(text, "wxp_component_ticket_age_seconds", component=SECOND) < 6 * 60
    assert value(text, "wxp_component_ticket_age_seconds", component=THIRD) >= 2 * 86400
    assert 89 * 60 < value(text, "wxp_component_token_expires_in_seconds", component=SECOND) <= 90 * 60
    assert value(text, "wxp_component_problem", component=SECOND, errcode="61006") == 1
    problems = {
        tuple(sorted(sample.labels.items()))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "wxp_component_problem"
    }
    assert problems == {(("component", SECOND), ("errcode", "61006"))}
    assert value(text, "wxp_tenants", component=SECOND, status="active", eligibility="eligible") == 2
    assert value(text, "wxp_tenants", component=default.component_appid, status="active", eligibility="eligible") == 1


# --- Many processes ------------------------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.django_db(transaction=True)
def test_counters_of_worker_processes_reach_the_scrape(
    client: Any, open_metrics: None, sync_settings: Sandbox, worker_factory: Callable[..., Worker]
) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=8)
    # The queue is the test session's: an earlier test that published a task and ran no worker left its message
    # there, and this worker would run it too (a second drafts.sync_job in the count). Only this test's job runs.
    celery_app.control.purge()
    before = scrape(client)
    worker_factory(concurrency=2, env=worker_env())

    job = draft_count_request_sync(tenant=tenant, trigger=SyncTrigger.API).job
    wait_for(lambda: SyncJob.objects.get(pk=job.pk).state == JobState.SUCCEEDED, timeout=30, what="the job")
    # The worker records the task's duration after the job row is written: wait for that too.
    task = {"task": "drafts.sync_job", "state": "SUCCESS"}
    wait_for(
        lambda: value(scrape(client), "wxp_task_duration_seconds_count", **task) >= 1, timeout=10, what="task metric"
    )

    after = scrape(client)
    assert (
        value(after, "wxp_draft_syncs_total", trigger="api", result="changed")
        - value(before, "wxp_draft_syncs_total", trigger="api", result="changed")
        == 1
    )
    assert (
        value(after, "wxp_wechat_calls_total", endpoint=DRAFT_COUNT, errcode="0")
        - value(before, "wxp_wechat_calls_total", endpoint=DRAFT_COUNT, errcode="0")
        == 1
    )
    assert (
        value(after, "wxp_draft_sync_job_wait_seconds_count") - value(before, "wxp_draft_sync_job_wait_seconds_count")
        == 1
    )
    assert (
        value(after, "wxp_task_duration_seconds_count", **task)
        - value(before, "wxp_task_duration_seconds_count", **task)
        == 1
    )


@pytest.mark.parametrize("content", [b"", b"\x10\x00"], ids=["empty", "cut short"])
def test_a_metrics_file_that_cannot_be_read_is_left_out_and_the_scrape_answers_with_the_rest(
    client: Any, open_metrics: None, settings: Any, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    observe_wechat_call(DRAFT_COUNT, "0", 0.05)
    before = value(scrape(client), "wxp_wechat_calls_total", endpoint=DRAFT_COUNT, errcode="0")
    # As a process killed between creating its file and sizing it leaves the file, or a disk error cuts it short.
    broken = Path(settings.PROMETHEUS_MULTIPROC_DIR) / "counter_99999999.db"
    broken.write_bytes(content)
    try:
        observe_wechat_call(DRAFT_COUNT, "0", 0.05)
        text = scrape(client)
    finally:
        broken.unlink()

    assert value(text, "wxp_wechat_calls_total", endpoint=DRAFT_COUNT, errcode="0") == before + 1
    left_out = [r for r in caplog.records if r.getMessage() == "metrics file left out of the scrape: unreadable"]
    assert [getattr(r, "file", None) for r in left_out] == ["counter_99999999.db"]


def test_an_in_process_sync_is_counted_by_its_trigger(client: Any, open_metrics: None, sync_settings: Sandbox) -> None:
    tenant = sandbox_tenant(sync_settings, draft_count=2)
    before = scrape(client)

    draft_count_sync_tenant(tenant=tenant, trigger=SyncTrigger.CLI)

    after = scrape(client)
    name = "wxp_draft_syncs_total"
    assert (
        value(after, name, trigger="cli", result="changed") - value(before, name, trigger="cli", result="changed") == 1
    )


def test_pushes_are_counted_by_url_kind_and_outcome_with_bounded_labels(client: Any, open_metrics: None) -> None:
    from wxplatform.core.metrics import record_push

    before = scrape(client)
    record_push("authorizer", component=SECOND, kind="text", outcome="ok", seconds=0.02)
    record_push("component", component=SECOND, kind=None, outcome="bad_signature", seconds=0.001)
    # Whatever a caller passes, no request can mint series: odd kinds, URLs and outcomes are clamped.
    record_push("component", component=SECOND, kind="<script>" + "x" * 100, outcome="whatever", seconds=-1)
    record_push("/wechat/evil", component=SECOND, kind="text", outcome="ok", seconds=0.01)
    after = scrape(client)

    def delta(**labels: str) -> float:
        return value(after, "wxp_pushes_total", **labels) - value(before, "wxp_pushes_total", **labels)

    assert delta(component=SECOND, url="authorizer", kind="text", outcome="ok") == 1
    assert delta(component=SECOND, url="component", kind="unverified", outcome="bad_signature") == 1
    assert delta(component=SECOND, url="component", kind="unverified", outcome="error") == 1
    assert delta(component=SECOND, url="other", kind="text", outcome="ok") == 1
    assert (
        value(after, "wxp_push_duration_seconds_count", url="component")
        - value(before, "wxp_push_duration_seconds_count", url="component")
        == 2
    )
