"""One UPDATE of many rows from a VALUES list (moved here from drafts.sync so that every app can use it).

Cheap to build and to execute whatever the batch size: an ORM bulk_update of 500 rows compiles a CASE with
500 branches per column, which PostgreSQL then evaluates for every row.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@dataclass(frozen=True)
class BulkUpdate:
    """The VALUES list is a common table expression whose columns are named by `columns` (the first is `id`);
    `assignments` refers to them as v.<name> and to the table's row as t, and every row is built by
    `row(**values)` from the same names, which must be given exactly. So the SQL and the tuples cannot drift
    apart. Identifiers come from the model's metadata; every value is a query parameter. NULLs must be kept out
    of VALUES (PostgreSQL cannot infer their column's type): use flags. (WITH … UPDATE … FROM works on PostgreSQL
    and on SQLite ≥ 3.33.)
    """

    table: str
    columns: tuple[str, ...]
    assignments: str

    def row(self, **values: Any) -> tuple[Any, ...]:
        if values.keys() != set(self.columns):
            raise ValueError(f"bulk update row has {sorted(values)}, expected {sorted(self.columns)}")
        return tuple(values[name] for name in self.columns)

    def execute(self, rows: Sequence[tuple[Any, ...]], params: Mapping[str, Any]) -> None:
        """Runs the update for `rows`; `params` fill the %(name)s placeholders of the assignments."""
        if not rows:
            return
        row_sql = "(" + ", ".join(["%s"] * len(self.columns)) + ")"
        table = connection.ops.quote_name(self.table)
        sql = (
            f"WITH v ({', '.join(self.columns)}) AS (VALUES {', '.join([row_sql] * len(rows))}) "  # noqa: S608
            f"UPDATE {table} AS t SET {_PLACEHOLDER.sub('%s', self.assignments)} FROM v WHERE t.id = v.id"
        )
        # Parameters in the order they appear: the VALUES rows first, then the assignments' placeholders.
        values: list[Any] = [value for row in rows for value in row]
        values.extend(params[name] for name in _PLACEHOLDER.findall(self.assignments))
        with connection.cursor() as cursor:
            cursor.execute(sql, values)
