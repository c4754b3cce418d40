"""Skip reasons get their own column (they rode in `message`), and SyncRun.synced is named for what it
counts: tenants whose count changed."""

from django.db import migrations, models

REASONS = ("not_active", "ineligible", "no_token", "paused", "quota_budget", "recently_synced")
CHOICES = [
    ("not_active", "Authorization revoked or to be renewed"),
    ("ineligible", "Not eligible for draft/count"),
    ("no_token", "No API credentials"),
    ("paused", "Daily quota exhausted, paused until it resets"),
    ("quota_budget", "Daily quota budget used"),
    ("recently_synced", "Synced moments ago"),
]


def move_reasons(apps, schema_editor):
    for name in ("SyncAttempt", "SyncJob"):
        model = apps.get_model("drafts", name)
        for reason in REASONS:
            model.objects.filter(message=reason).update(skip_reason=reason, message="")


def restore_reasons(apps, schema_editor):
    for name in ("SyncAttempt", "SyncJob"):
        model = apps.get_model("drafts", name)
        for reason in REASONS:
            model.objects.filter(skip_reason=reason, message="").update(message=reason)


class Migration(migrations.Migration):
    dependencies = [("drafts", "0002_beat_schedule")]

    operations = [
        migrations.RenameField("syncrun", "synced", "changed"),
        migrations.AddField(
            model_name="syncattempt",
            name="skip_reason",
            field=models.CharField(blank=True, choices=CHOICES, max_length=32, verbose_name="why not called"),
        ),
        migrations.AddField(
            model_name="syncjob",
            name="skip_reason",
            field=models.CharField(blank=True, choices=CHOICES, max_length=32, verbose_name="why not called"),
        ),
        migrations.RunPython(move_reasons, restore_reasons),
    ]
