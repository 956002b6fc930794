"""Jobs written and read through the real store and writer, the way the service does it
(planned by the domain planner, persisted in one transaction), and rows counted."""

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from jobtrack.domain.ids import new_id
from jobtrack.domain.planner import plan_finish, plan_update
from jobtrack.domain.records import UNSET, Job, JobUpdate, Progress, new_job
from jobtrack.domain.status import JobStatus
from jobtrack.store import claim as store_claim
from jobtrack.store import tables
from jobtrack.store.engine import Database
from jobtrack.store.jobs import change_job, insert_jobs


def now() -> datetime:
    return datetime.now(UTC)


async def create_job(db: Database, tenant: str = "t1", queue: str = "q",
                     name: str = "work", flow_id: str | None = None) -> Job:
    job = new_job(id=new_id(), tenant=tenant, queue_name=queue, name=name, now=now(),
                  flow_id=flow_id)
    async with db.write() as conn:
        [(stored, _)] = await insert_jobs(conn, [job], actor="test")
    return stored


async def report(db: Database, job_id: str, upd: JobUpdate) -> Job:
    """An external system's report, planned like ``PATCH /jobs/{id}``."""
    async with db.write() as conn:
        return await change_job(conn, job_id, lambda j: plan_update(j, upd, now()),
                                tenant=None, actor="test", now=now())


async def progress(db: Database, job_id: str, done: float, total: float = 100) -> Job:
    return await report(db, job_id, JobUpdate(progress=Progress(done, total)))


async def claim(db: Database, queue: str, *, limit: int = 100, worker: str = "w1") -> list[Job]:
    t = now()
    async with db.write() as conn:
        return await store_claim.claim(conn, queues=[queue], worker_id=worker, limit=limit,
                                       now=t, lease_until=t + timedelta(seconds=60))


async def finish(db: Database, job_id: str, status: JobStatus, *, result: Any = UNSET,
                 error: Mapping[str, Any] | None = None) -> Job:
    async with db.write() as conn:
        return await change_job(
            conn, job_id, lambda j: plan_finish(j, status, now(), result=result, error=error),
            tenant=None, actor="test", now=now(),
        )


async def count_rows(db: Database, table: str = "jobs") -> int:
    async with db.read() as conn:
        return int(await conn.scalar(select(func.count()).select_from(
            tables.metadata.tables[table])) or 0)


async def row_counts(db: Database) -> dict[str, int]:
    """Rows of the jobs, flows, job_phases and events tables."""
    return {name: await count_rows(db, name)
            for name in ("jobs", "flows", "job_phases", "events")}
