"""Beat entry: prune the push log daily (PUSH_LOG_RETENTION_DAYS). Left alone if it already exists by name."""

from django.db import migrations
from django.utils import timezone

NAME = "Prune push log"


def create_entry(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    if PeriodicTask.objects.filter(name=NAME).exists():
        return
    interval = IntervalSchedule.objects.filter(every=1, period="days").first()
    if interval is None:
        interval = IntervalSchedule.objects.create(every=1, period="days")
    PeriodicTask.objects.create(
        name=NAME,
        task="tenants.prune_push_log",
        interval=interval,
        expire_seconds=86400,
        description="Deletes pushes to the WeChat URLs older than PUSH_LOG_RETENTION_DAYS.",
        enabled=True,
    )
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def delete_entry(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0012_release_test_accounts_push_log_and_messages"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_entry, delete_entry)]
