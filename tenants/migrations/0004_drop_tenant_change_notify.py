"""Drops what 0003 created: the statement triggers on tenants_tenant that sent NOTIFY tenants_tenant_changed,
and their function. Nothing listens any more (the per-process tenant copies are gone; the API reads its
tenant on every request), and every UPDATE of tenants paid for the notifications.

PostgreSQL only, as 0003 was; elsewhere it does nothing. Dropping a trigger takes a brief exclusive lock on
tenants_tenant. Reversible: unapplying it runs 0003's SQL again, so the two stay one definition.
"""

import importlib

from django.db import migrations

# A module whose name starts with a digit cannot be imported with an import statement.
_notify = importlib.import_module("tenants.migrations.0003_tenant_change_notify")


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0003_tenant_change_notify"),
    ]

    operations = [
        migrations.RunPython(
            _notify._on_postgresql(_notify.DROP), _notify._on_postgresql(_notify.CREATE), elidable=False
        ),
    ]
