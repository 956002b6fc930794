"""While no webhook exists, the dispatcher of every API process stays out of the way of
its live updates (docs/benchmarks.md, P5): a round moves the cursor to the event hub's
position without reading the events it passes over (reading and decoding each event once
more, in a burst every few seconds, held up the process's event loop), and the events the
hub hands out do not wake the dispatcher loop one by one."""

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event, select

from jobtrack.events.hub import EventHub
from jobtrack.settings import Settings
from jobtrack.store.engine import Database
from jobtrack.store.tables import cursors, webhook_deliveries
from jobtrack.webhooks import registry
from jobtrack.webhooks.dispatcher import CURSOR
from jobtrack.webhooks.runner import DISPATCH_POLL_SECONDS, WebhookRunner
from support.events import add_event, caught_up
from support.polling import eventually


@pytest.fixture
async def runner(db: Database, settings: Settings) -> AsyncIterator[WebhookRunner]:
    """A process's webhook runner on a started hub; its loops are not started: the test
    runs the dispatcher's rounds itself."""
    hub = EventHub(db, settings)
    await hub.start()
    runner = WebhookRunner(db, settings, hub)
    await runner.dispatcher.prepare()
    try:
        yield runner
    finally:
        await runner.deliverer.close()
        await hub.stop()


async def stored_cursor(db: Database) -> int:
    async with db.read() as conn:
        value = await conn.scalar(select(cursors.c.event_id).where(cursors.c.name == CURSOR))
    assert value is not None
    return int(value)


def statements_of(db: Database) -> tuple[list[str], Any]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    return seen, record


async def test_an_idle_round_moves_the_cursor_without_reading_the_events(
    db: Database, runner: WebhookRunner
) -> None:
    for _ in range(30):
        await add_event(db)
    await caught_up(runner.hub, db)
    before = await stored_cursor(db)

    seen, record = statements_of(db)
    try:
        assert await runner.dispatcher.run_once() == 0
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)

    assert await stored_cursor(db) == runner.hub.cursor == before + 30
    assert seen, "the round ran (it locked the cursor)"
    assert not [s for s in seen if "FROM events" in s], seen


async def test_a_webhook_created_after_idle_rounds_gets_the_events_after_it(
    db: Database, settings: Settings, runner: WebhookRunner
) -> None:
    await add_event(db, type="job.progress")
    await caught_up(runner.hub, db)
    assert await runner.dispatcher.run_once() == 0  # idle: the cursor passes that event

    created = await registry.create_webhook(
        db, settings, tenant="t1", url="http://127.0.0.1:9/in", events=["progress"],
        secret="s3cret-s3cret-s3cret")
    runner.dispatcher.webhooks_changed()  # (as the API's create route does)
    wanted = await add_event(db, type="job.progress")
    await caught_up(runner.hub, db)

    assert await runner.dispatcher.run_once() == 1
    async with db.read() as conn:
        rows = (await conn.execute(select(webhook_deliveries.c.event_id).where(
            webhook_deliveries.c.webhook_id == created.id))).all()
    assert [r.event_id for r in rows] == [wanted]


def count_rounds(runner: WebhookRunner) -> list[int]:
    """The number of dispatch rounds finished from now on, in a one-item list."""
    finished = [0]
    run_once = runner.dispatcher.run_once

    async def counted() -> int:
        n = await run_once()
        finished[0] += 1
        return n

    runner.dispatcher.run_once = counted  # type: ignore[method-assign]
    return finished


async def test_with_no_webhook_new_events_do_not_wake_the_dispatcher(
    db: Database, runner: WebhookRunner
) -> None:
    finished = count_rounds(runner)
    await runner.start()
    try:
        await eventually(lambda: finished[0] > 0, what="a first round (no webhook)")
        before, began = finished[0], time.monotonic()
        for _ in range(30):  # one at a time: the hub hands out 30 batches
            await add_event(db)
            await caught_up(runner.hub, db)
        elapsed = time.monotonic() - began
        rounds = finished[0] - before
    finally:
        await runner.stop()
    # only the loop's own timer ran rounds (each batch of events used to run one)
    assert rounds <= elapsed / DISPATCH_POLL_SECONDS + 2, (rounds, elapsed)
    assert rounds < 30


async def test_a_webhook_created_here_wakes_the_dispatcher_for_the_next_event(
    db: Database, settings: Settings, runner: WebhookRunner
) -> None:
    finished = count_rounds(runner)
    await runner.start()
    try:
        await eventually(lambda: finished[0] > 0, what="a first round (no webhook)")
        created = await registry.create_webhook(
            db, settings, tenant="t1", url="http://127.0.0.1:9/in", events=["progress"],
            secret="s3cret-s3cret-s3cret")
        runner.dispatcher.webhooks_changed()  # (as the API's create route does)
        wanted = await add_event(db, type="job.progress")

        async def dispatched() -> bool:
            async with db.read() as conn:
                rows = (await conn.execute(select(webhook_deliveries.c.event_id).where(
                    webhook_deliveries.c.webhook_id == created.id))).all()
            return [r.event_id for r in rows] == [wanted]

        await eventually(dispatched, what="the delivery of the event after the webhook")
    finally:
        await runner.stop()
