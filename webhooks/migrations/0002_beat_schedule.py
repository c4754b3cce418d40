"""Beat entry for webhook delivery, editable afterwards in the admin (Periodic tasks).

Left as the admin left it if it exists (by name). It expires after one interval, so that a beat that ran
while no worker did leaves no pile of identical tasks behind.
"""

from django.db import migrations
from django.utils import timezone

NAME = "Deliver merchant webhooks"
EVERY_SECONDS = 10


def create_entry(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    if PeriodicTask.objects.filter(name=NAME).exists():
        return
    interval = IntervalSchedule.objects.filter(every=EVERY_SECONDS, period="seconds").first()
    if interval is None:
        interval = IntervalSchedule.objects.create(every=EVERY_SECONDS, period="seconds")
    PeriodicTask.objects.create(
        name=NAME,
        task="webhooks.deliver",
        interval=interval,
        expire_seconds=EVERY_SECONDS,
        description="Sends new webhook events and retries due deliveries.",
        enabled=True,
    )
    # Tells a running DatabaseScheduler to reload its schedule.
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def delete_entry(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_entry, delete_entry)]
