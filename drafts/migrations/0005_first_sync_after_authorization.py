"""A new trigger for the first sync after an authorization, and its beat entry (every minute, editable in the
admin under Periodic tasks; left alone if an entry of that name exists)."""

from django.db import migrations, models
from django.utils import timezone

NAME = "First sync of new authorizations"


def create_entry(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    if PeriodicTask.objects.filter(name=NAME).exists():
        return
    interval, _created = IntervalSchedule.objects.get_or_create(every=1, period="minutes")
    PeriodicTask.objects.create(
        name=NAME,
        task="drafts.sync_first",
        interval=interval,
        expire_seconds=60,
        description="Fetches the first draft count of accounts authorized since their last sync.",
        enabled=True,
    )
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def delete_entry(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):

    dependencies = [
        ('drafts', '0004_job_requested_at_default'),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.AlterField(
            model_name='syncattempt',
            name='trigger',
            field=models.CharField(choices=[('schedule', 'Schedule'), ('admin', 'Admin'), ('cli', 'Command line'), ('api', 'Merchant API'), ('authorization', 'First sync after authorization')], max_length=16, verbose_name='trigger'),
        ),
        migrations.AlterField(
            model_name='syncjob',
            name='trigger',
            field=models.CharField(choices=[('schedule', 'Schedule'), ('admin', 'Admin'), ('cli', 'Command line'), ('api', 'Merchant API'), ('authorization', 'First sync after authorization')], max_length=16, verbose_name='trigger'),
        ),
        migrations.AlterField(
            model_name='syncrun',
            name='trigger',
            field=models.CharField(choices=[('schedule', 'Schedule'), ('admin', 'Admin'), ('cli', 'Command line'), ('api', 'Merchant API'), ('authorization', 'First sync after authorization')], max_length=16, verbose_name='trigger'),
        ),
        migrations.RunPython(create_entry, delete_entry),
    ]
