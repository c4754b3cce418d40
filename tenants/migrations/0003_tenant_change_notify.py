"""PostgreSQL tells every listening process which tenant row changed (tenants.readcache).

A row trigger sends NOTIFY tenants_tenant_changed with the id of each updated or deleted row, and a
statement trigger sends '*' on TRUNCATE. Inserts need none: no process can hold a copy of a row that did
not exist. Other databases have no LISTEN/NOTIFY, and readcache does not keep copies there.
"""

from collections.abc import Callable

from django.apps.registry import Apps
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

CREATE = """
CREATE OR REPLACE FUNCTION tenants_tenant_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('tenants_tenant_changed', '*');
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('tenants_tenant_changed', OLD.id::text);
    ELSE
        PERFORM pg_notify('tenants_tenant_changed', OLD.id::text);
        IF NEW.id <> OLD.id THEN
            PERFORM pg_notify('tenants_tenant_changed', NEW.id::text);
        END IF;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER tenants_tenant_notify_row AFTER UPDATE OR DELETE ON tenants_tenant
    FOR EACH ROW EXECUTE FUNCTION tenants_tenant_notify_change();
CREATE TRIGGER tenants_tenant_notify_truncate AFTER TRUNCATE ON tenants_tenant
    FOR EACH STATEMENT EXECUTE FUNCTION tenants_tenant_notify_change();
"""

DROP = """
DROP TRIGGER IF EXISTS tenants_tenant_notify_truncate ON tenants_tenant;
DROP TRIGGER IF EXISTS tenants_tenant_notify_row ON tenants_tenant;
DROP FUNCTION IF EXISTS tenants_tenant_notify_change();
"""


def _on_postgresql(sql: str) -> Callable[[Apps, BaseDatabaseSchemaEditor], None]:
    def run(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
        if schema_editor.connection.vendor == "postgresql":
            with schema_editor.connection.cursor() as cursor:
                cursor.execute(sql)  # no parameters: several statements in one go

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0002_eligibility_label"),
    ]

    operations = [
        migrations.RunPython(_on_postgresql(CREATE), _on_postgresql(DROP), elidable=False),
    ]
