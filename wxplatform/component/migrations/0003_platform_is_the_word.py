"""The platform record is called what the console and the README call it: Platform (was ComponentCredential).

RenameModel keeps every row and renames the table (component_componentcredential → component_platform) and
the content type. The permissions keep their ids (groups such as `support` keep them) and take the new
codenames, so that has_perm("component.view_platform") holds for whoever had the old one.
"""

from django.db import migrations

OLD, NEW = "componentcredential", "platform"


def rename_permissions(apps, schema_editor, old=OLD, new=NEW):
    Permission = apps.get_model("auth", "Permission")
    ContentType = apps.get_model("contenttypes", "ContentType")
    content_type = ContentType.objects.filter(app_label="component", model__in=[old, new]).first()
    if content_type is None:
        return  # a fresh database: post_migrate creates the new permissions
    for action in ("add", "change", "delete", "view"):
        old_permission = Permission.objects.filter(content_type=content_type, codename=f"{action}_{old}").first()
        if old_permission is None:
            continue
        # post_migrate may have created the new codename already (a migrate interrupted after it ran): keep the
        # row groups hold, drop the other.
        Permission.objects.filter(content_type=content_type, codename=f"{action}_{new}").exclude(
            pk=old_permission.pk
        ).delete()
        old_permission.codename = f"{action}_{new}"
        old_permission.save(update_fields=["codename"])


def restore_permissions(apps, schema_editor):
    rename_permissions(apps, schema_editor, old=NEW, new=OLD)


class Migration(migrations.Migration):
    dependencies = [
        ("component", "0002_platform_record"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.RenameModel("ComponentCredential", "Platform"),
        migrations.RunPython(rename_permissions, restore_permissions),
    ]
