"""The polling loop behind :meth:`App.wait <jobtrack.queue.app.App.wait>` and
:func:`jobtrack.queue.flows.wait_flow`: read until finished, backing off from 10 ms to
250 ms between reads, never sleeping past the deadline."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def poll_until(
    read: Callable[[], Awaitable[T | None]],
    finished: Callable[[T], bool],
    *,
    missing: Callable[[], Exception],
    late: Callable[[T], str],
    timeout: float | None,
) -> T:
    """Call ``read`` until what it returns is ``finished``; raise ``missing()`` when it
    returns None, and TimeoutError with the message ``late(value)`` (what the value still
    is) after ``timeout`` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.01
    while True:
        value = await read()
        if value is None:
            raise missing()
        if finished(value):
            return value
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(late(value))
        pause = delay if deadline is None else min(delay, deadline - time.monotonic())
        await asyncio.sleep(max(0.0, pause))
        delay = min(delay * 2, 0.25)
