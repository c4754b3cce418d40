"""The read-only "support" group may look at the token authority too: service keys (name, prefix, scope, use;
never the hash, which the admin does not render) and the audit of token hand-outs. View permissions only.

Permissions are normally created after all migrations (post_migrate); create_permissions() makes them first.
Safe to run again.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def support_views_add(apps, schema_editor):
    app_config = apps.get_app_config("authority")
    models_module = getattr(app_config, "models_module", None)
    app_config.models_module = models_module or True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = models_module
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group = Group.objects.filter(name="support").first()
    if group is not None:
        group.permissions.add(
            *Permission.objects.filter(content_type__app_label="authority", codename__startswith="view_")
        )


def support_views_remove(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group = Group.objects.filter(name="support").first()
    if group is not None:
        group.permissions.remove(*Permission.objects.filter(content_type__app_label="authority"))


class Migration(migrations.Migration):
    dependencies = [
        ("authority", "0004_service_key_labels"),
        ("wxplatform", "0002_support_group"),
    ]

    operations = [migrations.RunPython(support_views_add, support_views_remove)]
