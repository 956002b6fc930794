"""Bytes each of jobtrack's tables takes on disk, its indexes included (on PostgreSQL its
TOAST data too): what ``jobtrack_table_bytes`` reports and the table-size alert watches."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import func, select, text

from jobtrack.store.tables import metadata

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

#: SQLite: pages of every b-tree (table or index), summed per table (``dbstat`` reads
#: every page, so callers should not ask on every scrape of a large file)
_SQLITE = text(
    "SELECT m.tbl_name AS name, SUM(d.pgsize) AS bytes FROM dbstat AS d "
    "JOIN sqlite_master AS m ON m.name = d.name GROUP BY m.tbl_name"
)


async def table_bytes(conn: AsyncConnection) -> dict[str, int]:
    """``{table: bytes}`` for every table of the schema (0 for one not created yet)."""
    names = sorted(metadata.tables)
    if conn.dialect.name == "sqlite":
        sizes = {row.name: int(row.bytes or 0) for row in await conn.execute(_SQLITE)}
    else:  # catalog lookups only: cheap at any size
        row = (await conn.execute(select(*[
            func.coalesce(func.pg_total_relation_size(func.to_regclass(name)), 0).label(name)
            for name in names]))).one()
        sizes = {name: int(row._mapping[name]) for name in names}
    return {name: sizes.get(name, 0) for name in names}
