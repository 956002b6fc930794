"""API keys per process: looked up once, then trusted for ``key_cache_seconds``.

The cache keeps the hot path at one database round trip (docs/targets.md P4). Its price is a
documented revocation delay: a revoked key keeps working on a process that has it cached
for at most ``key_cache_seconds`` (default 10 s; 0 turns the cache off). Unknown keys are
cached too (so a flood of bad keys cannot flood the database), in a bounded table.
"""

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from jobtrack.errors import Unauthorized
from jobtrack.store.engine import Database
from jobtrack.store.keys import ApiKey, lookup_key

#: longest key accepted before any lookup (keys are about 46 characters)
MAX_KEY_LENGTH = 256


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sends a request: its key, and what that key may see."""

    key: ApiKey

    @property
    def tenant(self) -> str:
        return self.key.tenant

    @property
    def admin(self) -> bool:
        return self.key.admin

    @property
    def scope(self) -> str | None:
        """The tenant every query is filtered by; None for an admin (all tenants)."""
        return None if self.key.admin else self.key.tenant

    @property
    def actor(self) -> str:
        """How events record this caller."""
        return f"api:{self.key.prefix}"


class KeyCache:
    """Resolve raw bearer keys to :class:`ApiKey`, caching answers for ``ttl`` seconds."""

    def __init__(
        self, db: Database, *, ttl: float, max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self.ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, ApiKey | None]] = OrderedDict()
        #: lookups in flight, by digest: concurrent requests with a key not cached (a cold
        #: start, an expired entry) share one read instead of taking a connection each
        self._inflight: dict[str, asyncio.Future[ApiKey | None]] = {}

    async def resolve(self, raw: str | None) -> ApiKey:
        """The live key for ``raw``; :class:`Unauthorized` when missing, unknown or revoked."""
        if not raw:
            raise Unauthorized(
                "missing API key: send 'Authorization: Bearer <key>'",
                details={"header": "Authorization"},
            )
        if len(raw) > MAX_KEY_LENGTH or not raw.isascii() or not raw.isprintable():
            raise _invalid()
        digest = hashlib.sha256(raw.encode()).hexdigest()
        now = self._clock()
        hit = self._entries.get(digest)
        if hit is not None and hit[0] > now:
            key = hit[1]
        else:
            key = await self._fetch(digest, raw)
        if key is None:
            raise _invalid()
        return key

    async def _fetch(self, digest: str, raw: str) -> ApiKey | None:
        """The stored key for ``raw``, read once however many requests ask at a time."""
        pending = self._inflight.get(digest)
        if pending is None:
            pending = self._inflight[digest] = asyncio.ensure_future(self._read(digest, raw))
            pending.add_done_callback(lambda _: self._inflight.pop(digest, None))
        # shielded: a request that gives up does not cancel the read the others wait for
        return await asyncio.shield(pending)

    async def _read(self, digest: str, raw: str) -> ApiKey | None:
        async with self._db.read() as conn:
            key = await lookup_key(conn, raw)
        if self.ttl > 0:
            self._remember(digest, self._clock() + self.ttl, key)
        return key

    def _remember(self, digest: str, until: float, key: ApiKey | None) -> None:
        self._entries[digest] = (until, key)
        self._entries.move_to_end(digest)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def forget(self) -> None:
        """Drop every cached answer (tests, key rotation tooling)."""
        self._entries.clear()


def _invalid() -> Unauthorized:
    return Unauthorized("invalid or revoked API key", details={"header": "Authorization"})
