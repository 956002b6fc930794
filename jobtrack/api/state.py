"""The API's composition root: :class:`ApiState`, everything one API process owns, built
by :meth:`ApiState.open` in the app's lifespan and stopped by :meth:`ApiState.close`.

Routes receive it through one dependency (``StateDep`` in :mod:`jobtrack.api.deps`); the
WebSocket route takes the same dependency, and the Socket.IO app and anything holding the
app object (tests, tools) use the one accessor :func:`state_of`. It lives in one slot,
``app.state.jobtrack``, set while the lifespan runs (None otherwise).

The metrics registry is the one part built before the lifespan: the app factory makes it
(:meth:`jobtrack.api.telemetry.Metrics.new`) so that the HTTP middleware can count with it,
and hands the same object to :meth:`ApiState.open`.
"""

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from jobtrack.api.auth import KeyCache
from jobtrack.api.ratelimit import RateLimiter
from jobtrack.api.telemetry import Metrics
from jobtrack.events.hub import EventHub
from jobtrack.settings import Settings
from jobtrack.store.engine import Database, Timeouts
from jobtrack.store.group_commit import InsertBatcher
from jobtrack.store.registry import DeclarationCache
from jobtrack.webhooks.runner import WebhookRunner

#: the one ``app.state`` attribute the API uses
SLOT = "jobtrack"


@dataclass(slots=True)
class ApiState:
    """Everything one API process owns (see the module doc)."""

    settings: Settings
    db: Database
    keys: KeyCache
    limiter: RateLimiter
    #: task declarations read from the task registry (enqueue defaults and checks)
    declarations: DeclarationCache
    #: new jobs of concurrent requests share commits
    inserter: InsertBatcher
    #: live updates: follows the stored event log for SSE, WebSocket, Socket.IO, metrics
    hub: EventHub
    #: the webhook loops (None when ``webhooks_in_api`` is off)
    webhooks: WebhookRunner | None
    metrics: Metrics
    #: counts job transitions from the hub into ``metrics.jobs``
    follower: "asyncio.Task[None] | None" = None

    @classmethod
    async def open(cls, settings: Settings, metrics: Metrics) -> "ApiState":
        """Build the state and start what runs in the background: the event hub, the
        webhook loops (unless ``webhooks_in_api`` is off) and the job-metrics follower."""
        db = Database(settings.database_url, pool_size=settings.pool_size,
                      timeouts=Timeouts.of(settings))
        hub = EventHub(db, settings)
        state = cls(
            settings=settings,
            db=db,
            keys=KeyCache(db, ttl=settings.key_cache_seconds),
            limiter=RateLimiter(db, limit=settings.rate_limit_per_minute,
                                chunk=settings.chunk()),
            declarations=DeclarationCache(settings.task_cache_seconds),
            inserter=InsertBatcher(db),
            hub=hub,
            webhooks=WebhookRunner(db, settings, hub) if settings.webhooks_in_api else None,
            metrics=metrics,
        )
        try:
            await hub.start()
            if state.webhooks is not None:
                await state.webhooks.start()
        except BaseException:
            await state.close()
            raise
        state.follower = asyncio.create_task(metrics.jobs.follow(hub),
                                             name="jobtrack-job-metrics")
        return state

    async def close(self) -> None:
        """Stop what :meth:`open` started, newest first, and close the database."""
        if self.follower is not None:
            self.follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.follower
            self.follower = None
        try:
            if self.webhooks is not None:
                await self.webhooks.stop()
            await self.hub.stop()
            await self.inserter.close()
        finally:
            await self.db.dispose()


def state_of(app: Any) -> ApiState:
    """The state of a running API app (its lifespan started it)."""
    state = getattr(app.state, SLOT, None)
    if not isinstance(state, ApiState):
        raise RuntimeError("the jobtrack API is not started: run it with its lifespan")
    return state
