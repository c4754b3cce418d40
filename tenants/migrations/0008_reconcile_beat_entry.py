"""The daily beat entry that reconciles tenants with WeChat's authorizer list (tenants.reconcile_authorizers),
editable afterwards in the admin (Periodic tasks). An entry that already exists by name is left as it is."""

from django.db import migrations
from django.utils import timezone

NAME = "Reconcile tenants with WeChat's authorizer list"
TASK = "tenants.reconcile_authorizers"
EVERY_DAYS = 1


def create_entry(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    if PeriodicTask.objects.filter(name=NAME).exists():
        return
    interval = IntervalSchedule.objects.filter(every=EVERY_DAYS, period="days").first()
    if interval is None:
        interval = IntervalSchedule.objects.create(every=EVERY_DAYS, period="days")
    PeriodicTask.objects.create(
        name=NAME,
        task=TASK,
        interval=interval,
        # A beat that ran while no worker did leaves at most one pass queued.
        expire_seconds=EVERY_DAYS * 86400,
        description=(
            "Walks api_get_authorizer_list: onboards accounts whose authorized push was missed, revokes tenants "
            "WeChat no longer lists (confirmed by 61003), replaces changed refresh tokens, re-reads profiles and quotas."
        ),
        enabled=True,
    )
    # Tells a running DatabaseScheduler to reload its schedule.
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def delete_entry(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0007_lifecycle_profile_quota_rid_fields"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_entry, delete_entry)]
