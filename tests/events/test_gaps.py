"""Gap-safe reading: an event whose transaction commits after a later id's is not lost.

On PostgreSQL two real connections reproduce it: one transaction takes a lower event id
and stays open while another commits a higher one."""

import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

from jobtrack.events.hub import EventHub
from jobtrack.events.ordered import OrderedReader
from jobtrack.settings import Settings
from jobtrack.store.engine import Database
from jobtrack.store.feed import SqlEventLog, libpq_url
from jobtrack.store.tables import events
from support.events import add_event, nothing_within, receive

INSERT = (
    "INSERT INTO events (tenant, type, at, queue_name, data) "
    "VALUES ('t1', 'job.updated', now(), 'q', %s) RETURNING id"
)


async def open_insert(url: str, label: str) -> tuple[psycopg.AsyncConnection, int]:
    """A transaction that inserted one event and is still open."""
    conn = await psycopg.AsyncConnection.connect(libpq_url(url))
    cur = await conn.execute(INSERT, (psycopg.types.json.Json({"label": label}),))
    row = await cur.fetchone()
    assert row is not None
    return conn, int(row[0])


async def commit_insert(url: str, label: str) -> int:
    conn, event_id = await open_insert(url, label)
    await conn.commit()
    await conn.close()
    return event_id


@pytest.fixture
async def pg_hub(pg_url: str) -> AsyncIterator[EventHub]:
    db = Database(pg_url, pool_size=2)
    settings = Settings(database_url=pg_url, event_gap_grace_seconds=0.3,
                        event_gap_timeout_seconds=30)
    hub = EventHub(db, settings)
    await hub.start()
    yield hub
    await hub.stop()
    await db.dispose()


async def test_a_lower_id_committing_last_is_delivered_first(
    pg_hub: EventHub, pg_url: str
) -> None:
    sub = pg_hub.subscribe(None)
    slow, low = await open_insert(pg_url, "slow")
    high = await commit_insert(pg_url, "fast")
    assert low < high
    # the later id is held back while the earlier one may still commit (well past the grace)
    assert await nothing_within(sub, 1.0)
    await slow.commit()
    await slow.close()
    got = await receive(sub, 2)
    assert [(e.id, e.data["label"]) for e in got] == [(low, "slow"), (high, "fast")]
    assert pg_hub.cursor == high


async def test_a_rolled_back_id_stalls_delivery_no_longer_than_the_grace(
    pg_hub: EventHub, pg_url: str
) -> None:
    sub = pg_hub.subscribe(None)
    doomed, low = await open_insert(pg_url, "doomed")
    try:
        high = await commit_insert(pg_url, "kept")
        assert await nothing_within(sub, 0.5)
        await doomed.rollback()
        rolled_back_at = time.monotonic()
        [event] = await receive(sub, 1)
        waited = time.monotonic() - rolled_back_at
    finally:
        await doomed.close()
    assert event.id == high and low < high
    # the grace (0.3 s), not the gap timeout (30 s), with room for a loaded machine
    assert waited < pg_hub.settings.event_gap_grace_seconds + 3.0
    after = await commit_insert(pg_url, "after")  # delivery goes on normally
    assert [e.id for e in await receive(sub, 1)] == [after]


async def test_a_transaction_open_past_the_timeout_is_delivered_late(pg_url: str) -> None:
    db = Database(pg_url, pool_size=2)
    settings = Settings(database_url=pg_url, event_gap_grace_seconds=0.1,
                        event_gap_timeout_seconds=0.6)
    hub = EventHub(db, settings)
    await hub.start()
    try:
        sub = hub.subscribe(None)
        slow, low = await open_insert(pg_url, "slow")
        high = await commit_insert(pg_url, "fast")
        # live events keep flowing once the timeout passed ...
        [first] = await receive(sub, 1, timeout=3)
        assert first.id == high
        assert [(r.lo, r.hi) for r in hub.late_ranges] == [(low, low)]
        # ... and the late one still arrives when it commits
        await slow.commit()
        await slow.close()
        [late] = await receive(sub, 1, timeout=3)
        assert late.id == low and late.data["label"] == "slow"
        assert hub.late_ranges == ()
    finally:
        await hub.stop()
        await db.dispose()


async def test_sqlite_holes_are_skipped_at_once(tmp_path: Path, sqlite_template: Path) -> None:
    """SQLite writers hold the lock until commit: a missing id is never coming."""
    path = tmp_path / "j.db"
    shutil.copyfile(sqlite_template, path)
    db = Database(f"sqlite:///{path}")
    try:
        for i in range(3):
            await add_event(db, data={"i": i})
        async with db.write() as conn:
            await conn.execute(events.delete().where(events.c.id == 2))
        reader = OrderedReader(0, postgres=False)
        async with db.read() as conn:
            got = await reader.read(SqlEventLog(conn))
        assert [e.id for e in got] == [1, 3]
        assert reader.cursor == 3 and not reader.gap_open
    finally:
        await db.dispose()
