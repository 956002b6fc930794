"""The API's composition root: the lifespan builds one state object, kept in one
``app.state`` slot, and stops everything it started (decision 8)."""

import asyncio

import pytest

from jobtrack.api.app import create_app
from jobtrack.api.state import SLOT, ApiState, state_of
from jobtrack.settings import Settings


async def test_the_lifespan_builds_one_state_and_stops_what_it_started(
    settings: Settings,
) -> None:
    app = create_app(settings)
    with pytest.raises(RuntimeError, match="not started"):
        state_of(app)
    lifespan = app.router.lifespan_context
    async with lifespan(app):
        state = state_of(app)
        assert isinstance(state, ApiState)
        # one slot: the event hub, webhook loops and metrics are parts of the state
        assert set(vars(app.state)["_state"]) == {SLOT}
        assert state.hub.running and state.webhooks is not None
        assert state.follower is not None and not state.follower.done()
        async with asyncio.timeout(5):  # the job-metrics follower subscribes to the hub
            while not state.metrics.jobs.following:
                await asyncio.sleep(0.01)
        follower = state.follower
    assert app.router.lifespan_context is lifespan  # nothing wraps the lifespan
    assert follower.done() and not state.hub.running
    assert state.metrics.jobs.sub is None and state.hub.subscriber_count() == 0
    with pytest.raises(RuntimeError, match="not started"):
        state_of(app)


async def test_without_webhooks_in_api_the_state_has_no_webhook_loops(
    settings: Settings,
) -> None:
    app = create_app(settings.model_copy(update={"webhooks_in_api": False}))
    async with app.router.lifespan_context(app):
        assert state_of(app).webhooks is None
