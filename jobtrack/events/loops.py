"""Helpers of the background loops (hub, webhook dispatch and delivery)."""

import asyncio


def cancelling() -> bool:
    """True when the current task is being cancelled.

    A loop that catches ``Exception`` to survive a database outage must check this: when a
    task is cancelled in the middle of a database call, the driver's clean-up can raise
    another error in place of ``CancelledError``, and a loop that retried it would never
    end (its owner waits for it forever). Some clean-ups swallow the cancellation
    altogether: loops also test this before each round."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
