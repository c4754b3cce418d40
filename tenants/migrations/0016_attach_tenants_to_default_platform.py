"""Existing tenants and authorization codes belong to the default platform (created by component 0002 from the
settings). Its own migration: on PostgreSQL, rows updated under deferred foreign keys and an ALTER TABLE cannot
share a transaction."""

from django.conf import settings
from django.db import migrations


def attach_to_default(apps, schema_editor):
    Tenant = apps.get_model("tenants", "Tenant")
    AuthorizationCode = apps.get_model("tenants", "AuthorizationCode")
    ComponentCredential = apps.get_model("component", "ComponentCredential")
    if not (Tenant.objects.exists() or AuthorizationCode.objects.exists()):
        return
    default, _ = ComponentCredential.objects.get_or_create(component_appid=settings.WECHAT_COMPONENT_APPID)
    Tenant.objects.filter(component__isnull=True).update(component=default)
    AuthorizationCode.objects.filter(component__isnull=True).update(component=default)


class Migration(migrations.Migration):
    dependencies = [("tenants", "0015_tenants_keyed_by_platform")]

    operations = [
        migrations.RunPython(attach_to_default, migrations.RunPython.noop),
    ]
