"""Beat entries for the periodic tasks, editable afterwards in the admin (Periodic tasks).

Entries that already exist (by name) are left as the admin left them. Each entry expires after one
interval, so that a beat that ran while no worker did does not leave a pile of identical tasks behind.
"""

from django.db import migrations
from django.utils import timezone

# (name, task, every, period, description)
ENTRIES = [
    (
        "Sync draft counts (all tenants)",
        "drafts.sync_all",
        15,
        "minutes",
        "Fetches draft/count for every eligible, active merchant account, in chunks.",
    ),
    (
        "Refresh component access token",
        "component.refresh_token",
        10,
        "minutes",
        "Keeps the platform's component_access_token valid ahead of its 2-hour expiry.",
    ),
    (
        "Refresh expiring authorizer tokens",
        "tenants.refresh_expiring_tokens",
        5,
        "minutes",
        "Renews merchant access tokens that expire within 30 minutes.",
    ),
    (
        "Authorize pending codes",
        "tenants.authorize_pending_codes",
        2,
        "minutes",
        "Exchanges authorization codes received by push whose task was never run.",
    ),
    (
        "Prune draft sync history",
        "drafts.prune",
        1,
        "days",
        "Deletes sync attempts, finished jobs and runs older than SYNC_ATTEMPT_RETENTION_DAYS.",
    ),
]
_SECONDS = {"minutes": 60, "days": 86400}


def create_entries(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    for name, task, every, period, description in ENTRIES:
        if PeriodicTask.objects.filter(name=name).exists():
            continue
        interval = IntervalSchedule.objects.filter(every=every, period=period).first()
        if interval is None:
            interval = IntervalSchedule.objects.create(every=every, period=period)
        PeriodicTask.objects.create(
            name=name,
            task=task,
            interval=interval,
            expire_seconds=every * _SECONDS[period],
            description=description,
            enabled=True,
        )
    # Tells a running DatabaseScheduler to reload its schedule.
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def delete_entries(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[entry[0] for entry in ENTRIES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("drafts", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_entries, delete_entries)]
