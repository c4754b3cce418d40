"""PostgreSQL tells every listening process which tenant rows changed (tenants.readcache).

Statement triggers send NOTIFY tenants_tenant_changed with the ids of the rows an UPDATE or DELETE
touched, comma-separated, at most 400 to a notification (payloads are limited to 8000 bytes); TRUNCATE
sends '*'. One notification per few hundred rows rather than one per row: the sync engine updates its
tenants 500 to a statement, and per-row triggers cost it about a tenth of its throughput. Inserts need
none: no process can hold a copy of a row that did not exist. Other databases have no LISTEN/NOTIFY,
and readcache keeps no copies there.

0004 drops them again, with tenants.readcache.
"""

from collections.abc import Callable

from django.apps.registry import Apps
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

CREATE = """
CREATE OR REPLACE FUNCTION tenants_tenant_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    payload text;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('tenants_tenant_changed', '*');
        RETURN NULL;
    END IF;
    FOR payload IN
        SELECT string_agg(id::text, ',')
        FROM (SELECT id, (row_number() OVER () - 1) / 400 AS batch FROM changed_rows) AS numbered
        GROUP BY batch
    LOOP
        PERFORM pg_notify('tenants_tenant_changed', payload);
    END LOOP;
    RETURN NULL;
END
$$;
CREATE TRIGGER tenants_tenant_notify_update AFTER UPDATE ON tenants_tenant
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION tenants_tenant_notify_change();
CREATE TRIGGER tenants_tenant_notify_delete AFTER DELETE ON tenants_tenant
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION tenants_tenant_notify_change();
CREATE TRIGGER tenants_tenant_notify_truncate AFTER TRUNCATE ON tenants_tenant
    FOR EACH STATEMENT EXECUTE FUNCTION tenants_tenant_notify_change();
"""

DROP = """
DROP TRIGGER IF EXISTS tenants_tenant_notify_truncate ON tenants_tenant;
DROP TRIGGER IF EXISTS tenants_tenant_notify_delete ON tenants_tenant;
DROP TRIGGER IF EXISTS tenants_tenant_notify_update ON tenants_tenant;
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
