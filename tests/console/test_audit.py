"""The audit trail: every admin write is recorded (who, what, when), and the log itself is read-only."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from wxplatform.models import AuditEntry


@pytest.mark.django_db
def test_disabling_the_sync_schedule_is_audited(admin_client: Client, sync_schedule: PeriodicTask) -> None:
    task = sync_schedule

    response = admin_client.post(
        reverse("admin:django_celery_beat_periodictask_changelist"),
        {"action": "disable_tasks", "_selected_action": [task.pk]},
    )

    assert response.status_code == 302
    task.refresh_from_db()
    assert task.enabled is False
    entry = AuditEntry.objects.get(action="schedule.disable_tasks")
    assert entry.actor_label == "admin"
    assert entry.detail == {"names": ["Sync draft counts (all tenants)"]}


@pytest.mark.django_db
def test_editing_a_schedule_interval_is_audited_with_the_changed_fields(admin_client: Client) -> None:
    interval = IntervalSchedule.objects.create(every=20, period=IntervalSchedule.MINUTES)
    # The page lists the tasks using the interval as an inline formset; none here.
    inline = {"periodictask_set-TOTAL_FORMS": "0", "periodictask_set-INITIAL_FORMS": "0"}

    response = admin_client.post(
        reverse("admin:django_celery_beat_intervalschedule_change", args=[interval.pk]),
        {"every": 30, "period": IntervalSchedule.MINUTES, **inline},
    )

    assert response.status_code == 302
    entry = AuditEntry.objects.get(action="admin.change")
    assert entry.target == f"django_celery_beat.intervalschedule:{interval.pk} every 30 minutes"
    assert entry.detail == {"change": [{"changed": {"fields": ["Number of Periods"]}}]}


@pytest.mark.django_db
def test_schedule_list_is_titled_for_the_sync(admin_client: Client, sync_schedule: PeriodicTask) -> None:
    html = admin_client.get(reverse("admin:django_celery_beat_periodictask_changelist")).content.decode()

    assert "<h1>Schedules, including the draft-count sync</h1>" in html
    assert "Sync draft counts (all tenants)" in html


@pytest.mark.django_db
def test_audit_log_cannot_be_added_to_edited_or_deleted(admin_client: Client) -> None:
    entry = AuditEntry.objects.create(actor_label="admin", action="tenant.sync", target="tenant:1 wx1")

    add = admin_client.post(reverse("admin:wxplatform_auditentry_add"), {"action": "forged"})
    change = admin_client.post(reverse("admin:wxplatform_auditentry_change", args=[entry.pk]), {"action": "forged"})
    delete = admin_client.post(reverse("admin:wxplatform_auditentry_delete", args=[entry.pk]), {"post": "yes"})

    assert (add.status_code, change.status_code, delete.status_code) == (403, 403, 403)
    assert list(AuditEntry.objects.values_list("action", flat=True)) == ["tenant.sync"]


@pytest.mark.django_db
def test_audit_log_lists_who_did_what_to_which_target(admin_client: Client) -> None:
    AuditEntry.objects.create(actor_label="alice", action="tenant.revoke", target="tenant:7 wxabc")

    html = admin_client.get(reverse("admin:wxplatform_auditentry_changelist")).content.decode()

    assert '<td class="field-actor_label">alice</td>' in html
    assert '<td class="field-action_label"><span title="tenant.revoke">Marked the account revoked</span></td>' in html
    assert '<td class="field-target_words">tenant:7 wxabc</td>' in html
