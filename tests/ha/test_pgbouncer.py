"""The database behind pgbouncer in transaction mode (issue 24, part 2).

`make test-pgbouncer` runs the integration tests of the sync, the merchant API, token single-flight,
reconciliation and webhooks with every connection through a private pgbouncer (tests/fixtures/pgbouncer.py).
These tests prove the set-up itself: that the connections really go through pgbouncer in transaction mode,
and what DATABASE_TRANSACTION_POOLING changes. Outside `make test-pgbouncer` they start a pgbouncer of their
own for the test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from tenants.models import Tenant
from tests.factories import make_tenant
from tests.fixtures.pgbouncer import PGBOUNCER, PgBouncer
from wxplatform.component.services import default_component

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not Path(PGBOUNCER).exists(), reason="pgbouncer is not installed")


@pytest.fixture
def bouncer(pgbouncer_server: PgBouncer | None, transactional_db: None, settings: Any) -> Iterator[PgBouncer]:
    """The pgbouncer the default connection goes through: the session's (--pgbouncer), else one of this test's."""
    if pgbouncer_server is not None:
        yield pgbouncer_server
        return
    if connection.vendor != "postgresql":
        pytest.skip("pgbouncer fronts PostgreSQL; DATABASE_URL is not PostgreSQL")
    direct = (connection.settings_dict["HOST"], connection.settings_dict["PORT"])
    upstream = (direct[0] or "127.0.0.1", int(direct[1] or 5432))
    own = PgBouncer(upstream_host=upstream[0], upstream_port=upstream[1], user=connection.settings_dict["USER"]).start()
    # What DATABASE_TRANSACTION_POOLING sets (the session was not started with it).
    options = connection.settings_dict["OPTIONS"]
    saved = (connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS"), options.get("prepare_threshold", 5))
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT=str(own.port), DISABLE_SERVER_SIDE_CURSORS=True)
    options["prepare_threshold"] = None
    try:
        yield own
    finally:
        connection.close()
        connection.settings_dict.update(HOST=direct[0], PORT=direct[1], DISABLE_SERVER_SIDE_CURSORS=saved[0])
        options["prepare_threshold"] = saved[1]
        own.stop()


def test_the_connections_go_through_pgbouncer_in_transaction_mode(bouncer: PgBouncer) -> None:
    make_tenant()
    assert Tenant.objects.count() == 1

    database = connection.settings_dict["NAME"]
    pools = {row["database"]: row for row in bouncer.admin("SHOW POOLS")}
    stats = {row["database"]: row for row in bouncer.admin("SHOW STATS")}
    assert connection.settings_dict["PORT"] == str(bouncer.port)
    assert pools[database]["pool_mode"] == "transaction"
    assert stats[database]["total_xact_count"] > 0
    assert any(client["database"] == database for client in bouncer.admin("SHOW CLIENTS"))


def test_iterator_reads_every_row_while_other_clients_share_the_server_connections(bouncer: PgBouncer) -> None:
    """.iterator() outside a transaction: with server-side cursors a later FETCH could land on another server
    connection ("cursor does not exist"); with them off (the setting) it reads in client-side chunks."""
    component = default_component()
    Tenant.objects.bulk_create([Tenant(component=component, authorizer_appid=f"wxiter{n:012d}") for n in range(1200)])
    stop = threading.Event()

    def busy() -> None:
        # Other clients taking server connections between the iterator's fetches.
        from django.db import connection as own

        while not stop.is_set():
            Tenant.objects.filter(pk__lt=10).exists()
        own.close()

    others = [threading.Thread(target=busy) for _ in range(4)]
    for thread in others:
        thread.start()
    try:
        appids = Tenant.objects.order_by("pk").values_list("authorizer_appid", flat=True)
        seen = list(appids.iterator(chunk_size=100))
    finally:
        stop.set()
        for thread in others:
            thread.join(10)

    assert seen == [f"wxiter{n:012d}" for n in range(1200)]


def _database_settings(**env: str) -> dict[str, Any]:
    code = (
        "import json, django; django.setup(); from django.conf import settings; d = settings.DATABASES['default'];"
        " print(json.dumps({'cursors_off': d.get('DISABLE_SERVER_SIDE_CURSORS', False),"
        " 'prepare_threshold': d['OPTIONS'].get('prepare_threshold', 'default'), 'conn_max_age': d['CONN_MAX_AGE']}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=dict(os.environ, DJANGO_SETTINGS_MODULE="wxplatform.settings", **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return dict(json.loads(result.stdout))


def test_transaction_pooling_turns_off_server_side_cursors_and_prepared_statements() -> None:
    url = "postgres://postgres@127.0.0.1:6432/wxp"

    pooled = _database_settings(DATABASE_URL=url, DATABASE_TRANSACTION_POOLING="true", CONN_MAX_AGE="60")
    direct = _database_settings(DATABASE_URL=url, DATABASE_TRANSACTION_POOLING="false", CONN_MAX_AGE="60")

    # Persistent connections stay: a connection to pgbouncer holds no server connection between transactions.
    assert pooled == {"cursors_off": True, "prepare_threshold": None, "conn_max_age": 60}
    assert direct == {"cursors_off": False, "prepare_threshold": "default", "conn_max_age": 60}
