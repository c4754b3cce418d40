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
    old_type = ContentType.objects.filter(app_label="component", model=old).first()
    new_type = ContentType.objects.filter(app_label="component", model=new).first()
    # `migrate` renames the content type itself (contenttypes injects that after RenameModel); a bare
    # MigrationExecutor does not. A new type that exists beside the old one was made by a post_migrate before:
    # the old one is kept, as groups hold its permissions.
    if old_type is not None and new_type is not None:
        Permission.objects.filter(content_type=new_type).delete()
        new_type.delete()
    if old_type is not None:
        old_type.model = new
        old_type.save(update_fields=["model"])
    content_type = old_type or new_type
    if content_type is None:
        return  # a fresh database: post_migrate creates the new permissions
    for action in ("add", "change", "delete", "view"):
        permission = Permission.objects.filter(content_type=content_type, codename=f"{action}_{old}").first()
        if permission is None:
            continue
        Permission.objects.filter(content_type=content_type, codename=f"{action}_{new}").exclude(
            pk=permission.pk
        ).delete()
        permission.codename = f"{action}_{new}"
        permission.save(update_fields=["codename"])


def restore_permissions(apps, schema_editor):
    rename_permissions(apps, schema_editor, old=NEW, new=OLD)


class Migration(migrations.Migration):
    dependencies = [
        ("component", "0002_platform_record"),
        # Every migration that names the old model runs first, so that its state still has it.
        ("tenants", "0017_tenant_unique_per_platform"),
        ("authority", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.RenameModel("ComponentCredential", "Platform"),
        migrations.RunPython(rename_permissions, restore_permissions),
    ]
