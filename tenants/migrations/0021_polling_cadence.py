"""Per-account polling cadence (docs/polling.md): every existing account is due at once (the column's default
is the migration's time), and its last draft-box activity is the last change its snapshots recorded, so that an
account quiet for weeks is not treated as active on the first run after the upgrade."""

import django.utils.timezone
from django.apps.registry import Apps
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.models import Max, OuterRef, Subquery


def activity_from_snapshots(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    Tenant = apps.get_model("tenants", "Tenant")
    DraftSnapshot = apps.get_model("drafts", "DraftSnapshot")
    last_change = (
        DraftSnapshot.objects.filter(tenant=OuterRef("pk"), reason="changed")
        .values("tenant")
        .annotate(at=Max("fetched_at"))
        .values("at")
    )
    # One UPDATE for the whole table; the snapshot index (tenant, -fetched_at) serves each lookup.
    Tenant.objects.using(schema_editor.connection.alias).update(draft_activity_at=Subquery(last_change))


class Migration(migrations.Migration):
    dependencies = [
        ("component", "0003_platform_is_the_word"),
        ("drafts", "0010_skip_while_wechat_degraded"),
        ("tenants", "0020_account_kinds_as_wechat_names_them"),
    ]

    operations = [
        migrations.AddField(
            model_name="tenant",
            name="draft_activity_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="last draft-box activity"),
        ),
        migrations.AddField(
            model_name="tenant",
            name="next_poll_at",
            field=models.DateTimeField(default=django.utils.timezone.now, verbose_name="next scheduled poll"),
        ),
        migrations.AddIndex(
            model_name="tenant",
            index=models.Index(fields=["next_poll_at"], name="tenant_next_poll_idx"),
        ),
        migrations.RunPython(activity_from_snapshots, migrations.RunPython.noop, elidable=True),
    ]
