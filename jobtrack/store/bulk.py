"""Set-based batch writes for PostgreSQL: one statement per batch instead of one per row.

``INSERT ... SELECT FROM unnest(arrays)`` and ``UPDATE ... FROM unnest(arrays)`` send each
column as one array parameter, so a batch of a thousand rows is one statement, parsed and
planned once, with no per-row driver round trip or per-row SQLAlchemy parameter handling.
The rows are the same dictionaries the portable ``executemany`` path takes (column name
to Python value); JSON columns are serialized here exactly as the engine would.
On SQLite (``executemany`` is a C loop there) callers keep the portable path.
"""

from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any

import orjson
from sqlalchemy import JSON, Float, Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def wanted(conn: AsyncConnection, rows: Sequence[object]) -> bool:
    """True when the set-based path applies: PostgreSQL and more than one row."""
    return len(rows) > 1 and conn.dialect.name == "postgresql"


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


@cache
def _array_type(table: Table, column: str) -> tuple[str, Callable[[Any], Any] | None]:
    """The PostgreSQL array type of a column, and how to convert its values (JSON is
    serialized; numbers are made one type, as an array's elements must be)."""
    col_type = table.c[column].type
    impl = col_type.dialect_impl(_DIALECT)
    if isinstance(impl, JSON) or isinstance(col_type, JSON):
        return "json[]", _json
    convert = _float if isinstance(impl, Float) else None
    return f"{col_type.compile(dialect=_DIALECT)}[]", convert


def _arrays(table: Table, columns: Sequence[str],
            rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], dict[str, list[Any]]]:
    casts: list[str] = []
    params: dict[str, list[Any]] = {}
    for i, column in enumerate(columns):
        array_type, convert = _array_type(table, column)
        values = [row[column] for row in rows]
        params[f"p{i}"] = values if convert is None else [convert(v) for v in values]
        casts.append(f"%(p{i})b::{array_type}")
    return casts, params


async def insert(conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (all with the same keys) in one statement."""
    columns = list(rows[0])
    casts, params = _arrays(table, columns, rows)
    names = ", ".join(f'"{c}"' for c in columns)
    await conn.exec_driver_sql(
        f'INSERT INTO "{table.name}" ({names}) SELECT * FROM unnest({", ".join(casts)})',
        params)


async def update(
    conn: AsyncConnection, table: Table, keys: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
) -> None:
    """Update rows identified by ``keys`` (each row holds the keys and the new values)."""
    columns = list(rows[0])
    casts, params = _arrays(table, columns, rows)
    names = ", ".join(f'"{c}"' for c in columns)
    sets = ", ".join(f'"{c}" = v."{c}"' for c in columns if c not in keys)
    match = " AND ".join(f't."{k}" = v."{k}"' for k in keys)
    await conn.exec_driver_sql(
        f'UPDATE "{table.name}" AS t SET {sets} FROM unnest({", ".join(casts)}) '
        f"AS v({names}) WHERE {match}",
        params)
