"""A beat entry that queues again, every minute, the on-demand jobs whose task was lost (a broker outage
when they were requested, a dead worker): until now only the 15-minute scheduled run swept them.

An entry that already exists (by name) is left as the admin left it."""

from django.db import migrations
from django.utils import timezone

NAME = "Sweep lost on-demand sync jobs"


def create_entry(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    if PeriodicTask.objects.filter(name=NAME).exists():
        return
    interval = IntervalSchedule.objects.filter(every=1, period="minutes").first()
    if interval is None:
        interval = IntervalSchedule.objects.create(every=1, period="minutes")
    PeriodicTask.objects.create(
        name=NAME,
        task="drafts.sweep_jobs",
        interval=interval,
        expire_seconds=60,
        description="Queues again on-demand sync jobs whose task never reached a worker, or whose worker died.",
        enabled=True,
    )
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def delete_entry(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("drafts", "0008_syncjob_queued_at"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_entry, delete_entry)]
