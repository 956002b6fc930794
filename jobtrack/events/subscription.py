"""One live subscriber's view of the hub: what it wants, and a bounded buffer.

The buffer never grows past its bound. When it is full the hub waits a moment for the
subscriber to catch up (``hub.SLOW_SECONDS``, so a burst is not mistaken for a slow
client), then closes it with a reason; it can resume from its last event id, since
events are stored. One slow client never costs the process unbounded memory.
"""

import asyncio
from collections import deque
from collections.abc import Callable, Iterable

from jobtrack.events.filters import EventFilter, visible_to
from jobtrack.store.events import StoredEvent


class SubscriptionClosed(Exception):
    """The subscription ended (too slow, or the server is stopping); ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class Subscription:
    """Events for one tenant (``None``: every tenant) matching any of ``filters``."""

    def __init__(
        self,
        *,
        tenant: str | None,
        filters: Iterable[EventFilter],
        start: int,
        maxsize: int,
        discard: Callable[["Subscription"], None],
    ) -> None:
        self.tenant = tenant
        #: a WebSocket changes these as it joins and leaves rooms
        self.filters: set[EventFilter] = set(filters)
        #: the hub had handed out every event up to this id when the subscription began:
        #: later ones arrive here, earlier ones are a replay from the store
        self.start = start
        self.maxsize = maxsize
        self.closed_reason: str | None = None
        self._buffer: deque[StoredEvent] = deque()
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._discard = discard

    def wants(self, event: StoredEvent) -> bool:
        return visible_to(self.tenant, event) and any(f.matches(event) for f in self.filters)

    def push(self, event: StoredEvent) -> bool:
        """Buffer ``event``; False (and closed) when the subscriber is too far behind."""
        if self.closed_reason is not None:
            return False
        if len(self._buffer) >= self.maxsize:
            self.close(f"too slow: {self.maxsize} events waiting to be sent; reconnect "
                       "with the last event id received to resume")
            return False
        self._buffer.append(event)
        self._ready.set()
        return True

    def pending(self) -> int:
        return len(self._buffer)

    def full(self) -> bool:
        return len(self._buffer) >= self.maxsize

    async def wait_room(self, timeout: float) -> None:
        """Wait until the buffer has room again, or ``timeout`` passed."""
        while self.full() and self.closed_reason is None:
            self._room.clear()
            try:
                await asyncio.wait_for(self._room.wait(), timeout)
            except TimeoutError:
                return

    def get_nowait(self) -> StoredEvent | None:
        if not self._buffer:
            return None
        self._room.set()
        return self._buffer.popleft()

    async def get(self) -> StoredEvent:
        """The next event; buffered events are still handed out after a close, then
        ``SubscriptionClosed`` is raised."""
        while True:
            if self._buffer:
                self._room.set()
                return self._buffer.popleft()
            if self.closed_reason is not None:
                raise SubscriptionClosed(self.closed_reason)
            self._ready.clear()
            await self._ready.wait()

    def close(self, reason: str) -> None:
        """End the subscription; the hub forgets it."""
        if self.closed_reason is None:
            self.closed_reason = reason
            self._ready.set()
            self._room.set()
            self._discard(self)

    async def __aenter__(self) -> "Subscription":
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.close("unsubscribed")
