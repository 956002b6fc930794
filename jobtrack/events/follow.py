"""Follow the event log for one client: replay what it missed, then live, with no event
twice and none left out.

The subscription is made first; the hub had handed out every event up to
``subscription.start`` at that moment, and every later event it wants arrives in its
buffer. The replay reads the store for ``after < id <= start``; live events follow. Ids
below ``start`` can still arrive live when the hub gave up waiting for a long transaction
and delivers its events as they commit (``events.ordered``, late ranges): such an event
is skipped if the replay already sent it, and marked ``late`` otherwise.

A resume point above the newest stored event was never handed out by this database (it
was restored from an older backup, or replaced): such a client resumes from the newest
event, as a fresh subscriber (:func:`resume_point`), instead of waiting for ids the log
may take days to reach, or never.
"""

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

from jobtrack.events.filters import EventFilter
from jobtrack.events.ordered import LateRange
from jobtrack.events.subscription import Subscription
from jobtrack.store.engine import Database
from jobtrack.store.events import StoredEvent, last_id, read_after

REPLAY_PAGE = 500


@dataclass(frozen=True, slots=True)
class Item:
    """One event for the client; ``late`` when an event with a higher id went first."""

    event: StoredEvent
    late: bool = False


async def replay(
    db: Database, sub: Subscription, flt: EventFilter, after: int
) -> AsyncIterator[StoredEvent]:
    """Stored events ``after < id <= sub.start`` the subscriber may see, oldest first."""
    cursor = after
    while cursor < sub.start:
        async with db.read() as conn:
            page = await read_after(
                conn, cursor, upto=sub.start, limit=REPLAY_PAGE, tenant=sub.tenant,
                job_id=flt.job_id, flow_id=flt.flow_id, queue_name=flt.queue_name,
            )
        for event in page:
            yield event
        if len(page) < REPLAY_PAGE:
            return
        cursor = page[-1].id


async def resume_point(db: Database, sub: Subscription, after: int | None) -> int | None:
    """Where a client asking to resume after ``after`` resumes: ``after`` itself, or None
    (live from ``sub.start``, as a fresh subscriber) when it is above the newest stored
    event. An id between ``sub.start`` and the newest (another process's hub was
    further on) is kept: the events up to it are the client's already."""
    if after is None or after <= sub.start:
        return after
    async with db.read() as conn:
        newest = await last_id(conn)
    return after if after <= newest else None


async def follow(
    db: Database,
    sub: Subscription,
    *,
    after: int | None,
    flt: EventFilter,
    keepalive: float,
    late_ranges: tuple[LateRange, ...] = (),
) -> AsyncGenerator[Item | None]:
    """Replay after ``after`` (if given), then live; ``None`` every ``keepalive`` seconds
    of silence. Ends with ``SubscriptionClosed`` when the hub drops the subscriber."""
    async with sub:
        high = after or 0  # highest id sent
        replayed_late: set[int] = set()  # sent by the replay, but might come live again
        if after is not None:
            async for event in replay(db, sub, flt, after):
                if any(r.lo <= event.id <= r.hi for r in late_ranges):
                    replayed_late.add(event.id)
                high = max(high, event.id)
                yield Item(event)
        while True:
            try:
                async with asyncio.timeout(keepalive):  # (no task per event, as wait_for has)
                    event = await sub.get()
            except TimeoutError:
                yield None
                continue
            if event.id in replayed_late:
                continue
            if after is not None and sub.start < event.id <= after:
                continue  # the client had it (from a process whose hub was further on)
            late = event.id < high
            high = max(high, event.id)
            yield Item(event, late=late)
