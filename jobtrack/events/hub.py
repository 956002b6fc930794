"""The per-process event hub: reads the stored event log in order and hands each event to
the in-process subscribers that want it.

Truth is the ``events`` table, written in the same transaction as every change, so any
process sees every change, whoever made it. What wakes the hub up: on PostgreSQL one
dedicated connection that LISTENs on ``jobtrack_events`` and reads the log itself
(``store.feed.PgEventFeed``; re-made with backoff when it drops, reading on from the
cursor), plus a slow safety poll; on SQLite a poll every ``settings.event_poll_seconds``.
Reading is gap-safe (``events.ordered``): an event whose transaction commits after a
later id's is still handed out, in id order.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable

from jobtrack.errors import DatabaseUnavailable
from jobtrack.events.filters import EventFilter
from jobtrack.events.loops import cancelling
from jobtrack.events.ordered import LateRange, OrderedReader
from jobtrack.events.subscription import Subscription
from jobtrack.settings import Settings
from jobtrack.store.engine import Database
from jobtrack.store.events import StoredEvent, last_id
from jobtrack.store.feed import PgEventFeed, SqlEventLog

log = logging.getLogger(__name__)

#: PostgreSQL: read even without a notification this often (a lost wake-up costs this)
SAFETY_POLL_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 5.0
#: how long the hub waits for a subscriber whose buffer is full before dropping it
SLOW_SECONDS = 1.0


class EventHub:
    """Fan-out of the stored event log to this process's live subscribers."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._subscribers: set[Subscription] = set()
        self._reader: OrderedReader | None = None
        self._cursor = 0
        self._wake = asyncio.Event()
        self._advanced = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._listeners: list[Callable[[], None]] = []
        #: counters for metrics: events handed to subscribers, subscribers dropped as slow
        self.delivered = 0
        self.dropped = 0

    @property
    def cursor(self) -> int:
        """Every event up to this id has been handed to the subscribers of the time."""
        return self._cursor

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    @property
    def late_ranges(self) -> tuple[LateRange, ...]:
        return self._reader.late_ranges if self._reader is not None else ()

    @property
    def ready(self) -> bool:
        """The hub knows its position in the log (the database answered once)."""
        return self._reader is not None

    async def start(self) -> None:
        """Begin after the newest stored event and start reading (and listening). With the
        database down, the process starts anyway: the position is taken by the first read
        that succeeds, and until then :meth:`subscribe` refuses (503)."""
        if self._tasks:
            return
        try:
            await self._begin()
        except DatabaseUnavailable as exc:
            log.warning("event hub: the database is unavailable (%s); it will begin when "
                        "the database answers", exc.__cause__ or exc)
        self._tasks.append(asyncio.create_task(self._run(), name="jobtrack-event-hub"))

    async def _begin(self) -> None:
        async with self.db.read() as conn:
            self._cursor = await last_id(conn)
        s = self.settings
        self._reader = OrderedReader(
            self._cursor, postgres=not self.db.is_sqlite,
            grace=s.event_gap_grace_seconds, timeout=s.event_gap_timeout_seconds,
        )

    async def stop(self) -> None:
        """Stop reading and end every subscription."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):  # (see loops.py)
                await task
        for sub in list(self._subscribers):
            sub.close("the server is shutting down")

    def wake(self) -> None:
        """Read the log now (SQLite; on PostgreSQL NOTIFY wakes the hub itself)."""
        self._wake.set()

    def subscribe(
        self, tenant: str | None, filters: Iterable[EventFilter] = (EventFilter(),)
    ) -> Subscription:
        """A new subscriber: every event after ``cursor`` that it wants comes to it.
        Refused while the hub has no position yet (its replay could not be exact)."""
        if self._reader is None:
            raise DatabaseUnavailable(
                "live updates are not ready: the database has not answered since this "
                "server started; try again shortly")
        sub = Subscription(tenant=tenant, filters=filters, start=self._cursor,
                           maxsize=self.settings.event_queue_size, discard=self._discard)
        self._subscribers.add(sub)
        return sub

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (synchronously, cheaply) whenever new events were handed out."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(callback)

    def subscriber_count(self) -> int:
        return len(self._subscribers)

    async def wait_advanced(self, timeout: float) -> bool:
        """Wait until new events were handed out (True) or ``timeout`` passed (False)."""
        advanced = self._advanced
        try:
            await asyncio.wait_for(advanced.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def _discard(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)

    async def _dispatch(self, events: list[StoredEvent]) -> None:
        for event in events:
            # moved first: a subscriber joining while this event is handed out (below, at
            # an await) is not in this round, so its replay must include the event
            self._cursor = max(self._cursor, event.id)
            for sub in list(self._subscribers):
                if not sub.wants(event):
                    continue
                if sub.full():  # a burst, or a slow client: wait for it, once, briefly
                    await sub.wait_room(SLOW_SECONDS)
                if sub.push(event):
                    self.delivered += 1
                else:
                    self.dropped += 1
        advanced, self._advanced = self._advanced, asyncio.Event()
        advanced.set()
        for callback in self._listeners:
            callback()

    def _timeout(self, idle: float) -> float:
        soon = self._reader.next_read_in() if self._reader is not None else None
        return idle if soon is None else min(soon, idle)

    async def _run(self) -> None:
        """Read, hand out, wait; a failure (database down) is retried with backoff and
        the subscribers are kept: they miss nothing, the log is read on from the cursor."""
        backoff = 0.1
        while not cancelling():
            try:
                if self._reader is None:
                    await self._begin()
                if self.db.is_sqlite:
                    await self._poll_sqlite()
                else:
                    await self._follow_postgres()
            except Exception as exc:
                if cancelling():
                    raise
                log.warning("event hub cannot read the event log (%s); retrying in %.1f s",
                            exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(MAX_BACKOFF_SECONDS, backoff * 2)
            else:
                backoff = 0.1

    async def _poll_sqlite(self) -> None:
        """One read through the pool, then sleep ``event_poll_seconds`` (or until woken)."""
        assert self._reader is not None
        self._wake.clear()
        async with self.db.read() as conn:
            events = await self._reader.read(SqlEventLog(conn))
        if events:
            await self._dispatch(events)
        timeout = self._timeout(self.settings.event_poll_seconds)
        if timeout > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def _follow_postgres(self) -> None:
        """On one LISTENing connection: read, hand out, wait for the next NOTIFY."""
        assert self._reader is not None
        async with await PgEventFeed.connect(self.db.url) as feed:
            while not cancelling():  # (the first read catches up on anything missed)
                events = await self._reader.read(feed)
                if events:
                    await self._dispatch(events)
                timeout = self._timeout(SAFETY_POLL_SECONDS)
                if timeout > 0:
                    await feed.wait(timeout)
