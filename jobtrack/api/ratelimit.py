"""Per-key rate limiting shared by every API process on one database.

Fixed one-minute windows. Each process leases quota from the database in chunks
(``Settings.chunk()``, one statement: :func:`jobtrack.store.keys.lease_quota`) and spends
it locally, so most requests cost no database round trip. The database counter only
grants what is left of the limit, so the total granted across all processes never exceeds
the limit.

The next chunk is leased ahead: once half of the process's local quota for a key is spent,
one lease runs in the background (at most one per key at a time), so a request waits on a
lease only when the local quota is really gone (the first request of a window, a burst
faster than one lease, or a background lease that failed). The tolerance is on the other
side: quota leased by one process but not spent (at most ``2 * chunk - 1`` per process and
key: the rest of one chunk and the chunk leased ahead) is lost to the others for that
window, so a process may answer 429 before the key's total reaches the limit.

A background lease that fails (database unavailable) is logged and forgotten: the process
spends what it holds, and the next request that finds nothing left leases itself, as
without leasing ahead (its failure is that request's 503).

Headers (on every authenticated answer, errors included):
``X-RateLimit-Limit`` (requests per minute), ``X-RateLimit-Remaining`` (this process's
estimate: quota nobody has leased yet plus this process's unspent lease),
``X-RateLimit-Reset`` (Unix time, in seconds, when the window ends); a 429 adds
``Retry-After`` (seconds until the window ends).
"""

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from jobtrack.store.engine import Database
from jobtrack.store.keys import forget_windows, lease_quota

log = logging.getLogger("jobtrack.api")

WINDOW_SECONDS = 60
#: windows kept in the database before a process sweeps them away
_KEEP_WINDOWS = 2


@dataclass(frozen=True, slots=True)
class RateInfo:
    """What the limiter decided for one request."""

    allowed: bool
    limit: int
    remaining: int
    reset: int
    retry_after: int

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(self.reset).encode()),
        ]


@dataclass(slots=True)
class _Window:
    start: int
    #: leased by this process and not spent yet
    local: int = 0
    #: the window's counter in the database at this process's last lease
    used: int = 0
    #: the database has nothing left to grant in this window
    exhausted: bool = False
    #: held while a lease of this key runs (a request's or the one ahead): one at a time
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: the lease running ahead, if any
    ahead: "asyncio.Task[None] | None" = None


class RateLimiter:
    """Decides each request of a key against the shared per-minute limit."""

    def __init__(
        self, db: Database, *, limit: int, chunk: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self.limit = limit
        self.chunk = max(1, min(chunk, limit))
        self._clock = clock
        self._windows: dict[str, _Window] = {}
        self._swept = 0
        self._ahead: set[asyncio.Task[None]] = set()

    async def acquire(self, key_id: str) -> RateInfo:
        """Spend one request of ``key_id``'s quota, leasing a chunk when none is left."""
        now = self._clock()
        start = int(now // WINDOW_SECONDS) * WINDOW_SECONDS
        reset = start + WINDOW_SECONDS
        window = self._window(key_id, start)
        if window.local == 0 and not window.exhausted:
            # nothing left here: wait for the lease in flight, if any, or lease now
            async with window.lock:
                if window.local == 0 and not window.exhausted:
                    await self._lease_into(window, key_id)
        if window.local > 0:
            window.local -= 1
            if (window.local * 2 <= self.chunk and not window.exhausted
                    and window.ahead is None and not window.lock.locked()):
                self._lease_ahead(window, key_id)
            remaining = max(0, self.limit - window.used) + window.local
            return RateInfo(True, self.limit, remaining, reset, 0)
        return RateInfo(False, self.limit, 0, reset, max(1, math.ceil(reset - now)))

    async def settle(self) -> None:
        """Wait for the leases running ahead (their failures are logged, not raised)."""
        while pending := [task for task in self._ahead if not task.done()]:
            await asyncio.gather(*pending, return_exceptions=True)

    async def close(self) -> None:
        """Cancel the leases running ahead (before the database closes)."""
        for task in list(self._ahead):
            task.cancel()
        await self.settle()

    def _window(self, key_id: str, start: int) -> _Window:
        window = self._windows.get(key_id)
        if window is None or window.start != start:
            if len(self._windows) > 10_000:  # forget idle keys' past windows
                self._windows = {k: w for k, w in self._windows.items() if w.start == start}
            window = self._windows[key_id] = _Window(start)
        return window

    def _lease_ahead(self, window: _Window, key_id: str) -> None:
        task = asyncio.create_task(self._ahead_lease(window, key_id),
                                   name=f"jobtrack-rate-lease-{key_id}")
        window.ahead = task
        self._ahead.add(task)
        task.add_done_callback(self._ahead.discard)

    async def _ahead_lease(self, window: _Window, key_id: str) -> None:
        try:
            async with window.lock:
                if not window.exhausted:
                    await self._lease_into(window, key_id)
        except Exception:
            # the quota held is still spent exactly; a request that finds none left
            # leases by itself (and answers 503 if the database is still away)
            log.warning("leasing rate-limit quota ahead failed (key %s); requests lease "
                        "when their quota runs out", key_id, exc_info=True)
        finally:
            window.ahead = None

    async def _lease_into(self, window: _Window, key_id: str) -> None:
        """Lease a chunk of ``window``'s quota for ``key_id`` and add it (lock held)."""
        granted, used = await self._lease(key_id, window.start)
        window.local += granted
        window.used = max(window.used, used)
        # the counter only grows: once a grant falls short, nothing is left to grant
        window.exhausted = granted < self.chunk

    async def _lease(self, key_id: str, start: int) -> tuple[int, int]:
        if self._swept == start:
            # one autocommitted statement (PostgreSQL: one round trip)
            async with self._db.write_one() as conn:
                return await lease_quota(conn, key_id=key_id, window_start=start,
                                         want=self.chunk, limit=self.limit)
        async with self._db.write() as conn:
            got = await lease_quota(conn, key_id=key_id, window_start=start, want=self.chunk,
                                    limit=self.limit)
            # counters of past windows are never read again
            await forget_windows(conn, start - _KEEP_WINDOWS * WINDOW_SECONDS)
        self._swept = start
        return got
