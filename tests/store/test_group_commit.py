"""Group commit: concurrent enqueues share transactions, each caller gets its own job back
once it is durable, and one bad job in a shared transaction fails alone."""

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from jobtrack.domain.ids import new_id
from jobtrack.domain.records import Job, new_job
from jobtrack.queue.app import App
from jobtrack.settings import Settings
from jobtrack.store import tables
from jobtrack.store.engine import Database
from jobtrack.store.group_commit import InsertBatcher
from jobtrack.store.jobs import get_job


def _job(*, i: int = 0, id: str | None = None, idempotency_key: str | None = None) -> Job:
    return new_job(id=id or new_id(), tenant="t", queue_name="q", name="n",
                   now=datetime.now(UTC), data={"i": i}, max_attempts=1,
                   idempotency_key=idempotency_key)


async def _count(db: Database, table: str) -> int:
    async with db.read() as conn:
        return int(await conn.scalar(
            select(func.count()).select_from(tables.metadata.tables[table])) or 0)


async def test_concurrent_enqueues_share_commits(settings: Settings) -> None:
    app = App(settings=settings)
    try:
        await app.enqueue("warm-up")  # the first enqueue also records the tenant
        jobs = await asyncio.gather(*(app.enqueue("n", i=i) for i in range(50)))
        assert [j.data["i"] for j in jobs] == list(range(50))  # each caller its own job
        assert len({j.id for j in jobs}) == 50
        batcher = app._batcher
        assert batcher is not None
        # 50 callers at once: a handful of shared transactions, not 50
        assert batcher.batches <= 5, batcher.batches
        async with app.db.read() as conn:
            for job in jobs:  # durable: every answered job is stored, with its event
                assert await get_job(conn, job.id, tenant=None) is not None
        assert await _count(app.db, "jobs") == 51
        assert await _count(app.db, "events") == 51
    finally:
        await app.close()


async def test_a_lone_caller_gets_a_transaction_at_once(db: Database) -> None:
    batcher = InsertBatcher(db)
    for i in range(3):
        stored, fresh = await batcher.insert(_job(i=i), actor="test")
        assert fresh and stored.data == {"i": i}
    assert batcher.batches == 3


async def test_one_bad_job_fails_alone(db: Database) -> None:
    batcher = InsertBatcher(db)
    taken = _job()
    await batcher.insert(taken, actor="test")
    clash = _job(id=taken.id)  # the same primary key: this insert must fail
    answers = await asyncio.gather(
        *(batcher.insert(_job(i=i), actor="test") for i in range(5)),
        batcher.insert(clash, actor="test"),
        *(batcher.insert(_job(i=i), actor="test") for i in range(5, 10)),
        return_exceptions=True)
    failed = [a for a in answers if isinstance(a, BaseException)]
    assert len(failed) == 1 and answers[5] is failed[0]
    assert await _count(db, "jobs") == 11
    assert await _count(db, "events") == 11


async def test_one_idempotency_key_in_one_shared_commit(db: Database) -> None:
    batcher = InsertBatcher(db)
    answers = await asyncio.gather(
        *(batcher.insert(_job(idempotency_key="k", i=i), actor="test") for i in range(4)))
    assert len({stored.id for stored, _ in answers}) == 1
    assert sorted(fresh for _, fresh in answers) == [False, False, False, True]
    assert await _count(db, "jobs") == 1


@pytest.mark.parametrize("actors", [("api:a", "api:b")])
async def test_each_callers_actor_is_recorded(db: Database, actors: tuple[str, str]) -> None:
    batcher = InsertBatcher(db)
    first, second = await asyncio.gather(*(batcher.insert(_job(), actor=a) for a in actors))
    async with db.read() as conn:
        rows = (await conn.execute(
            select(tables.events.c.job_id, tables.events.c.actor))).all()
    assert {(r.job_id, r.actor) for r in rows} == {(first[0].id, actors[0]),
                                                   (second[0].id, actors[1])}
