"""The read-only "support" group: view permissions on the console's models, nothing else.

Permissions are normally created after all migrations (post_migrate), so on a fresh database they do not
exist yet here; create_permissions() makes them first. Safe to run again (get_or_create, add).
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

SUPPORT_GROUP = "support"
# Apps whose records support staff may look at. Users and groups (auth) are deliberately not included.
VIEWABLE_APPS = ["tenants", "drafts", "component", "wxplatform", "django_celery_beat"]


def support_group_create(apps, schema_editor):
    for app_config in apps.get_app_configs():
        if app_config.label in VIEWABLE_APPS:
            # Migration-state app configs have no models module; create_permissions() skips those.
            models_module = getattr(app_config, "models_module", None)
            app_config.models_module = models_module or True
            create_permissions(app_config, apps=apps, verbosity=0)
            app_config.models_module = models_module
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _created = Group.objects.get_or_create(name=SUPPORT_GROUP)
    views = Permission.objects.filter(content_type__app_label__in=VIEWABLE_APPS, codename__startswith="view_")
    group.permissions.add(*views)


def support_group_delete(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=SUPPORT_GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("wxplatform", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("tenants", "0001_initial"),
        ("drafts", "0001_initial"),
        ("component", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(support_group_create, support_group_delete)]
