"""A job enqueued alone: one statement writes the job, its phases and its ``job.created``
event (on PostgreSQL, autocommitted: one round trip), and what it stores is what the
batch insert stores."""

import dataclasses
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event

from jobtrack.domain.ids import new_id
from jobtrack.domain.records import Job, new_job
from jobtrack.store import events as store_events
from jobtrack.store.engine import Database
from jobtrack.store.group_commit import InsertBatcher
from jobtrack.store.jobs import get_job, insert_job, insert_jobs


def _job(**overrides: Any) -> Job:
    job = new_job(id=new_id(), tenant="t", queue_name="q", name="n", now=datetime.now(UTC),
                  data={"documentId": "d1", "n": [1, 2]}, phases=("download", "embed"),
                  priority=3, max_attempts=2)
    return dataclasses.replace(job, **overrides)


@contextmanager
def _statements(db: Database) -> Iterator[list[str]]:
    """The SQL statements ``db`` sends while the block runs."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def _stored(db: Database, job_id: str) -> tuple[Job, list[dict[str, Any]]]:
    async with db.read() as conn:
        job = await get_job(conn, job_id, tenant="t")
        assert job is not None
        history = await store_events.history(conn, job_id)
    return job, [{"type": e.type, "to": e.to_status, "actor": e.actor, "data": e.data}
                 for e in history]


async def test_alone_stores_what_the_batch_insert_stores(db: Database) -> None:
    alone = _job()
    batched = dataclasses.replace(alone, id=new_id())
    async with db.write_one() as conn:
        await insert_job(conn, alone, actor="app:t")
    async with db.write() as conn:
        await insert_jobs(conn, [batched], actor="app:t")
    got_alone, events_alone = await _stored(db, alone.id)
    got_batched, events_batched = await _stored(db, batched.id)
    assert got_alone == alone
    assert dataclasses.replace(got_batched, id=alone.id) == got_alone
    for e in events_batched:
        e["data"]["jobId"] = alone.id
    assert events_alone == events_batched
    assert [e["type"] for e in events_alone] == ["job.created"]


@pytest.fixture
async def pg_db(pg_url: str) -> AsyncIterator[Database]:
    database = Database(pg_url, pool_size=2)
    yield database
    await database.dispose()


@pytest.mark.postgres
async def test_alone_is_one_statement_on_postgres(pg_db: Database) -> None:
    # run outside a transaction, the job, its phases and its event must be one statement:
    # a second one could be lost alone, leaving a job nobody was told about
    batcher = InsertBatcher(pg_db)
    with _statements(pg_db) as sent:
        stored, fresh = await batcher.insert(_job(), actor="app:t")
    assert fresh
    assert len(sent) == 1, sent
    assert (await _stored(pg_db, stored.id))[0].phases == stored.phases


@pytest.mark.postgres
async def test_a_clash_writes_nothing(pg_db: Database) -> None:
    job = _job()
    async with pg_db.write_one() as conn:
        await insert_job(conn, job, actor="app:t")
    with pytest.raises(Exception, match="duplicate key"):
        async with pg_db.write_one() as conn:
            await insert_job(conn, dataclasses.replace(job, data={"other": True}),
                             actor="app:t")
    assert len((await _stored(pg_db, job.id))[1]) == 1  # no second job.created


async def test_a_keyed_job_is_refused(db: Database) -> None:
    async with db.write_one() as conn:
        with pytest.raises(ValueError, match="idempotency key"):
            await insert_job(conn, _job(idempotency_key="k"), actor="app:t")
