"""A dispatch round while no webhook exists moves the cursor to the event hub's position
without reading the events it passes over. Every API process runs a dispatcher; reading
and decoding each event once more there, in a burst every few seconds, held up the
process's live updates (docs/benchmarks.md, P5)."""

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
from jobtrack.webhooks.runner import WebhookRunner
from support.events import add_event, caught_up


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
