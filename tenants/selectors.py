"""Reads for tenants and their API keys."""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, Q, QuerySet
from django.db.models.sql.compiler import SQLCompiler

from tenants.models import Eligibility, Tenant, TenantAPIKey, TenantStatus
from tenants.readcache import tenant_read_cache

# djangorestframework-api-key makes "<prefix>.<secret>" from letters and digits; anything else is not a
# key, and is turned away before it reaches the database (which, for one, refuses NUL characters).
_KEY_SHAPE = re.compile(r"[A-Za-z0-9]{1,8}\.[A-Za-z0-9]{1,128}")

# Every field of a key. Of a tenant, every field but its tokens unless fewer are asked for: a merchant is
# never answered with the tokens, so they are neither loaded nor decrypted.
_KEY_FIELDS = tuple(field.attname for field in TenantAPIKey._meta.concrete_fields)
_TENANT_FIELD_ORDER = tuple(field.attname for field in Tenant._meta.concrete_fields)
TENANT_API_FIELDS = tuple(name for name in _TENANT_FIELD_ORDER if name not in {"access_token", "refresh_token"})


@functools.cache
def _tenant_fields(fields: tuple[str, ...]) -> tuple[str, ...]:
    """`fields` and the primary key, in the model's field order (which Model.from_db() expects)."""
    wanted = {"id", *fields}
    unknown = wanted - set(_TENANT_FIELD_ORDER)
    if unknown:
        raise ValueError(f"not fields of Tenant: {sorted(unknown)}")
    return tuple(name for name in _TENANT_FIELD_ORDER if name in wanted)


P = TypeVar("P", int, str)


class _CompiledRead(Generic[P]):
    """A one-row values_list() query, compiled by the ORM once per database connection, then run with a new
    value for its one parameter.

    Compiling a query (joins, deferred fields, the WHERE clause) costs several times its database round
    trip, on every request; its SQL and the backend's value converters never change, so only the
    parameter is bound anew. Compiled per connection because connections, and the converters bound to
    them, are per thread.
    """

    def __init__(self, build: Callable[[P], QuerySet[Any, tuple[Any, ...]]], placeholder: P) -> None:
        self._build: Callable[[P], QuerySet[Any, tuple[Any, ...]]] = build
        self._placeholder: P = placeholder
        self._local = threading.local()

    def _compile(self, connection: BaseDatabaseWrapper) -> tuple[str, SQLCompiler, dict[int, Any]]:
        compiled: tuple[BaseDatabaseWrapper, str, SQLCompiler, dict[int, Any]] | None
        compiled = getattr(self._local, connection.alias, None)
        if compiled is not None and compiled[0] is connection:
            _connection, sql, compiler, converters = compiled
            return sql, compiler, converters
        compiler = self._build(self._placeholder).query.get_compiler(connection=connection)
        sql, params = compiler.as_sql()
        # The one parameter must be the placeholder, or binding a new value would query something else.
        if tuple(params) != (self._placeholder,):
            raise AssertionError(f"compiled query has parameters {params!r}, expected ({self._placeholder!r},)")
        converters = compiler.get_converters([column[0] for column in compiler.select[: compiler.col_count]])
        setattr(self._local, connection.alias, (connection, sql, compiler, converters))
        return sql, compiler, converters

    def fetch_one(self, value: P, *, using: str = DEFAULT_DB_ALIAS) -> list[Any] | None:
        connection = connections[using]
        sql, compiler, converters = self._compile(connection)
        with connection.cursor() as cursor:
            cursor.execute(sql, [value])
            row = cursor.fetchone()
        if row is None:
            return None
        return next(compiler.apply_converters([row], converters)) if converters else list(row)


@functools.cache
def _key_with_tenant_by_prefix(tenant_fields: tuple[str, ...]) -> _CompiledRead[str]:
    return _CompiledRead(
        lambda prefix: (
            TenantAPIKey.objects.filter(prefix=prefix)
            .order_by()
            .values_list(*_KEY_FIELDS, *(f"tenant__{name}" for name in tenant_fields))
        ),
        placeholder="prefix-placeholder",
    )


@functools.cache
def _tenant_by_id(tenant_fields: tuple[str, ...]) -> _CompiledRead[int]:
    return _CompiledRead(
        lambda tenant_id: Tenant.objects.filter(pk=tenant_id).order_by().values_list(*tenant_fields),
        placeholder=-1,
    )


def api_key_find(*, raw_key: str, tenant_fields: tuple[str, ...] = TENANT_API_FIELDS) -> TenantAPIKey | None:
    """The key (revoked or not) whose secret is `raw_key`, with its tenant, in one query; None if no key
    matches. The secret is checked by djangorestframework-api-key's own hasher. Of the tenant only
    `tenant_fields` are loaded (the others are deferred: read from the database if ever used)."""
    if not _KEY_SHAPE.fullmatch(raw_key):
        return None
    fields = _tenant_fields(tenant_fields)
    row = _key_with_tenant_by_prefix(fields).fetch_one(raw_key.partition(".")[0])
    if row is None:
        return None
    key = TenantAPIKey.from_db(DEFAULT_DB_ALIAS, _KEY_FIELDS, row[: len(_KEY_FIELDS)])
    key.tenant = Tenant.from_db(DEFAULT_DB_ALIAS, fields, row[len(_KEY_FIELDS) :])
    return key if key.is_valid(raw_key) else None


def tenant_get(*, tenant_id: int, fields: tuple[str, ...] = TENANT_API_FIELDS, use_copy: bool = False) -> Tenant | None:
    """The tenant with `fields` loaded (the others deferred), in one query; None if there is no such tenant.

    With `use_copy` the row may come from this process's copy instead (tenants.readcache), which is dropped
    as soon as the row changes in the database: for reads that decide nothing they then write."""
    loaded = _tenant_fields(fields)

    def load() -> tuple[Any, ...] | None:
        row = _tenant_by_id(loaded).fetch_one(tenant_id)
        return None if row is None else tuple(row)

    row = tenant_read_cache.read(tenant_id, loaded, load) if use_copy else load()
    return None if row is None else Tenant.from_db(DEFAULT_DB_ALIAS, loaded, row)


def api_key_list(*, tenant: Tenant) -> QuerySet[TenantAPIKey]:
    """The tenant's keys, newest first, revoked ones included (for the admin console)."""
    return TenantAPIKey.objects.filter(tenant=tenant).order_by("-created")


# --- The named tests every reader of tenants shares -------------------------------------------------


def syncable_tenants() -> QuerySet[Tenant]:
    """Tenants WeChat may be asked about: active and eligible (revoked, needs-reauth and ineligible ones
    never are). The sync's chunks, the stale-count gauge and the console all count from this."""
    return Tenant.objects.filter(status=TenantStatus.ACTIVE, eligibility=Eligibility.ELIGIBLE)


def failing_condition() -> Q:
    """A tenant is failing while its last error (sync or token refresh) is newer than its last successful
    sync, or it never had one: nothing has succeeded since the error."""
    return Q(last_error_at__isnull=False) & (
        Q(draft_count_fetched_at__isnull=True) | Q(last_error_at__gt=F("draft_count_fetched_at"))
    )


def failing_tenants() -> QuerySet[Tenant]:
    return Tenant.objects.filter(failing_condition())


def eligibility_reason(tenant: Tenant) -> str:
    """Why the tenant is (in)eligible, as shown to staff and merchants: the recorded detail, else the label."""
    return tenant.eligibility_detail or str(Eligibility(tenant.eligibility).label)
