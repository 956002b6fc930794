"""The status read ``read_job``: on PostgreSQL it runs on the driver connection, and must
give exactly what ``get_job`` gives through SQLAlchemy, scoped by tenant, and hand its
connection back to the pool as it found it (out of autocommit)."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from jobtrack.domain.ids import new_id
from jobtrack.domain.records import Job, new_job
from jobtrack.errors import DatabaseUnavailable
from jobtrack.store import tables
from jobtrack.store.engine import Database
from jobtrack.store.jobs import get_job, insert_jobs, read_job


async def _stored(db: Database, **extra: object) -> Job:
    job = new_job(id=new_id(), tenant="t", queue_name="q", name="n", now=datetime.now(UTC),
                  data={"documentId": "d1", "n": [1, 2.5, None]}, max_attempts=3,
                  phases=["loading", "chunking", "embedding"], **extra)  # type: ignore[arg-type]
    async with db.write() as conn:
        await insert_jobs(conn, [job], actor="test")
    return job


async def test_read_job_equals_get_job_and_is_tenant_scoped(db: Database) -> None:
    job = await _stored(db)
    plain = await _stored(db)
    async with db.read() as conn:
        expected = await get_job(conn, job.id, tenant="t")
        expected_plain = await get_job(conn, plain.id, tenant=None)
    assert expected is not None and len(expected.phases) == 3
    assert await read_job(db, job.id, tenant="t") == expected
    assert await read_job(db, job.id, tenant=None) == expected  # an admin: every tenant
    assert await read_job(db, plain.id, tenant=None) == expected_plain
    got = await read_job(db, job.id, tenant="t")
    assert got is not None and got.created_at.tzinfo == UTC and isinstance(got.id, str)
    assert await read_job(db, job.id, tenant="other") is None  # another tenant's job
    assert await read_job(db, new_id(), tenant="t") is None
    assert await read_job(db, "not-an-id", tenant="t") is None


async def test_a_driver_read_gives_its_connection_back_out_of_autocommit(
    pg_url: str,
) -> None:
    db = Database(pg_url, pool_size=1)  # one connection: the write reuses the read's
    try:
        job = await _stored(db)
        assert await read_job(db, job.id, tenant="t") is not None
        with pytest.raises(RuntimeError):
            async with db.write() as conn:
                await conn.execute(tables.jobs.delete().where(tables.jobs.c.id == job.id))
                raise RuntimeError("roll back")
        async with db.read() as conn:  # rolled back: the write was a transaction
            assert await conn.scalar(select(func.count()).select_from(tables.jobs)) == 1
        assert await read_job(db, job.id, tenant="t") is not None
    finally:
        await db.dispose()


async def test_a_driver_read_of_an_unreachable_server_is_unavailable() -> None:
    db = Database("postgresql://postgres@127.0.0.1:1/nowhere", pool_size=1)
    try:
        with pytest.raises(DatabaseUnavailable):
            await read_job(db, new_id(), tenant="t")
    finally:
        await db.dispose()
