"""Read the event log in id order without ever skipping an event that commits late.

Why this is needed: on PostgreSQL an event's id comes from a sequence when the row is
inserted, not when its transaction commits. Transaction A can take id 10, transaction B
id 11, and B can commit first. A reader that remembers "the last id I saw" (11) and asks
for ``id > 11`` would never see 10. On SQLite writers hold the database lock from
``BEGIN IMMEDIATE`` to ``COMMIT``, so ids commit in order and a hole is a rolled-back or
deleted id: it is skipped at once.

The algorithm (PostgreSQL):

1. Read ``id > cursor`` in id order. Hand out the contiguous run ``cursor+1, cursor+2, ...``
   and move the cursor along it.
2. At the first hole (a missing id below an id already visible) stop, and remember the
   gap: when it was first seen, the highest id read (its *horizon*), and
   ``xmax = pg_snapshot_xmax(pg_current_snapshot())`` taken after that read. Every
   missing id below the horizon was taken before the horizon's row was inserted, so by a
   transaction that had started by then: it is either finished or still running with a
   transaction id below ``xmax``.
3. Later reads hand out whatever filled in. The gap is *proven dead* when
   ``pg_snapshot_xmin(pg_current_snapshot()) >= xmax`` (every transaction id below
   ``xmax`` has finished; ``>`` would wait for one more transaction to start and end, which
   on an idle server never happens) and a short grace has passed (``event_gap_grace_seconds``;
   it covers a transaction that took its id a few microseconds before it was given a
   transaction id). The log is then read once more, after the proof, so a row committed
   just before it is handed out; holes at or below the horizon still missing are skipped
   (their transactions rolled back).
4. A gap still open after ``event_gap_timeout_seconds`` (a transaction held open for a
   long time) is skipped so that live events keep flowing, but its ids are remembered as
   *late ranges*: they are read again every ``late_check`` seconds and handed out when
   they commit (out of id order; the caller marks them late), until the snapshot test
   proves their transactions finished. Late ranges live in memory only.

A caller sees each event at most once from one reader. Nothing here sleeps: the caller
decides when to read again (``next_read_in``).
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from jobtrack.store.events import StoredEvent
from jobtrack.store.feed import EventLog

log = logging.getLogger(__name__)

#: how soon to read again while a gap is open (the hole usually fills within milliseconds)
GAP_POLL_SECONDS = 0.02
#: most late ranges remembered; past it the oldest are given up (and logged)
MAX_LATE_RANGES = 1000


@dataclass(slots=True)
class _Gap:
    since: float
    xmax: int
    horizon: int
    proven: bool = False
    forced: bool = False


@dataclass(frozen=True, slots=True)
class LateRange:
    """Ids skipped by the hard timeout, watched until their transactions finish."""

    lo: int
    hi: int
    xmax: int


class OrderedReader:
    """A cursor over the event log that hands out events in id order, gap-safe."""

    def __init__(
        self,
        cursor: int,
        *,
        postgres: bool,
        grace: float = 0.5,
        timeout: float = 10.0,
        batch: int = 500,
        max_pages: int = 20,
        late_check: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cursor = cursor
        self.postgres = postgres
        self.grace = grace
        self.timeout = timeout
        self.batch = batch
        self.max_pages = max_pages
        self.late_check = late_check
        self._clock = clock
        self._gap: _Gap | None = None
        self._late: list[LateRange] = []
        self._next_late_read = 0.0
        self._more = False

    @property
    def late_ranges(self) -> tuple[LateRange, ...]:
        return tuple(self._late)

    @property
    def gap_open(self) -> bool:
        return self._gap is not None

    def next_read_in(self) -> float | None:
        """Seconds until this reader needs a read even without a wake-up, or None."""
        if self._more:
            return 0.0
        waits: list[float] = []
        if self._gap is not None:
            waits.append(GAP_POLL_SECONDS)
        if self._late:
            waits.append(max(0.0, self._next_late_read - self._clock()))
        return min(waits) if waits else None

    def reset(self, cursor: int) -> None:
        """Continue from ``cursor`` (e.g. moved by another process); late ranges are kept."""
        self.cursor = cursor
        self._gap = None

    async def read(self, source: EventLog) -> list[StoredEvent]:
        """The next events in id order, after any late ones (ids below the cursor)."""
        out: list[StoredEvent] = []
        if self._late and self._clock() >= self._next_late_read:
            out.extend(await self._read_late(source))
        self._more = False
        for _ in range(self.max_pages):
            rows = await source.after(self.cursor, limit=self.batch)
            hole = self._take(rows, out)
            if hole is None:
                if len(rows) < self.batch:
                    return out
                continue
            if not await self._settle(source, rows[-1].id):
                return out
        self._more = True  # page budget spent: the caller should read again at once
        return out

    def _take(self, rows: list[StoredEvent], out: list[StoredEvent]) -> int | None:
        """Hand out the contiguous run; the index of the row after an open hole, or None."""
        for i, event in enumerate(rows):
            if event.id != self.cursor + 1:
                gap = self._gap
                if gap is not None and self.cursor >= gap.horizon:
                    gap = self._gap = None
                if gap is not None and gap.proven and event.id <= gap.horizon:
                    if gap.forced:
                        self._remember_late(LateRange(self.cursor + 1, event.id - 1, gap.xmax))
                elif self.postgres:
                    return i
            out.append(event)
            self.cursor = event.id
        if self._gap is not None and self.cursor >= self._gap.horizon:
            self._gap = None
        return None

    async def _settle(self, source: EventLog, horizon: int) -> bool:
        """Record a new gap, or prove the open one dead; True when it is proven."""
        now = self._clock()
        gap = self._gap
        if gap is None or gap.proven:  # (proven: a hole above its horizon is a new gap)
            self._gap = _Gap(since=now, xmax=await source.xmax(), horizon=horizon)
            return False
        age = now - gap.since
        if age >= self.timeout:
            gap.proven = gap.forced = True
            log.warning("event ids after %d still missing after %.1f s: delivering later "
                        "events now, the missing ones when they commit", self.cursor, age)
            return True
        if age >= self.grace and await source.xmin() >= gap.xmax:
            gap.proven = True
            return True
        return False

    def _remember_late(self, late: LateRange) -> None:
        self._late.append(late)
        self._next_late_read = self._clock() + self.late_check
        if len(self._late) > MAX_LATE_RANGES:
            dropped = self._late.pop(0)
            log.warning("giving up late event ids %d..%d", dropped.lo, dropped.hi)

    async def _read_late(self, source: EventLog) -> list[StoredEvent]:
        """Late events that committed since the last look; drop ranges proven finished."""
        self._next_late_read = self._clock() + self.late_check
        xmin = await source.xmin()  # before reading: what is missing after it is dead
        found: list[StoredEvent] = []
        kept: list[LateRange] = []
        for late in self._late:
            rows = await source.after(late.lo - 1, upto=late.hi, limit=self.batch)
            found.extend(rows)
            if len(rows) == self.batch:  # more to come: keep the unread tail for next time
                kept.extend(_split(late, rows, upto=rows[-1].id))
                kept.append(LateRange(rows[-1].id + 1, late.hi, late.xmax))
            elif xmin < late.xmax:
                kept.extend(_split(late, rows, upto=late.hi))
        self._late = kept
        return found


def _split(late: LateRange, rows: list[StoredEvent], *, upto: int) -> list[LateRange]:
    """What is still missing of ``late.lo..upto`` once ``rows`` were found in it."""
    out: list[LateRange] = []
    lo = late.lo
    for event in rows:
        if event.id > lo:
            out.append(LateRange(lo, event.id - 1, late.xmax))
        lo = event.id + 1
    if lo <= upto:
        out.append(LateRange(lo, upto, late.xmax))
    return out
