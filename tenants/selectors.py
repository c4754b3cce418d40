"""Reads for tenants and their API keys."""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import QuerySet
from django.db.models.sql.compiler import SQLCompiler

from tenants.models import Tenant, TenantAPIKey

# djangorestframework-api-key makes "<prefix>.<secret>" from letters and digits; anything else is not a
# key, and is turned away before it reaches the database (which, for one, refuses NUL characters).
_KEY_SHAPE = re.compile(r"[A-Za-z0-9]{1,8}\.[A-Za-z0-9]{1,128}")

# Every field of the key, and every field of its tenant but the tokens: a merchant is never answered with
# them, so they are neither loaded nor decrypted.
_KEY_FIELDS = tuple(field.attname for field in TenantAPIKey._meta.concrete_fields)
_TENANT_FIELDS = tuple(
    field.attname for field in Tenant._meta.concrete_fields if field.name not in {"access_token", "refresh_token"}
)
_PREFIX_PLACEHOLDER = "prefix-placeholder"


@dataclass(frozen=True)
class _CompiledKeyLookup:
    connection: BaseDatabaseWrapper
    compiler: SQLCompiler
    sql: str
    converters: dict[int, tuple[list[Any], Any]]


_compiled = threading.local()


def _key_lookup(alias: str) -> _CompiledKeyLookup:
    """The key-and-tenant query by prefix, compiled by the ORM once per database connection.

    Compiling the query (select_related, defer, the WHERE clause) cost about four times its database
    round trip on every request; its SQL and the backend's value converters do not change, so only the
    prefix is bound anew. Compiled per connection because connections (and the converters bound to them)
    are per thread.
    """
    connection = connections[alias]
    compiled: _CompiledKeyLookup | None = getattr(_compiled, alias, None)
    if compiled is not None and compiled.connection is connection:
        return compiled
    queryset = (
        TenantAPIKey.objects.using(alias)
        .filter(prefix=_PREFIX_PLACEHOLDER)
        .order_by()
        .values_list(*_KEY_FIELDS, *(f"tenant__{name}" for name in _TENANT_FIELDS))
    )
    compiler = queryset.query.get_compiler(connection=connection)
    sql, params = compiler.as_sql()
    # The one parameter must be the prefix, or binding a new one would silently query something else.
    if tuple(params) != (_PREFIX_PLACEHOLDER,):
        raise AssertionError(f"the API key lookup has parameters {params!r}, expected the prefix alone")
    converters = compiler.get_converters([column[0] for column in compiler.select[: compiler.col_count]])
    compiled = _CompiledKeyLookup(connection=connection, compiler=compiler, sql=sql, converters=converters)
    setattr(_compiled, alias, compiled)
    return compiled


def _key_with_tenant(alias: str, row: Sequence[Any]) -> TenantAPIKey:
    key = TenantAPIKey.from_db(alias, _KEY_FIELDS, row[: len(_KEY_FIELDS)])
    key.tenant = Tenant.from_db(alias, _TENANT_FIELDS, row[len(_KEY_FIELDS) :])
    return key


def api_key_find(*, raw_key: str) -> TenantAPIKey | None:
    """The key (revoked or not) whose secret is `raw_key`, with its tenant (tokens not loaded), in one
    query; None if no key matches. The secret is checked by djangorestframework-api-key's own hasher."""
    if not _KEY_SHAPE.fullmatch(raw_key):
        return None
    prefix = raw_key.partition(".")[0]
    alias = DEFAULT_DB_ALIAS
    lookup = _key_lookup(alias)
    with lookup.connection.cursor() as cursor:
        cursor.execute(lookup.sql, [prefix])
        row = cursor.fetchone()
    if row is None:
        return None
    if lookup.converters:
        row = next(lookup.compiler.apply_converters([row], lookup.converters))
    key = _key_with_tenant(alias, row)
    return key if key.is_valid(raw_key) else None


def api_key_list(*, tenant: Tenant) -> QuerySet[TenantAPIKey]:
    """The tenant's keys, newest first, revoked ones included (for the admin console)."""
    return TenantAPIKey.objects.filter(tenant=tenant).order_by("-created")
