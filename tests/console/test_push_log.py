"""The push log in the console: the list and its filters, the replay action (idempotent, audited), the
status page's pushes per hour and last push of each kind, and the daily prune."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tenants.models import PushEndpoint, PushLog, PushOutcome
from tenants.pushes import rejected_budget_key
from tenants.services import push_log_prune
from tests.fixtures.platform import EVENTS_PATH, sealed_message, signed_push, text_message, ticket_fields
from wxplatform.component.models import Platform
from wxplatform.component.services import component_add, default_component
from wxplatform.core.redis_client import redis_client
from wxplatform.models import AuditEntry

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:tenants_pushlog_changelist")
STATUS = reverse("admin-platform-status")
TEST_APPID = "wx570bc396a51b8ff8"
SECOND = "wx2c2769f8efd9abc2"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def push(client: Client, path: str, body_query: tuple[bytes, dict[str, str]]) -> Any:
    body, query = body_query
    return client.generic("POST", f"{path}?{urlencode(query)}", body, content_type="text/xml")


def ticket_push(client: Client, ticket: str, *, created: int | None = None) -> Any:
    return push(client, EVENTS_PATH, signed_push(ticket_fields(ticket, created)))


def test_the_list_shows_each_push_and_filters_by_url_and_outcome(admin_client: Client) -> None:
    ticket_push(Client(), "ticket@@@listed")
    push(Client(), f"/wechat/authorizers/{TEST_APPID}/events", sealed_message(text_message("hi"), token="forged"))

    everything = admin_client.get(CHANGELIST).content.decode()
    refused = admin_client.get(CHANGELIST, {"outcome__exact": "rejected"}).content.decode()

    assert '<td class="field-kind">component_verify_ticket</td>' in everything
    assert '<td class="field-error_code">bad_signature</td>' in everything
    assert '<td class="field-error_code">bad_signature</td>' in refused
    assert '<td class="field-kind">component_verify_ticket</td>' not in refused
    # Never the decrypted contents.
    assert "ticket@@@listed" not in everything


def test_the_list_filters_by_authorizer(admin_client: Client) -> None:
    anonymous = Client()
    push(anonymous, f"/wechat/authorizers/{TEST_APPID}/events", sealed_message(text_message("one")))
    push(anonymous, "/wechat/authorizers/wx9252c5e0bb1836fc/events", sealed_message(text_message("two")))

    response = admin_client.get(CHANGELIST, {"authorizer": TEST_APPID})

    assert [entry.authorizer_appid for entry in response.context["cl"].result_list] == [TEST_APPID]
    assert "wx9252c5e0bb1836fc" in response.content.decode()  # offered in the filter


def test_support_can_see_the_push_log_but_not_replay(support_client: Client) -> None:
    ticket_push(Client(), "ticket@@@seen")
    entry = PushLog.objects.get()

    listing = support_client.get(CHANGELIST)
    replay = support_client.post(CHANGELIST, {"action": "replay_selected", "_selected_action": [entry.pk]})

    assert listing.status_code == 200
    assert replay.status_code == 403
    assert PushLog.objects.get().replayed_at is None


def test_replaying_a_push_runs_the_handler_again_once_and_is_audited(admin_client: Client) -> None:
    ticket_push(Client(), "ticket@@@replayed")
    entry = PushLog.objects.get()
    # The ticket was lost (a restore, a bug): the stored push brings it back.
    Platform.objects.update(verify_ticket="")

    for _ in range(2):
        response = admin_client.post(CHANGELIST, {"action": "replay_selected", "_selected_action": [entry.pk]})
        assert response.status_code == 302

    assert Platform.objects.get().verify_ticket == "ticket@@@replayed"
    assert PushLog.objects.count() == 1
    assert PushLog.objects.get().replayed_at is not None
    audits = AuditEntry.objects.filter(action="pushes.replay")
    assert audits.count() == 2
    assert audits.first().detail == {"outcomes": {str(entry.pk): "success"}}  # type: ignore[union-attr]


def _stored_push(component_appid: str) -> PushLog:
    return PushLog.objects.create(
        received_at=timezone.now(),
        endpoint=PushEndpoint.COMPONENT,
        component_appid=component_appid,
        kind="component_verify_ticket",
        signature_ok=True,
        decrypted=True,
        outcome=PushOutcome.SUCCESS,
        status_code=200,
        duration_ms=1.0,
        query={},
        body="<xml/>",
    )


def test_the_list_filters_by_platform(admin_client: Client) -> None:
    default_component()
    component_add(appid=SECOND, secret="s" * 32, token="second", aes_key=AES_KEY, name="Second")
    ticket_push(Client(), "ticket@@@default")
    second = _stored_push(SECOND)

    page = admin_client.get(CHANGELIST, {"component": SECOND})

    assert [entry.pk for entry in page.context["cl"].result_list] == [second.pk]
    assert f"?component={SECOND}" in page.content.decode()
    assert "Second (wx2c2769f8efd9abc2)" in page.content.decode()
    unknown = admin_client.get(CHANGELIST, {"component": "wx0000000000000404"})
    assert unknown.status_code == 200
    assert unknown.context["cl"].result_count == 0


def test_replaying_a_push_whose_platform_is_gone_says_so_and_replays_the_others(admin_client: Client) -> None:
    ticket_push(Client(), "ticket@@@kept")
    kept = PushLog.objects.get()
    gone = _stored_push("wx0000000000000404")

    response = admin_client.post(
        CHANGELIST, {"action": "replay_selected", "_selected_action": [kept.pk, gone.pk]}, follow=True
    )

    assert response.status_code == 200
    shown = [str(message) for message in response.context["messages"]]
    assert "Pushes replayed: 1; refused again (signature or contents): 0." in shown
    assert (
        "Not replayed: the pushes to platform wx0000000000000404, which is not configured here any more "
        "(add it again to replay them)." in shown
    )
    assert AuditEntry.objects.get(action="pushes.replay").detail == {
        "outcomes": {str(kept.pk): "success", str(gone.pk): "unknown_platform"}
    }
    assert PushLog.objects.get(pk=gone.pk).replayed_at is None
    assert PushLog.objects.get(pk=kept.pk).replayed_at is not None


def test_a_replayed_forgery_is_refused_again(admin_client: Client) -> None:
    push(Client(), EVENTS_PATH, signed_push(ticket_fields("ticket@@@forged"), token="forged"))
    entry = PushLog.objects.get()

    admin_client.post(CHANGELIST, {"action": "replay_selected", "_selected_action": [entry.pk]})

    assert not Platform.objects.exclude(verify_ticket="").exists()
    assert AuditEntry.objects.get(action="pushes.replay").detail == {"outcomes": {str(entry.pk): "bad_signature"}}


def test_status_page_shows_pushes_per_hour_refusals_and_the_last_push_of_each_kind(admin_client: Client) -> None:
    anonymous = Client()
    ticket_push(anonymous, "ticket@@@one")
    ticket_push(anonymous, "ticket@@@two")
    push(anonymous, f"/wechat/authorizers/{TEST_APPID}/events", sealed_message(text_message("x")))
    push(anonymous, EVENTS_PATH, signed_push(ticket_fields("ticket@@@bad"), token="forged"))
    hour = timezone.localtime(timezone.now()).strftime("%Y-%m-%d %H:00")

    html = admin_client.get(STATUS).content.decode()

    per_hour = html[html.index('id="pushes-per-hour"') :]
    assert f"<td>{hour}</td><td>4</td>" in per_hour
    assert '<span class="wxp-badge wxp-bad">1</span>' in per_hour
    kinds = html[html.index('id="last-push-by-kind"') :]
    # Each kind in words, WeChat's code in brackets.
    assert "<td>verify ticket (component_verify_ticket)</td>" in kinds
    assert "<td>text message (text)</td>" in kinds


def test_prune_deletes_pushes_older_than_the_retention(settings: Any) -> None:
    settings.PUSH_LOG_RETENTION_DAYS = 3
    ticket_push(Client(), "ticket@@@kept")
    ticket_push(Client(), "ticket@@@old")
    old = PushLog.objects.order_by("id").last()
    PushLog.objects.filter(pk=old.pk).update(received_at=timezone.now() - timedelta(days=3, minutes=1))  # type: ignore[union-attr]

    deleted = push_log_prune()

    assert deleted == 1
    assert PushLog.objects.count() == 1


def test_rejected_pushes_are_logged_only_up_to_the_budget_per_minute(settings: Any) -> None:
    settings.PUSH_LOG_REJECTED_PER_MINUTE = 3
    settings.PUSH_LOG_REJECTED_BODY_BYTES = 16
    anonymous = Client()
    # All within one minute, whose counter starts empty.
    while time.time() % 60 > 50:
        time.sleep(1)
    redis_client().delete(rejected_budget_key(time.time()))
    garbage = (b"<xml>" + b"g" * 100, {"timestamp": "1", "nonce": "n", "msg_signature": "x"})

    answers = [push(anonymous, EVENTS_PATH, garbage).status_code for _ in range(6)]

    assert answers == [400] * 6
    logged = PushLog.objects.all()
    assert logged.count() == 3
    assert {(entry.body, entry.body_truncated) for entry in logged} == {("<xml>" + "g" * 11, True)}
