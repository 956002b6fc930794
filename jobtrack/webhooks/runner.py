"""The webhook machinery of one process: the dispatcher (events -> stored deliveries) and
the delivery loop, each on its own task. The API's lifespan starts one (unless
``webhooks_in_api`` is off); ``run_webhooks`` runs one on its own (``jobtrack webhooks
run``, a dedicated process). Any number of processes may run them on one database."""

import asyncio
import contextlib
import logging

import httpx

from jobtrack.errors import DatabaseUnavailable
from jobtrack.events.hub import EventHub
from jobtrack.events.loops import cancelling
from jobtrack.settings import Settings
from jobtrack.store.engine import Database
from jobtrack.webhooks.delivery import Deliverer
from jobtrack.webhooks.dispatcher import Dispatcher
from jobtrack.webhooks.urls import Resolver

log = logging.getLogger(__name__)

#: a dispatch round runs at least this often without new events (events written while
#: the hub was down, cursor moved by another process)
DISPATCH_POLL_SECONDS = 1.0


class WebhookRunner:
    """Dispatcher and delivery loop, woken by the process's event hub."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        hub: EventHub,
        *,
        client: httpx.AsyncClient | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.hub = hub
        self.deliverer = Deliverer(db, settings, client=client, resolver=resolver)
        # the hub's cursor: an idle round (no webhook) moves the dispatch cursor there
        # without reading the events again
        self.dispatcher = Dispatcher(db, settings, on_dispatched=self.deliverer.wake,
                                     position=lambda: hub.cursor)
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._stopping = False

    async def start(self) -> None:
        if self._tasks:
            return
        with contextlib.suppress(DatabaseUnavailable):  # its first round prepares it then
            await self.dispatcher.prepare()
        self._stopping = False
        self.hub.add_listener(self._events_handed_out)
        self._tasks = [
            asyncio.create_task(self._dispatch_forever(), name="jobtrack-webhook-dispatcher"),
            asyncio.create_task(self.deliverer.run(), name="jobtrack-webhook-delivery"),
        ]

    async def stop(self) -> None:
        """Stop both loops at their next pause: a dispatch round (one transaction) is
        finished, never cancelled half-way (on SQLite that could strand the write lock)."""
        tasks, self._tasks = self._tasks, []
        self.hub.remove_listener(self._events_handed_out)
        self._stopping = True
        self._wake.set()
        await self.deliverer.stop()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):  # (see loops.py)
                await task

    def _events_handed_out(self) -> None:
        """The hub handed out new events: a round now, unless no webhook exists (then no
        event has a recipient, and the loop's timer runs the idle rounds and notices the
        first webhook within ``DISPATCH_POLL_SECONDS``). Called by the hub for every batch
        of events, in every API process: with no webhook it costs no wake-up."""
        if self.dispatcher.wants_events():
            self._wake.set()

    async def _dispatch_forever(self) -> None:
        backoff = 0.1
        while not self._stopping and not cancelling():
            self._wake.clear()
            try:
                while await self.dispatcher.run_once():
                    pass
                backoff = 0.1
            except Exception as exc:
                if cancelling():
                    raise
                log.warning("webhook dispatcher: %s; retrying in %.1f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(5.0, backoff * 2)
                continue
            soon = self.dispatcher.next_round_in()
            wait = DISPATCH_POLL_SECONDS if soon is None else min(soon, DISPATCH_POLL_SECONDS)
            if not self._stopping:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake.wait()


async def run_webhooks(settings: Settings, *, until: asyncio.Event | None = None) -> WebhookRunner:
    """Run dispatch and delivery in this process until ``until`` is set (or the task is
    cancelled); the stopped runner comes back (its loops' counters)."""
    db = Database(settings.database_url, pool_size=min(settings.pool_size, 5))
    hub = EventHub(db, settings)
    await hub.start()
    runner = WebhookRunner(db, settings, hub)
    try:
        await runner.start()
        await (until or asyncio.Event()).wait()
    finally:
        await runner.stop()
        await hub.stop()
        await db.dispose()
    return runner
