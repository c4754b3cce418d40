"""Beat entry for pruning webhook history (daily), editable afterwards in the admin (Periodic tasks).

Left as the admin left it if it exists (by name); expires after one interval.
"""

from django.db import migrations
from django.utils import timezone

NAME = "Prune webhook history"


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
        task="webhooks.prune",
        interval=interval,
        expire_seconds=86400,
        description="Deletes finished webhook deliveries and dispatched events older than WEBHOOK_RETENTION_DAYS.",
        enabled=True,
    )
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def delete_entry(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks", "0003_support_group_views"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_entry, delete_entry)]
