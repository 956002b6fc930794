"""Turn stored events into stored deliveries, behind the ``webhooks`` cursor.

Each round is one write transaction: lock the cursor row (so dispatchers in several
processes take turns and never both dispatch an event), read the events after it with
the same gap-safe reader as the hub (``events.ordered``), insert one ``pending``
delivery per matching webhook, move the cursor. A crash before the commit leaves the
cursor where it was, so the events are dispatched again by the next round; after it,
the deliveries are stored and the delivery loop attempts them.

A webhook receives events that happened after it was created, of the kinds it lists
(``WEBHOOK_KINDS``), restricted to its ``flowId`` and ``queueName`` when it has them.

While no webhook exists, a round still moves the cursor (every ``IDLE_ROUND_SECONDS``),
so that the first webhook's rounds do not start far back in the log. Given a *position*
(the process's event hub's cursor: every event up to it has committed, or is proven never
to), such a round moves the cursor there without reading the events it passes: with no
webhook, none of them has a recipient, and reading and decoding every event once more in
every API process blocked the process's event loop for milliseconds every few seconds,
which showed in the live-update latency (docs/benchmarks.md, P5).
"""

import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from jobtrack.domain.events import WEBHOOK_KINDS, EventType
from jobtrack.domain.status import DeliveryStatus
from jobtrack.events.ordered import OrderedReader
from jobtrack.settings import Settings
from jobtrack.store.engine import Database
from jobtrack.store.events import StoredEvent, last_id
from jobtrack.store.feed import SqlEventLog
from jobtrack.store.webhooks import (
    Webhook,
    any_webhooks,
    ensure_cursor,
    insert_deliveries,
    lock_cursor,
    move_cursor,
    webhooks_of,
)

log = logging.getLogger(__name__)

CURSOR = "webhooks"
#: how long "no webhook exists" is trusted, and how often the cursor still moves then
HOOKS_CACHE_SECONDS = 1.0
IDLE_ROUND_SECONDS = 5.0


def wanted_types(hook: Webhook) -> frozenset[EventType]:
    out: frozenset[EventType] = frozenset()
    for kind in hook.events:
        out |= WEBHOOK_KINDS.get(kind, frozenset())
    return out


def matches(hook: Webhook, event: StoredEvent) -> bool:
    """True when ``event`` goes to ``hook``."""
    return (
        hook.tenant == event.tenant
        and event.type in wanted_types(hook)
        and (hook.flow_id is None or hook.flow_id == event.flow_id)
        and (hook.queue_name is None or hook.queue_name == event.queue_name)
        and event.at >= hook.created_at
    )


def delivery_rows(
    hooks: Iterable[Webhook], events: Iterable[StoredEvent], now: datetime
) -> list[dict[str, Any]]:
    """One pending delivery per (event, matching webhook), in event order."""
    hooks = list(hooks)
    return [
        {"webhook_id": h.id, "tenant": e.tenant, "event_id": e.id, "event_type": e.type,
         "job_id": e.job_id, "status": DeliveryStatus.PENDING.value, "attempts": 0,
         "next_attempt_at": now, "created_at": now}
        for e in events for h in hooks if matches(h, e)
    ]


class Dispatcher:
    """Reads the event log after the stored cursor and stores the deliveries it implies."""

    def __init__(
        self, db: Database, settings: Settings, *, on_dispatched: Callable[[], None] = lambda: None,
        position: Callable[[], int] | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.on_dispatched = on_dispatched
        #: an event id up to which the log is complete (the hub's cursor), if known
        self.position = position
        self.reader = OrderedReader(
            0, postgres=not db.is_sqlite, grace=settings.event_gap_grace_seconds,
            timeout=settings.event_gap_timeout_seconds,
        )
        self._ready = False
        self._hooks_exist = True
        self._hooks_checked = float("-inf")
        self._last_round = float("-inf")
        #: deliveries stored by this process (metrics)
        self.dispatched = 0

    async def prepare(self) -> None:
        """Create the cursor at the newest event if it does not exist (a new database does
        not send its history to webhooks created later)."""
        async with self.db.write() as conn:
            await ensure_cursor(conn, CURSOR, start=await last_id(conn),
                                now=datetime.now(UTC))
        self._ready = True

    async def idle(self) -> bool:
        """True when no webhook exists and the cursor was moved recently: the round can be
        skipped (on SQLite each round takes the write lock). The answer is cached for
        ``HOOKS_CACHE_SECONDS``; a webhook created meanwhile misses nothing, the cursor
        only moves in rounds."""
        now = time.monotonic()
        if now >= self._hooks_checked + HOOKS_CACHE_SECONDS:
            async with self.db.read() as conn:
                self._hooks_exist = await any_webhooks(conn)
            self._hooks_checked = now
        return not self._hooks_exist and now < self._last_round + IDLE_ROUND_SECONDS

    def webhooks_changed(self) -> None:
        """A webhook was created here: stop skipping rounds now."""
        self._hooks_checked = float("-inf")
        self._hooks_exist = True

    def wants_events(self) -> bool:
        """Whether new events call for a round now: a webhook exists (as last seen, at most
        ``HOOKS_CACHE_SECONDS`` ago), or the dispatcher is not prepared yet. With no
        webhook, the idle rounds run on their own timer: no event has a recipient."""
        return self._hooks_exist or not self._ready

    async def run_once(self) -> int:
        """One round; the number of deliveries stored."""
        if not self._ready:
            await self.prepare()
        if await self.idle():
            return 0
        self._last_round = time.monotonic()
        now = datetime.now(UTC)
        async with self.db.write() as conn:
            stored = await lock_cursor(conn, CURSOR)
            if stored is None:
                self._ready = False
                return 0
            if stored != self.reader.cursor:  # another process moved it (or first round)
                self.reader.reset(stored)
            if not self._hooks_exist and await self._skip_idle(conn, stored, now):
                return 0
            events = await self.reader.read(SqlEventLog(conn))
            rows: list[dict[str, Any]] = []
            if events:
                hooks = await webhooks_of(conn, {e.tenant for e in events})
                rows = delivery_rows(hooks, events, now)
                await insert_deliveries(conn, rows)
            if self.reader.cursor != stored:
                await move_cursor(conn, CURSOR, self.reader.cursor, now)
        if rows:
            self.dispatched += len(rows)
            self.on_dispatched()
        return len(rows)

    async def _skip_idle(self, conn: Any, stored: int, now: datetime) -> bool:
        """No webhook exists (asked again under the cursor's lock: one created meanwhile
        is seen): move the cursor to the position without reading the events. False when
        the round must read them (a webhook exists, no position is known)."""
        if self.position is None:
            return False
        # the position first, then the question: every event it passes committed before
        # the question was asked, so before any webhook that answer missed was created
        # (read the other way round, an event committed after a new webhook could be
        # passed over; the events a webhook receives are those after its creation)
        target = self.position()
        if await any_webhooks(conn):
            return False
        if target > stored:
            await move_cursor(conn, CURSOR, target, now)
            self.reader.reset(target)
        return True

    def next_round_in(self) -> float | None:
        """Seconds until a round is needed without new events (a gap is open), or None."""
        return self.reader.next_read_in()
