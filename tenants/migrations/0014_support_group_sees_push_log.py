"""The read-only "support" group may look at the push log (it was created before the model existed)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def grant(apps, schema_editor):
    app_config = apps.get_app_config("tenants")
    models_module = getattr(app_config, "models_module", None)
    app_config.models_module = models_module or True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = models_module
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group = Group.objects.filter(name="support").first()
    if group is not None:
        group.permissions.add(*Permission.objects.filter(content_type__app_label="tenants", codename="view_pushlog"))


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0013_beat_prune_push_log"),
        ("wxplatform", "0002_support_group"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
