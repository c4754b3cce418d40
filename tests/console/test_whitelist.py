"""61004 diagnosed, not just logged: the IP WeChat refused is shown on the status page, in the `whitelist`
condition of /readyz and as a metric, with when it was last seen, whichever call WeChat refused."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from drafts.models import JobState, SyncJob, SyncTrigger
from drafts.services import draft_count_request_sync
from tenants.services import tenant_token_refresh
from tests.console.test_metrics import TOKEN, scrape, value
from tests.fixtures.sandbox import Sandbox
from tests.fixtures.sync import component_ready, sandbox_tenant, worker_env
from tests.fixtures.worker import Worker
from wxplatform.component.services import ComponentNotReady, component_token_refresh, default_component
from wxplatform.core import egress
from wxplatform.wechat.errors import ConfigurationError, RetryableError, WeChatError, refused_ip

COMPONENT_TOKEN = "/cgi-bin/component/api_component_token"
AUTHORIZER_TOKEN = "/cgi-bin/component/api_authorizer_token"
DRAFT_COUNT = "/cgi-bin/draft/count"
REFUSED = "refused_ip"


@pytest.fixture(autouse=True)
def no_refusals() -> Iterator[None]:
    cache.delete(egress.CACHE_KEY)
    yield
    cache.delete(egress.CACHE_KEY)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            ConfigurationError(61004, "access clientip is not registered requestIP: 203.0.113.7 rid: 1-2-3"),
            "203.0.113.7",
        ),
        (
            ConfigurationError(61004, "access clientip is not registered requestIP:2001:db8::1 rid: 1-2-3"),
            "2001:db8::1",
        ),
        (ConfigurationError(61004, "access clientip is not registered rid: 1-2-3"), None),
        (ConfigurationError(61004, "access clientip is not registered requestIP: 999.1.1.1 rid: x"), None),
        (ConfigurationError(40164, "invalid ip 203.0.113.7, not in whitelist requestIP: 203.0.113.7"), None),
        (RetryableError(-1, "system error requestIP: 203.0.113.7"), None),
    ],
)
def test_the_refused_ip_is_read_from_a_61004_errmsg_only(error: WeChatError, expected: str | None) -> None:
    assert refused_ip(error) == expected


@pytest.mark.django_db
def test_a_refused_component_token_refresh_says_which_ip_to_whitelist_everywhere(
    wechat_settings: Sandbox, admin_client: Client, settings: Any
) -> None:
    settings.METRICS_TOKEN = TOKEN
    component_ready(wechat_settings)
    wechat_settings.control.set_faults(rate=1.0, kinds=[61004], endpoints=[COMPONENT_TOKEN])
    before = timezone.now()

    with pytest.raises(ComponentNotReady):
        component_token_refresh(default_component())

    ready = admin_client.get("/readyz").json()
    assert ready["status"] == "ok"  # the API keeps serving stored data
    condition = ready["conditions"]["whitelist"]
    assert condition.startswith(
        "add 127.0.0.1 to the platform's IP whitelist (WeChat refused it with 61004, last seen "
    )
    page = admin_client.get(reverse("admin-platform-status")).content.decode()
    assert "<code>127.0.0.1</code>" in page
    assert "add this IP to the platform's whitelist" in page
    assert f"on {COMPONENT_TOKEN}" in page
    (refusal,) = egress.refusals()
    assert (refusal.request_ip, refusal.endpoint, refusal.count) == ("127.0.0.1", COMPONENT_TOKEN, 1)
    assert before <= refusal.last_seen <= timezone.now()
    assert timezone.localtime(refusal.last_seen).strftime("last seen %Y-%m-%d %H:%M:%S") in page
    seen = value(scrape(admin_client), "wxp_whitelist_refused_last_seen_timestamp_seconds", request_ip="127.0.0.1")
    assert seen == pytest.approx(refusal.last_seen.timestamp())


@pytest.mark.django_db
def test_a_refused_authorizer_refresh_is_diagnosed_although_its_transaction_rolls_back(
    wechat_settings: Sandbox,
) -> None:
    component_ready(wechat_settings)
    tenant = sandbox_tenant(wechat_settings, access_token_expires_at=timezone.now() - timedelta(days=1))
    wechat_settings.control.set_faults(rate=1.0, kinds=[61004], endpoints=[AUTHORIZER_TOKEN])

    # The caller's transaction rolls back with the error, as a task's or a view's would.
    with pytest.raises(WeChatError), transaction.atomic():
        tenant_token_refresh(tenant_id=tenant.pk)

    assert [(r.request_ip, r.endpoint) for r in egress.refusals()] == [("127.0.0.1", AUTHORIZER_TOKEN)]


@pytest.mark.django_db(transaction=True)
def test_a_sync_refused_in_a_worker_is_diagnosed_in_the_web_process(
    sync_settings: Sandbox, client: Client, worker_factory: Callable[..., Worker]
) -> None:
    component_ready(sync_settings)
    tenant = sandbox_tenant(sync_settings, draft_count=3)
    sync_settings.control.set_faults(rate=1.0, kinds=[61004], endpoints=[DRAFT_COUNT])
    worker_factory(env=worker_env())

    job = draft_count_request_sync(tenant=tenant, trigger=SyncTrigger.API).job
    deadline = time.monotonic() + 30
    while SyncJob.objects.get(pk=job.pk).state not in (JobState.SUCCEEDED, JobState.FAILED):
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.05)

    assert [(r.request_ip, r.endpoint) for r in egress.refusals()] == [("127.0.0.1", DRAFT_COUNT)]
    assert "add 127.0.0.1 to the platform's IP whitelist" in client.get("/readyz").json()["conditions"]["whitelist"]


@pytest.mark.django_db
def test_repeated_refusals_count_up_and_drop_off_an_hour_after_the_last(wechat_settings: Sandbox) -> None:
    refusal = ConfigurationError(61004, "access clientip is not registered requestIP: 198.51.100.4 rid: 1-2-3")
    unnamed = ConfigurationError(61004, "access clientip is not registered rid: 1-2-3")
    egress.observe_error(COMPONENT_TOKEN, refusal)
    egress.observe_error(DRAFT_COUNT, refusal)
    egress.observe_error(DRAFT_COUNT, unnamed)
    egress.observe_error(DRAFT_COUNT, RetryableError(-1, "system error"))

    found = {r.request_ip: (r.endpoint, r.count) for r in egress.refusals()}
    assert found == {"198.51.100.4": (DRAFT_COUNT, 2), egress.UNKNOWN: (DRAFT_COUNT, 1)}
    assert "add the egress IP WeChat saw to the platform's IP whitelist" in str(egress.whitelist_readiness())
    assert egress.refusals(now=timezone.now() + egress.WINDOW + timedelta(seconds=1)) == []


@pytest.mark.django_db
def test_no_refusal_means_the_whitelist_condition_is_ok(client: Client, admin_client: Client) -> None:
    assert client.get("/readyz").json()["conditions"]["whitelist"] == "ok"
    assert "refused no call for the IP whitelist" in admin_client.get(reverse("admin-platform-status")).content.decode()
