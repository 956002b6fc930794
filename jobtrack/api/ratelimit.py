"""Per-key rate limiting shared by every API process on one database.

Fixed one-minute windows. Each process leases quota from the database in chunks
(``Settings.chunk()``, one statement: :func:`jobtrack.store.keys.lease_quota`) and spends
it locally, so most requests cost no database round trip. The database counter only
grants what is left of the limit, so the total granted across all processes never exceeds
the limit. The tolerance is on the other side: quota leased by one process but not spent
(at most ``chunk - 1`` per process and key) is lost to the others for that window, so a
process may answer 429 slightly before the key's total reaches the limit.

Headers (on every authenticated answer, errors included):
``X-RateLimit-Limit`` (requests per minute), ``X-RateLimit-Remaining`` (this process's
estimate: quota nobody has leased yet plus this process's unspent lease),
``X-RateLimit-Reset`` (Unix time, in seconds, when the window ends); a 429 adds
``Retry-After`` (seconds until the window ends).
"""

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from jobtrack.store.engine import Database
from jobtrack.store.keys import forget_windows, lease_quota

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
    exhausted: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


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

    async def acquire(self, key_id: str) -> RateInfo:
        """Spend one request of ``key_id``'s quota, leasing a chunk when none is left."""
        now = self._clock()
        start = int(now // WINDOW_SECONDS) * WINDOW_SECONDS
        reset = start + WINDOW_SECONDS
        window = self._window(key_id, start)
        if window.local == 0 and not window.exhausted:
            async with window.lock:
                if window.local == 0 and not window.exhausted:
                    granted, used = await self._lease(key_id, start)
                    window.local += granted
                    window.used = max(window.used, used)
                    window.exhausted = granted == 0
        if window.local > 0:
            window.local -= 1
            remaining = max(0, self.limit - window.used) + window.local
            return RateInfo(True, self.limit, remaining, reset, 0)
        return RateInfo(False, self.limit, 0, reset, max(1, math.ceil(reset - now)))

    def _window(self, key_id: str, start: int) -> _Window:
        window = self._windows.get(key_id)
        if window is None or window.start != start:
            if len(self._windows) > 10_000:  # forget idle keys' past windows
                self._windows = {k: w for k, w in self._windows.items() if w.start == start}
            window = self._windows[key_id] = _Window(start)
        return window

    async def _lease(self, key_id: str, start: int) -> tuple[int, int]:
        async with self._db.write() as conn:
            got = await lease_quota(conn, key_id=key_id, window_start=start, want=self.chunk,
                                    limit=self.limit)
            if self._swept != start:
                # counters of past windows are never read again
                self._swept = start
                await forget_windows(conn, start - _KEEP_WINDOWS * WINDOW_SECONDS)
        return got
