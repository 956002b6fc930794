"""Set-based batch writes for PostgreSQL: one statement per batch instead of one per row.

A batch travels as ONE parameter: the rows as a JSON array (serialized by orjson, in C),
which the server turns back into typed rows with ``json_to_recordset``. Compared with one
array parameter per column, this spends almost no Python per row (no per-element array
encoding in the driver), and the statement text depends only on the columns, so it is
parsed and planned once per shape and then served as a prepared statement.
The rows are the same dictionaries the portable ``executemany`` path takes (column name
to Python value). On SQLite (``executemany`` is a C loop there) callers keep that path.
"""

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import orjson
from sqlalchemy import Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
# naive datetimes are UTC in this code base; numpy-free, str keys only
_OPTIONS = orjson.OPT_NAIVE_UTC


def wanted(conn: AsyncConnection, rows: Sequence[object]) -> bool:
    """True when the set-based path applies: PostgreSQL and more than one row."""
    return len(rows) > 1 and conn.dialect.name == "postgresql"


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
    result = await conn.exec_driver_sql(
        _update_sql(table, tuple(rows[0]), tuple(keys), version, returning), _rows_param(rows))
    return [r[0] for r in result] if returning is not None else []
