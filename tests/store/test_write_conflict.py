"""A deadlock between two writers surfaces as WriteConflict (a retryable 409), with the
losing transaction rolled back whole (PostgreSQL)."""

import asyncio

import pytest
from sqlalchemy import text

from jobtrack.errors import WriteConflict
from jobtrack.store.engine import Database

pytestmark = pytest.mark.postgres


async def test_a_deadlock_is_a_write_conflict_and_nothing_of_it_is_written(pg_url: str) -> None:
    db = Database(pg_url, pool_size=4)
    try:
        async with db.write() as conn:
            await conn.execute(text("INSERT INTO cursors (name, event_id, updated_at) "
                                    "VALUES ('a', 0, now()), ('b', 0, now())"))
        first_locked = [asyncio.Event(), asyncio.Event()]

        async def writer(me: int, order: tuple[str, str]) -> None:
            async with db.write() as conn:
                await conn.execute(text("UPDATE cursors SET event_id = event_id + 1 "
                                        "WHERE name = :n"), {"n": order[0]})
                first_locked[me].set()
                await first_locked[1 - me].wait()
                await conn.execute(text("UPDATE cursors SET event_id = event_id + 1 "
                                        "WHERE name = :n"), {"n": order[1]})

        results = await asyncio.gather(writer(0, ("a", "b")), writer(1, ("b", "a")),
                                       return_exceptions=True)
        conflicts = [r for r in results if isinstance(r, WriteConflict)]
        assert len(conflicts) == 1 and conflicts[0].code == "write_conflict"
        assert [r for r in results if r is not conflicts[0]] == [None]
        async with db.read() as conn:
            total = await conn.scalar(text("SELECT sum(event_id) FROM cursors"))
        assert total == 2  # the winner's two updates; none of the loser's
    finally:
        await db.dispose()
