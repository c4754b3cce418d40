"""The per-process tenant copies (tenants.readcache) against the real PostgreSQL: served only while listening,
dropped by every kind of write the moment its notification arrives, bypassed inside transactions."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from django.db import connection, transaction
from django.test.client import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tenants.models import Tenant, TenantStatus
from tenants.readcache import TenantReadCache, tenant_read_cache
from tenants.selectors import tenant_get
from tests.chaos.harness import wait_for
from tests.factories import api_headers, make_api_key, make_tenant
from wxplatform import metrics

pytestmark = pytest.mark.django_db(transaction=True)

FIELDS = ("id", "status", "draft_count")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(clock: Clock, settings: Any) -> Iterator[TenantReadCache]:
    settings.API_TENANT_CACHE_SECONDS = 60
    settings.API_TENANT_CACHE_PING_SECONDS = 5
    read_cache = TenantReadCache(clock=clock)
    yield read_cache
    read_cache.close()


def reader(read_cache: TenantReadCache, tenant_id: int) -> Callable[[], tuple[int, tuple[Any, ...] | None]]:
    """Reads through `read_cache`; returns (queries it cost, row)."""

    def read() -> tuple[int, tuple[Any, ...] | None]:
        def load() -> tuple[Any, ...] | None:
            row = Tenant.objects.filter(pk=tenant_id).values_list(*FIELDS).first()
            return None if row is None else tuple(row)

        with CaptureQueriesContext(connection) as queries:
            row = read_cache.read(tenant_id, FIELDS, load)
        return len(queries), row

    return read


def other_session(sql: str, *params: Any) -> None:
    """Runs `sql` in a session of its own, committed, as another process would."""
    settings = connection.settings_dict
    with psycopg.connect(
        dbname=settings["NAME"], user=settings["USER"], host=settings["HOST"] or "127.0.0.1", port=settings["PORT"]
    ) as other:
        other.execute(sql, params)


def listener_pid(read_cache: TenantReadCache) -> int:
    assert read_cache._listener is not None
    return int(read_cache._listener.info.backend_pid)


def counted(series: Any, label: str) -> float:
    value: float = series.labels(label)._value.get()
    return value


def test_a_second_read_is_served_from_the_copy_without_a_query(cache: TenantReadCache) -> None:
    tenant = make_tenant(draft_count=4)
    read = reader(cache, tenant.pk)
    before = {source: counted(metrics.API_TENANT_READS, source) for source in ("miss", "copy")}
    listening = counted(metrics.API_TENANT_LISTENER_EVENTS, "listening")

    assert read() == (1, (tenant.pk, "active", 4))
    assert read() == (0, (tenant.pk, "active", 4))
    assert cache.listening
    after = {source: counted(metrics.API_TENANT_READS, source) for source in ("miss", "copy")}
    assert {source: after[source] - before[source] for source in after} == {"miss": 1, "copy": 1}
    assert counted(metrics.API_TENANT_LISTENER_EVENTS, "listening") == listening + 1


def save_count(pk: int) -> None:
    tenant = Tenant.objects.get(pk=pk)
    tenant.draft_count = 9
    tenant.save(update_fields=["draft_count"])


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(lambda pk: Tenant.objects.filter(pk=pk).update(draft_count=9), id="queryset-update"),
        pytest.param(save_count, id="model-save"),
        pytest.param(
            lambda pk: other_session(
                "UPDATE tenants_tenant SET draft_count = v.n FROM (VALUES (%s, 9)) AS v(id, n) "
                "WHERE tenants_tenant.id = v.id",
                pk,
            ),
            id="bulk-sql-from-another-session",
        ),
    ],
)
def test_every_kind_of_write_drops_the_copy(cache: TenantReadCache, write: Callable[[int], Any]) -> None:
    tenant = make_tenant(draft_count=4)
    read = reader(cache, tenant.pk)
    read()
    assert read() == (0, (tenant.pk, "active", 4))

    write(tenant.pk)

    # A notification arrives shortly after the commit; the first read after its arrival queries.
    last = read_until(read, lambda result: result[1] != (tenant.pk, "active", 4))
    assert last == (1, (tenant.pk, "active", 9))
    assert read() == (0, (tenant.pk, "active", 9)), "and the new row is kept"


def read_until(
    read: Callable[[], tuple[int, tuple[Any, ...] | None]],
    done: Callable[[tuple[int, tuple[Any, ...] | None]], bool],
) -> tuple[int, tuple[Any, ...] | None]:
    results = [read()]
    wait_for(lambda: done(results[-1]) or done(results.append(read()) or results[-1]), timeout=5, what="a change")
    return results[-1]


def test_one_statement_over_many_rows_drops_every_copy_it_touched(cache: TenantReadCache) -> None:
    first = make_tenant(draft_count=1)
    Tenant.objects.bulk_create(
        [Tenant(authorizer_appid=f"wxbulk{n:012d}", draft_count=1, func_ids=[11]) for n in range(998)]
    )
    last = make_tenant(draft_count=1)
    readers = [reader(cache, first.pk), reader(cache, last.pk)]
    for read in readers:
        read()
    assert [read()[0] for read in readers] == [0, 0]

    # 1,000 rows: the ids arrive in several notifications (a payload holds at most 8000 bytes).
    Tenant.objects.filter(pk__gte=first.pk, pk__lte=last.pk).update(draft_count=2)

    for read, tenant in zip(readers, (first, last), strict=True):
        assert read_until(read, lambda result: result[0] == 1) == (1, (tenant.pk, "active", 2))


def test_a_deleted_tenant_is_not_served_from_the_copy(cache: TenantReadCache) -> None:
    tenant = make_tenant()
    read = reader(cache, tenant.pk)
    read()

    other_session("DELETE FROM tenants_tenant WHERE id = %s", tenant.pk)

    wait_for(lambda: read() == (1, None), timeout=5, what="the deletion")


def test_other_tenants_copies_survive_a_change(cache: TenantReadCache) -> None:
    changed, untouched = make_tenant(draft_count=1), make_tenant(draft_count=2)
    read_changed, read_untouched = reader(cache, changed.pk), reader(cache, untouched.pk)
    read_changed(), read_untouched()

    Tenant.objects.filter(pk=changed.pk).update(draft_count=5)
    wait_for(lambda: read_changed()[1] == (changed.pk, "active", 5), timeout=5, what="the change")

    assert read_untouched() == (0, (untouched.pk, "active", 2))


def test_truncate_and_an_unknown_payload_drop_every_copy(cache: TenantReadCache) -> None:
    tenant = make_tenant()
    read = reader(cache, tenant.pk)
    read()

    other_session("NOTIFY tenants_tenant_changed, '*'")

    wait_for(lambda: read()[0] == 1, timeout=5, what="the copies to be dropped")


def test_reads_inside_a_transaction_neither_use_nor_fill_the_copies(cache: TenantReadCache) -> None:
    tenant = make_tenant(draft_count=1)
    read = reader(cache, tenant.pk)
    read()

    with transaction.atomic():
        Tenant.objects.filter(pk=tenant.pk).update(draft_count=2)
        assert read() == (1, (tenant.pk, "active", 2)), "its own uncommitted write"
        transaction.set_rollback(True)

    assert read() == (0, (tenant.pk, "active", 1)), "the rolled-back write never reached the copy"


def test_a_copy_is_kept_no_longer_than_the_setting(cache: TenantReadCache, clock: Clock, settings: Any) -> None:
    tenant = make_tenant()
    read = reader(cache, tenant.pk)
    read()

    clock.now += 59
    assert read()[0] == 0
    clock.now += 2
    assert read()[0] == 1


def test_zero_seconds_turns_the_copies_off(cache: TenantReadCache, settings: Any) -> None:
    settings.API_TENANT_CACHE_SECONDS = 0
    tenant = make_tenant()
    read = reader(cache, tenant.pk)

    assert [read()[0] for _ in range(3)] == [1, 1, 1]
    assert not cache.listening


def test_a_lost_listener_sends_reads_to_the_database_until_it_listens_again(
    cache: TenantReadCache, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = make_tenant(draft_count=1)
    read = reader(cache, tenant.pk)
    read()
    assert read()[0] == 0

    # The server ends the listening session; then the row changes, and nobody is told.
    lost, not_listening = (
        counted(metrics.API_TENANT_LISTENER_EVENTS, "lost"),
        counted(metrics.API_TENANT_READS, "not_listening"),
    )
    other_session("SELECT pg_terminate_backend(%s)", listener_pid(cache))
    Tenant.objects.filter(pk=tenant.pk).update(draft_count=2)

    with caplog.at_level(logging.WARNING, logger="tenants.readcache"):
        assert read_until(read, lambda result: result[0] == 1) == (1, (tenant.pk, "active", 2))
    assert not cache.listening
    assert read() == (1, (tenant.pk, "active", 2)), "no copy is kept while not listening"
    assert "Tenant change notifications lost (OperationalError)" in caplog.text
    assert counted(metrics.API_TENANT_LISTENER_EVENTS, "lost") == lost + 1
    assert counted(metrics.API_TENANT_READS, "not_listening") >= not_listening + 2

    clock.now += 1.5  # past the first retry delay
    assert read() == (1, (tenant.pk, "active", 2)), "listening again, copies start from nothing"
    assert cache.listening
    assert read() == (0, (tenant.pk, "active", 2))


def test_a_thread_finding_the_cache_busy_reads_the_database(cache: TenantReadCache) -> None:
    tenant = make_tenant()
    read = reader(cache, tenant.pk)
    read()
    results: list[int] = []

    with cache._lock:  # another thread is polling
        worker = threading.Thread(target=lambda: results.append(read()[0]))
        worker.start()
        worker.join(timeout=10)

    assert results == [1]


def test_the_api_serves_a_changed_tenant_after_its_notification(client: Client, settings: Any) -> None:
    settings.API_TENANT_CACHE_SECONDS = 60
    tenant = make_tenant(draft_count=3, draft_count_fetched_at=timezone.now())
    headers = api_headers(make_api_key(tenant)[1])
    for _ in range(2):  # the first verifies the key (and reads its tenant with it), the second keeps the tenant
        assert client.get("/api/v1/draft-count", **headers).json()["total_count"] == 3

    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api/v1/draft-count", **headers).json()["total_count"] == 3
    assert len(queries) == 0, "key and tenant both from this process's copies"

    Tenant.objects.filter(pk=tenant.pk).update(draft_count=8)
    wait_for(
        lambda: client.get("/api/v1/draft-count", **headers).json().get("total_count") == 8,
        timeout=5,
        what="the new count",
    )

    Tenant.objects.filter(pk=tenant.pk).update(status=TenantStatus.REVOKED)
    wait_for(
        lambda: client.get("/api/v1/draft-count", **headers).status_code == 403,
        timeout=5,
        what="the revocation",
    )
    assert client.get("/api/v1/draft-count", **headers).json()["error"]["code"] == "tenant_revoked"


def test_the_shared_cache_is_the_one_the_api_uses(client: Client, settings: Any) -> None:
    settings.API_TENANT_CACHE_SECONDS = 60
    tenant = make_tenant()
    headers = api_headers(make_api_key(tenant)[1])

    for _ in range(2):  # the first verifies the key, the second reads the tenant through the cache
        client.get("/api/v1/tenant", **headers)

    assert tenant_read_cache.listening
    with CaptureQueriesContext(connection) as queries:
        assert tenant_get(tenant_id=tenant.pk, use_copy=True) is not None
    assert len(queries) == 0
