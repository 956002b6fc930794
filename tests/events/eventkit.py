"""Helpers the event tests share: write events and jobs through the real store, and
wait for what a subscription receives."""

import asyncio
from datetime import UTC, datetime
from typing import Any

from jobtrack.domain.ids import new_id
from jobtrack.domain.planner import plan_update
from jobtrack.domain.records import Job, JobUpdate, Progress, new_job
from jobtrack.events.hub import EventHub
from jobtrack.events.subscription import Subscription
from jobtrack.store.engine import Database
from jobtrack.store.events import StoredEvent, insert_events, last_id
from jobtrack.store.jobs import change_job, insert_jobs


def now() -> datetime:
    return datetime.now(UTC)


async def add_event(
    db: Database, tenant: str = "t1", *, job_id: str | None = None, flow_id: str | None = None,
    queue_name: str | None = "q", type: str = "job.updated", data: dict[str, Any] | None = None,
) -> int:
    """Commit one bare event row; its id."""
    async with db.write() as conn:
        await insert_events(conn, [{
            "tenant": tenant, "type": type, "at": now(), "job_id": job_id,
            "flow_id": flow_id, "queue_name": queue_name, "data": data or {"n": 1},
        }])
        return await last_id(conn)


async def create_job(db: Database, tenant: str = "t1", queue: str = "q",
                     name: str = "work", flow_id: str | None = None) -> Job:
    job = new_job(id=new_id(), tenant=tenant, queue_name=queue, name=name, now=now(),
                  flow_id=flow_id)
    async with db.write() as conn:
        [(stored, _)] = await insert_jobs(conn, [job], actor="test")
    return stored


async def progress(db: Database, job_id: str, done: float, total: float = 100) -> Job:
    async with db.write() as conn:
        return await change_job(
            conn, job_id, lambda j: plan_update(j, JobUpdate(progress=Progress(done, total)),
                                                now()),
            tenant=None, actor="test", now=now(),
        )


async def caught_up(hub: EventHub, db: Database, timeout: float = 5.0) -> None:
    """Wait until the hub has handed out every event committed so far."""
    async with db.read() as conn:
        target = await last_id(conn)
    async with asyncio.timeout(timeout):
        while hub.cursor < target:
            await hub.wait_advanced(0.05)


async def receive(sub: Subscription, n: int, timeout: float = 5.0) -> list[StoredEvent]:
    """The next ``n`` events of ``sub``; fails the test after ``timeout``."""
    out: list[StoredEvent] = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            out.append(await sub.get())
    return out


async def nothing_within(sub: Subscription, seconds: float) -> bool:
    """True when ``sub`` receives nothing for ``seconds``."""
    try:
        async with asyncio.timeout(seconds):
            await sub.get()
    except TimeoutError:
        return True
    return False
