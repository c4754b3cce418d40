"""Beat entry: prune the token hand-out audit daily (TOKEN_HANDOUT_RETENTION_DAYS). Left alone if it exists by name."""

from django.db import migrations
from django.utils import timezone

NAME = "Prune token hand-outs"


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
        task="authority.prune_token_handouts",
        interval=interval,
        expire_seconds=86400,
        description="Deletes token hand-out rows older than TOKEN_HANDOUT_RETENTION_DAYS.",
        enabled=True,
    )
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def delete_entry(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("authority", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_entry, delete_entry)]
