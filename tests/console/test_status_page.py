"""The platform status page: credentials, queue depth, quota used today, errors by errcode."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from drafts.models import AttemptOutcome, SyncAttempt, SyncTrigger
from drafts.rules import quota_day
from tenants.models import Tenant
from tests.factories import make_tenant
from wxplatform.component.models import Platform
from wxplatform.component.services import component_add, default_component

STATUS = reverse("admin-platform-status")
SECOND, THIRD = "wx2c2769f8efd9abc2", "wx0000000000000003"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def _html(client: Client) -> str:
    response = client.get(STATUS)
    assert response.status_code == 200
    return response.content.decode()


def _attempt(tenant: Tenant, *, errcode: int | None, hours_ago: float, outcome: str = AttemptOutcome.FAILED) -> None:
    SyncAttempt.objects.create(
        tenant=tenant,
        at=timezone.now() - timedelta(hours=hours_ago),
        trigger=SyncTrigger.SCHEDULE,
        outcome=outcome,
        errcode=errcode,
    )


@pytest.fixture
def redis_queue() -> Iterator[tuple[redis.Redis, str]]:
    """The Redis list that holds the default Celery queue, emptied afterwards."""
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL (the full suite runs with Redis)")
    client = redis.Redis.from_url(settings.REDIS_URL)
    key = settings.CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] + settings.CELERY_TASK_DEFAULT_QUEUE
    client.delete(key)
    yield client, key
    client.delete(key)
    client.close()


@pytest.mark.django_db
def test_status_shows_ticket_age_token_expiry_last_push_and_problem(admin_client: Client) -> None:
    now = timezone.now()
    Platform.objects.filter(pk=default_component().pk).update(
        verify_ticket="ticket@@@known",
        ticket_received_at=now - timedelta(minutes=7),
        ticket_created_at=now - timedelta(minutes=7),
        access_token="component-token-known",
        access_token_expires_at=now + timedelta(minutes=95),
        last_push_at=now - timedelta(minutes=3),
        last_push_info_type="component_verify_ticket",
        problem_code=61004,
        problem="platform configuration rejected by WeChat",
        problem_at=now,
    )

    html = _html(admin_client)

    assert "7\xa0minutes ago" in html
    assert "in 1\xa0hour, 34\xa0minutes" in html or "in 1\xa0hour, 35\xa0minutes" in html
    assert "3\xa0minutes ago" in html
    assert "verify ticket (component_verify_ticket))" in html
    assert (
        "platform configuration rejected by WeChat "
        "(errcode 61004 this server&#x27;s IP is not on the platform&#x27;s whitelist)"
    ) in html


def _section(html: str, appid: str) -> str:
    return html.split(f'id="platform-{appid}"')[1].split("</div>")[0]


@pytest.mark.django_db
def test_status_has_a_section_per_platform_and_says_which_one_is_switched_off(admin_client: Client) -> None:
    now = timezone.now()
    second = component_add(appid=SECOND, secret="s" * 32, token="second", aes_key=AES_KEY, name="Second entity")
    third = component_add(appid=THIRD, secret="t" * 32, token="third", aes_key=AES_KEY, name="Old entity")
    Platform.objects.filter(pk=second.pk).update(
        ticket_received_at=now - timedelta(minutes=4),
        access_token="second-token",
        access_token_expires_at=now + timedelta(minutes=50),
        problem="component_verify_ticket rejected by WeChat",
        problem_code=61006,
    )
    Platform.objects.filter(pk=third.pk).update(active=False, ticket_received_at=now - timedelta(days=3))

    html = _html(admin_client)

    default = _section(html, settings.WECHAT_COMPONENT_APPID)
    assert "no ticket yet" in default
    assert ">default</span>" in default
    assert "switched off" not in default
    second_html = _section(html, SECOND)
    assert f"Platform Second entity ({SECOND})" in second_html
    assert "4\xa0minutes ago" in second_html
    assert "in 49\xa0minutes" in second_html or "in 50\xa0minutes" in second_html
    assert "component_verify_ticket rejected by WeChat (errcode 61006 verify ticket invalid)" in second_html
    assert "switched off" not in second_html
    third_html = _section(html, THIRD)
    assert f"Platform Old entity ({THIRD})" in third_html
    assert '<span class="wxp-badge wxp-bad">switched off</span>' in third_html
    assert "This platform neither refreshes its component token nor syncs its accounts." in third_html
    assert "3\xa0days ago" in third_html
    # The default first, then the others by name.
    assert (
        html.index(f'id="platform-{settings.WECHAT_COMPONENT_APPID}"')
        < html.index(f'id="platform-{THIRD}"')
        < html.index(f'id="platform-{SECOND}"')
    )
    assert "second-token" not in html


@pytest.mark.django_db
def test_status_says_when_no_ticket_has_arrived(admin_client: Client) -> None:
    assert "no ticket yet" in _html(admin_client)


@pytest.mark.django_db
def test_status_counts_tasks_waiting_in_the_redis_queue(
    admin_client: Client, redis_queue: tuple[redis.Redis, str]
) -> None:
    client, key = redis_queue
    client.rpush(key, "a", "b", "c")

    html = _html(admin_client)

    assert f'<th scope="row">{settings.CELERY_TASK_DEFAULT_QUEUE}</th>' in html
    assert "3 tasks waiting" in html


@pytest.mark.django_db
def test_status_shows_unavailable_when_redis_does_not_answer(admin_client: Client, settings: Any) -> None:
    # Nothing listens on port 1; the page must still render.
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"global_keyprefix": "x:"}

    html = _html(admin_client)

    assert '<span class="wxp-badge wxp-bad">unavailable</span>' in html


@pytest.mark.django_db
def test_status_shows_na_with_the_filesystem_broker(admin_client: Client, settings: Any) -> None:
    settings.REDIS_URL = ""

    assert "n/a (filesystem broker)" in _html(admin_client)


@pytest.mark.django_db
def test_status_sums_todays_quota_and_ignores_other_days(admin_client: Client) -> None:
    today = quota_day(timezone.now())
    make_tenant(nickname="Busy", quota_day=today, quota_used=120)
    make_tenant(nickname="Quiet", quota_day=today, quota_used=30)
    make_tenant(nickname="Yesterday", quota_day=today - timedelta(days=1), quota_used=900)
    make_tenant(nickname="WeChat test", quota_day=today, quota_used=400, is_test_account=True)

    html = _html(admin_client)

    assert f"150 calls on {today:%Y-%m-%d} by 2 accounts (limit 1000 per account)." in html
    assert ">Busy</text>" in html
    assert ">Yesterday</text>" not in html
    assert ">WeChat test</text>" not in html


@pytest.mark.django_db
def test_status_groups_the_last_24_hours_of_errors_by_errcode(admin_client: Client, tenant: Tenant) -> None:
    _attempt(tenant, errcode=45009, hours_ago=1)
    _attempt(tenant, errcode=45009, hours_ago=2)
    _attempt(tenant, errcode=61007, hours_ago=3)
    _attempt(tenant, errcode=None, hours_ago=4)
    _attempt(tenant, errcode=40001, hours_ago=30)  # too old
    _attempt(tenant, errcode=None, hours_ago=1, outcome=AttemptOutcome.CHANGED)  # not an error

    html = _html(admin_client)
    table = html.split('<table id="errors-by-errcode">')[1].split("</table>")[0]

    # Each code with what it means.
    assert "<tr><td>45009 daily quota used up; paused until it resets</td><td>2</td></tr>" in table
    assert "<tr><td>61007 permission set not granted to this platform</td><td>1</td></tr>" in table
    assert "<tr><td>no errcode (network)</td><td>1</td></tr>" in table
    assert "40001" not in table
    assert 'aria-label="Sync errors by errcode, last 24 hours"' in html


@pytest.mark.django_db
def test_status_page_needs_a_staff_login(client: Client) -> None:
    response = client.get(STATUS)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


@pytest.mark.django_db
def test_status_page_is_refused_to_staff_who_may_not_see_tenants(client: Client) -> None:
    client.force_login(User.objects.create_user("intern", is_staff=True))

    assert client.get(STATUS).status_code == 403


@pytest.mark.django_db
def test_admin_index_links_the_status_page_and_the_sync_schedule(admin_client: Client) -> None:
    html = admin_client.get(reverse("admin:index")).content.decode()

    assert f'<a class="wxp-link" href="{STATUS}"><strong>Platform status</strong>' in html
    schedule = reverse("admin:django_celery_beat_periodictask_changelist") + "?q=drafts.sync_all"
    assert f'<a class="wxp-link" href="{schedule}"><strong>Sync schedule</strong>' in html
