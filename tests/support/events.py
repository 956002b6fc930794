"""The stored event log and what a hub subscription receives."""

import asyncio
from typing import Any

from jobtrack.events.hub import EventHub
from jobtrack.events.subscription import Subscription
from jobtrack.store.engine import Database
from jobtrack.store.events import StoredEvent, insert_events, last_id, read_after
from support.store import now


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


async def stored_after(db: Database, tenant: str, after: int) -> list[StoredEvent]:
    """Every stored event of ``tenant`` with an id above ``after``, oldest first."""
    out: list[StoredEvent] = []
    async with db.read() as conn:
        while True:
            page = await read_after(conn, after, tenant=tenant, limit=1000)
            out.extend(page)
            if len(page) < 1000:
                return out
            after = page[-1].id


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
