"""A per-process copy of the tenant rows the merchant API reads, dropped by PostgreSQL the moment a row changes.

Every merchant API request needs its tenant's row (status, eligibility, the stored draft count). Reading it
costs a database round trip, and with it Django's connection health check, another one: together about
two thirds of the CPU a draft-count read costs. Most reads find the row unchanged since the last one, so
each web process keeps the rows it has read, and PostgreSQL says when one changes:

- Triggers on tenants_tenant (migration 0003) send `NOTIFY tenants_tenant_changed, '<id>,<id>,...'` with
  the ids of the rows each UPDATE or DELETE touched, and `'*'` on TRUNCATE, whichever code wrote them:
  the ORM, `QuerySet.update()`, the sync engine's `UPDATE ... FROM (VALUES ...)`, or psql. PostgreSQL
  delivers a notification only when the writing transaction commits, to every session listening on the
  channel.
- Each process opens one listening connection of its own, lazily, and polls it in the request thread
  before it answers from a copy: a `poll()` with a zero timeout, so a copy is never served after the
  notification of its change has reached the process. A change is therefore seen by every process as
  soon as PostgreSQL has delivered its notification, a fraction of a millisecond after the commit on one
  host. Every `API_TENANT_CACHE_PING_SECONDS` the listening connection is pinged.
- Copies are served only while that connection is known to be alive. When it fails (PostgreSQL
  restarted, the network cut), every copy is dropped and reads go to the database until the process is
  listening again (retried with backoff). A row read while not listening is not kept.
- A read inside a transaction (an atomic block) neither uses nor fills the copies: it may see writes of
  its own that are not committed, or a snapshot older than a copy.
- A copy is kept at most `API_TENANT_CACHE_SECONDS` (0 turns the copies off); this bounds what a missed
  notification could cost, should one ever be missed.
- Rows are copied as the tuple of values the query returned, and a new model instance is made from it for
  each request: a view that changes its tenant changes nothing here.

Only PostgreSQL has LISTEN/NOTIFY; with another database every read goes to the database.

/metrics counts reads by source (`wxp_api_tenant_reads_total`) and the listening connection's events.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

from wxplatform import metrics

logger = logging.getLogger(__name__)

CHANNEL = "tenants_tenant_changed"
EVERY_TENANT = "*"

Row = tuple[Any, ...]
Fields = tuple[str, ...]

# Bounds on memory: past these, everything is forgotten and read again (cheap, and rare in practice).
_MAX_TENANTS = 20_000
_MAX_INVALIDATION_COUNTERS = 200_000
_RETRY_FIRST, _RETRY_MAX = 1.0, 30.0


class TenantReadCache:
    """Tenant rows by (id, fields), served only while this process listens to CHANNEL.

    Thread-safe: one thread at a time polls and reads the copies; a thread that finds another one doing it
    reads the database instead of waiting.
    """

    def __init__(self, *, alias: str = DEFAULT_DB_ALIAS, clock: Callable[[], float] = time.monotonic) -> None:
        self._alias = alias
        self._clock = clock
        self._lock = threading.Lock()
        self._listener: psycopg.Connection[Any] | None = None
        # poll(), not select(): select() cannot watch a descriptor numbered 1024 or more.
        self._readable: select.poll | None = None
        self._pid = os.getpid()
        self._rows: dict[int, dict[Fields, tuple[float, Row]]] = {}
        # Notifications seen per tenant, and a generation for "everything changed": a row read while either
        # moved is not kept, since it may predate the change.
        self._changes: dict[int, int] = {}
        self._generation = 0
        self._pinged_at = 0.0
        self._retry_at = 0.0
        self._retry_delay = _RETRY_FIRST

    # --- Reads -----------------------------------------------------------------------------------------

    def read(self, tenant_id: int, fields: Fields, load: Callable[[], Row | None]) -> Row | None:
        """The row of `tenant_id` with `fields`, from the copy if it is current, else from `load()`."""
        connection = connections[self._alias]
        if settings.API_TENANT_CACHE_SECONDS <= 0 or connection.vendor != "postgresql" or connection.in_atomic_block:
            metrics.count_tenant_read("bypass")
            return load()
        if not self._lock.acquire(blocking=False):
            metrics.count_tenant_read("bypass")
            return load()
        try:
            listening = self._poll()
            copy = self._rows.get(tenant_id, {}).get(fields) if listening else None
            generation, changes = self._generation, self._changes.get(tenant_id, 0)
        finally:
            self._lock.release()
        if not listening:
            metrics.count_tenant_read("not_listening")
            return load()
        if copy is not None and self._clock() - copy[0] < settings.API_TENANT_CACHE_SECONDS:
            metrics.count_tenant_read("copy")
            return copy[1]
        metrics.count_tenant_read("miss")
        row = load()
        if row is None:
            return None
        with self._lock:
            # Anything delivered while the row was read is applied first; if it concerned this tenant (or
            # every tenant), the row may be older than the change and is not kept.
            if self._poll() and self._generation == generation and self._changes.get(tenant_id, 0) == changes:
                if tenant_id not in self._rows and len(self._rows) >= _MAX_TENANTS:
                    self._rows.clear()
                self._rows.setdefault(tenant_id, {})[fields] = (self._clock(), row)
        return row

    def close(self) -> None:
        """Forgets every copy and closes the listening connection (tests, before their database is dropped)."""
        with self._lock:
            self._disconnect()
            self._retry_at, self._retry_delay = 0.0, _RETRY_FIRST

    @property
    def listening(self) -> bool:
        return self._listener is not None

    # --- Listening (called with the lock held) ----------------------------------------------------------

    def _poll(self) -> bool:
        """Applies every notification that has arrived; False if the copies cannot be trusted now."""
        if self._pid != os.getpid():
            # A forked child shares its parent's socket; it must neither read from it nor close it.
            self._listener, self._readable, self._pid = None, None, os.getpid()
            self._forget_all()
        listener = self._listener or self._connect()
        if listener is None:
            return False
        try:
            if self._clock() - self._pinged_at >= settings.API_TENANT_CACHE_PING_SECONDS:
                listener.execute("SELECT 1")  # notifications that arrive meanwhile reach _apply via the handler
                self._pinged_at = self._clock()
            pgconn = listener.pgconn
            if self._readable is not None and self._readable.poll(0):
                pgconn.consume_input()  # raises when the server has gone away
                while (notify := pgconn.notifies()) is not None:
                    self._apply(notify.extra.decode())
        except (psycopg.Error, OSError, ValueError) as exc:
            logger.warning("Tenant change notifications lost (%s); reading tenants from the database", _kind(exc))
            metrics.count_tenant_listener_event("lost")
            self._disconnect()
            self._schedule_retry()
            return False
        return True

    def _connect(self) -> psycopg.Connection[Any] | None:
        if self._clock() < self._retry_at:
            return None
        params = connections[self._alias].get_connection_params()
        for django_only in ("cursor_factory", "context", "prepare_threshold"):
            params.pop(django_only, None)
        # A dead peer must show up as an error, not as a socket that never becomes readable.
        params.update(keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3)
        try:
            listener = psycopg.connect(**params, autocommit=True)
            listener.add_notify_handler(lambda notify: self._apply(notify.payload))
            listener.execute(f"LISTEN {CHANNEL}")
        except (psycopg.Error, OSError) as exc:
            logger.warning("Cannot listen for tenant changes (%s); reading tenants from the database", _kind(exc))
            metrics.count_tenant_listener_event("unavailable")
            self._schedule_retry()
            return None
        # Whatever changed before LISTEN was not notified: start from nothing.
        self._forget_all()
        self._readable = select.poll()
        self._readable.register(listener.pgconn.socket, select.POLLIN)
        self._listener, self._pinged_at, self._retry_delay = listener, self._clock(), _RETRY_FIRST
        metrics.count_tenant_listener_event("listening")
        return listener

    def _apply(self, payload: str) -> None:
        ids = payload.split(",")
        if not all(tenant_id.isdigit() for tenant_id in ids):  # EVERY_TENANT, or anything unexpected
            self._forget_all()
            return
        if len(self._changes) + len(ids) > _MAX_INVALIDATION_COUNTERS:
            self._forget_all()
        for tenant_id in map(int, ids):
            self._rows.pop(tenant_id, None)
            self._changes[tenant_id] = self._changes.get(tenant_id, 0) + 1

    def _forget_all(self) -> None:
        self._rows.clear()
        self._changes.clear()
        self._generation += 1

    def _disconnect(self) -> None:
        listener, self._listener, self._readable = self._listener, None, None
        self._forget_all()
        if listener is not None:
            try:
                listener.close()
            except (psycopg.Error, OSError):  # closing a broken connection may fail; it is gone either way
                pass

    def _schedule_retry(self) -> None:
        self._retry_at = self._clock() + self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, _RETRY_MAX)


def _kind(exc: BaseException) -> str:
    # The type only: a driver's message can quote connection parameters.
    return type(exc).__name__


tenant_read_cache = TenantReadCache()
