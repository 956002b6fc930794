"""Batch writes of plain rows, with as little Python per row as each database allows.

PostgreSQL: one statement per batch instead of one per row. A batch travels as ONE
parameter: the rows as a JSON array (serialized by orjson, in C), which the server turns
back into typed rows with ``json_to_recordset``. Compared with one array parameter per
column, this spends almost no Python per row (no per-element array encoding in the
driver), and the statement text depends only on the columns, so it is parsed and planned
once per shape and then served as a prepared statement.

SQLite: ``executemany`` of plain tuples straight on the driver (a C loop), with the values
already in the form SQLAlchemy would have stored (timestamps as naive UTC text, JSON as
text), skipping its per-row parameter processing.

The rows are dictionaries of column name to Python value, all with the same keys.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import JSON, Table
from sqlalchemy.dialects import postgresql

from jobtrack.store.connect import json_dumps
from jobtrack.store.tables import UTCDateTime

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
# naive datetimes are UTC in this code base; numpy-free, str keys only
_OPTIONS = orjson.OPT_NAIVE_UTC


def wanted(conn: AsyncConnection, rows: Sequence[object]) -> bool:
    """True when a batch path applies: more than one row."""
    return len(rows) > 1


def _sqlite_timestamp(value: datetime | None) -> str | None:
    # the text SQLAlchemy's SQLite DateTime stores: naive UTC, microseconds always
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(sep=" ", timespec="microseconds")


def _sqlite_json(value: Any) -> str | None:
    return None if value is None else json_dumps(value)


@cache
def _sqlite_converters(table: Table, columns: tuple[str, ...]) -> tuple[
    Callable[[Any], Any] | None, ...
]:
    out: list[Callable[[Any], Any] | None] = []
    for c in columns:
        col_type = table.c[c].type
        if isinstance(col_type, UTCDateTime):
            out.append(_sqlite_timestamp)
        elif isinstance(col_type, JSON):
            out.append(_sqlite_json)
        else:
            out.append(None)
    return tuple(out)


def _sqlite_rows(table: Table, columns: tuple[str, ...],
                 rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    convert = _sqlite_converters(table, columns)
    pairs = list(zip(columns, convert, strict=True))
    return [tuple(row[c] if f is None else f(row[c]) for c, f in pairs) for row in rows]


async def _sqlite_insert(conn: AsyncConnection, table: Table,
                         rows: Sequence[Mapping[str, Any]]) -> None:
    columns = tuple(rows[0])
    names = ", ".join(f'"{c}"' for c in columns)
    marks = ", ".join("?" for _ in columns)
    await conn.exec_driver_sql(f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})',
                               _sqlite_rows(table, columns, rows))


async def _sqlite_update(conn: AsyncConnection, table: Table, keys: Sequence[str],
                         rows: Sequence[Mapping[str, Any]]) -> None:
    values = tuple(c for c in rows[0] if c not in keys)
    sets = ", ".join(f'"{c}" = ?' for c in values)
    match = " AND ".join(f'"{k}" = ?' for k in keys)
    await conn.exec_driver_sql(f'UPDATE "{table.name}" SET {sets} WHERE {match}',
                               _sqlite_rows(table, (*values, *keys), rows))


@cache
def _record_type(table: Table, columns: tuple[str, ...]) -> str:
    """``v(col type, ...)``: how the server reads each JSON object of the batch."""
    return ", ".join(
        f'"{c}" {table.c[c].type.compile(dialect=_DIALECT)}' for c in columns
    )


def _rows_param(rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    return {"rows": orjson.dumps(rows, option=_OPTIONS).decode()}


@cache
def _insert_sql(table: Table, columns: tuple[str, ...]) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    return (f'INSERT INTO "{table.name}" ({names}) SELECT {names} '
            f"FROM json_to_recordset(%(rows)s::json) AS v({_record_type(table, columns)})")


@cache
def _update_sql(table: Table, columns: tuple[str, ...], keys: tuple[str, ...],
                version: str | None, returning: str | None) -> str:
    sets = ", ".join(f'"{c}" = v."{c}"' for c in columns if c not in keys)
    match = " AND ".join(f't."{k}" = v."{k}"' for k in keys)
    if version is not None:  # only rows still at the version the new one follows
        match += f' AND t."{version}" = v."{version}" - 1'
    sql = (f'UPDATE "{table.name}" AS t SET {sets} '
           f"FROM json_to_recordset(%(rows)s::json) AS v({_record_type(table, columns)}) "
           f"WHERE {match}")
    return sql if returning is None else f'{sql} RETURNING t."{returning}"'


async def insert(conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (all with the same keys) in one statement."""
    if conn.dialect.name == "sqlite":
        await _sqlite_insert(conn, table, rows)
        return
    await conn.exec_driver_sql(_insert_sql(table, tuple(rows[0])), _rows_param(rows))


async def update(
    conn: AsyncConnection, table: Table, keys: Sequence[str],
    rows: Sequence[Mapping[str, Any]], *, version: str | None = None,
    returning: str | None = None,
) -> list[Any]:
    """Update rows identified by ``keys`` (each row holds the keys and the new values);
    with ``version``, only rows whose stored version is one below the row's new one; with
    ``returning``, answer that column of each row updated."""
    if not rows:
        return []
    if conn.dialect.name == "sqlite":
        if version is not None or returning is not None:
            raise NotImplementedError("guarded batch updates are PostgreSQL's (see writer)")
        await _sqlite_update(conn, table, keys, rows)
        return []
    result = await conn.exec_driver_sql(
        _update_sql(table, tuple(rows[0]), tuple(keys), version, returning), _rows_param(rows))
    return [r[0] for r in result] if returning is not None else []
