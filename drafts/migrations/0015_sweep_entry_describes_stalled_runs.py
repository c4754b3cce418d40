"""The minute sweep's schedule entry describes what the sweep does since drafts 0013: it also queues again the
next chunks of sync runs that stalled. The description is rewritten only where it is still the text drafts 0009
wrote; a description staff edited in the console is theirs and stays (wxplatform/core/schedule.py)."""

from django.db import migrations

BEFORE = "Queues again on-demand sync jobs whose task never reached a worker, or whose worker died."
AFTER = (
    "Queues again on-demand sync jobs whose task never reached a worker, or whose worker died, and the next "
    "chunks of sync runs that stalled (their chunk messages lost)."
)


def _replace(apps, old: str, new: str) -> None:
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(task="drafts.sweep_jobs", description=old).update(description=new)


def describe_stalled_runs(apps, schema_editor):
    _replace(apps, BEFORE, AFTER)


def describe_jobs_only(apps, schema_editor):
    _replace(apps, AFTER, BEFORE)


class Migration(migrations.Migration):
    dependencies = [
        ("drafts", "0014_snapshot_one_index"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(describe_stalled_runs, describe_jobs_only)]
