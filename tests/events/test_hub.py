"""The event hub hands each stored event to the subscribers that want it, whoever wrote
it, on both backends."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from jobtrack.domain.ids import new_id
from jobtrack.errors import DatabaseUnavailable
from jobtrack.events.filters import EventFilter
from jobtrack.events.hub import EventHub
from jobtrack.events.subscription import SubscriptionClosed
from jobtrack.settings import Settings
from jobtrack.store.engine import Database
from jobtrack.store.events import insert_events
from support.events import add_event, caught_up, nothing_within, receive
from support.processes import free_port
from support.store import create_job, now, progress


@pytest.fixture
async def hub(settings: Settings) -> AsyncIterator[EventHub]:
    """A hub on its own engine: the test writes through another one."""
    db = Database(settings.database_url, pool_size=2)
    tuned = settings.model_copy(update={"event_poll_seconds": 0.01, "event_queue_size": 50})
    event_hub = EventHub(db, tuned)
    await event_hub.start()
    yield event_hub
    await event_hub.stop()
    await db.dispose()


async def test_events_committed_elsewhere_reach_subscribers(hub: EventHub, db: Database) -> None:
    sub = hub.subscribe(None)
    job = await create_job(db, queue="emails")
    await progress(db, job.id, 40)
    got = await receive(sub, 2)
    assert [e.type for e in got] == ["job.created", "job.progress"]
    assert got[0].job_id == job.id and got[0].data["jobId"] == job.id
    assert got[1].data["progress"]["done"] == 40
    assert got[0].id < got[1].id
    assert hub.cursor == got[1].id


async def test_events_before_subscribing_are_not_sent(hub: EventHub, db: Database) -> None:
    await add_event(db)
    await caught_up(hub, db)
    sub = hub.subscribe(None)
    assert sub.start == hub.cursor
    assert await nothing_within(sub, 0.2)
    new_id = await add_event(db)
    [event] = await receive(sub, 1)
    assert event.id == new_id


async def test_filters_and_tenants(hub: EventHub, db: Database) -> None:
    job_a = await create_job(db, tenant="a", queue="emails")
    f1 = new_id()
    await caught_up(hub, db)
    by_job = hub.subscribe("a", [EventFilter(job_id=job_a.id)])
    by_queue = hub.subscribe("a", [EventFilter(queue_name="emails")])
    by_flow = hub.subscribe("a", [EventFilter(flow_id=f1)])
    tenant_b = hub.subscribe("b")
    admin = hub.subscribe(None)
    rooms = hub.subscribe("a", [EventFilter(flow_id=f1), EventFilter(job_id=job_a.id)])

    await progress(db, job_a.id, 10)                   # a, emails, job_a
    await add_event(db, "a", queue_name="sms")         # a, another queue
    await add_event(db, "a", flow_id=f1, queue_name="sms", type="flow.updated")
    await add_event(db, "b", queue_name="emails")      # another tenant, same queue name
    last = await add_event(db, "b", flow_id=f1)      # another tenant, same flow id

    got_admin = await receive(admin, 5)
    assert got_admin[-1].id == last
    assert [e.job_id for e in await receive(by_job, 1)] == [job_a.id]
    assert [e.queue_name for e in await receive(by_queue, 1)] == ["emails"]
    assert [e.type for e in await receive(by_flow, 1)] == ["flow.updated"]
    assert [e.tenant for e in await receive(tenant_b, 2)] == ["b", "b"]
    assert [e.type for e in await receive(rooms, 2)] == ["job.progress", "flow.updated"]
    for sub in (by_job, by_queue, by_flow, tenant_b, rooms):
        assert await nothing_within(sub, 0.05), "a subscriber got an event it does not want"


async def test_slow_subscriber_is_dropped_with_a_reason(hub: EventHub, db: Database) -> None:
    slow = hub.subscribe(None)
    fast = hub.subscribe(None)
    size = hub.settings.event_queue_size
    reader = asyncio.create_task(receive(fast, size + 5))
    for _ in range(size + 5):
        await add_event(db)
    assert len(await reader) == size + 5
    assert slow.closed_reason is not None and "too slow" in slow.closed_reason
    assert slow not in hub._subscribers  # the hub forgot it: no memory held for it
    assert hub.dropped == 1
    drained = [await slow.get() for _ in range(size)]  # what it had buffered is kept
    assert len(drained) == size
    with pytest.raises(SubscriptionClosed, match="too slow"):
        await slow.get()


async def test_a_burst_larger_than_the_buffer_reaches_a_reading_subscriber(
    hub: EventHub, db: Database
) -> None:
    size = hub.settings.event_queue_size
    sub = hub.subscribe(None)
    reader = asyncio.create_task(receive(sub, size * 4))
    async with db.write() as conn:  # one transaction, one wake-up, one read
        await insert_events(conn, [
            {"tenant": "t1", "type": "job.updated", "at": now(), "data": {"i": i}}
            for i in range(size * 4)
        ])
    got = await reader
    assert [e.data["i"] for e in got] == list(range(size * 4))
    assert sub.closed_reason is None


async def test_stop_ends_subscriptions(settings: Settings) -> None:
    db = Database(settings.database_url, pool_size=2)
    hub = EventHub(db, settings)
    await hub.start()
    sub = hub.subscribe(None)
    await hub.stop()
    with pytest.raises(SubscriptionClosed, match="shutting down"):
        await sub.get()
    await db.dispose()


async def test_a_hub_starts_with_the_database_down_and_refuses_subscribers() -> None:
    """An API process can start while PostgreSQL is down (docs/targets.md R6): the hub begins
    once the database answers; until then a subscriber is refused (503), since its
    replay point would be unknown."""
    port = free_port()  # nothing listens there
    db = Database(f"postgresql://nobody@127.0.0.1:{port}/none", pool_size=1)
    hub = EventHub(db, Settings(database_url=db.url))
    await hub.start()
    try:
        assert hub.running and not hub.ready
        with pytest.raises(DatabaseUnavailable, match="not ready"):
            hub.subscribe(None)
    finally:
        await hub.stop()
        await db.dispose()
