"""Waiting until something holds, polled: from sync code (``wait_until``) and from
async code (``eventually`` with a timeout, ``until`` with a deadline)."""

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from support.processes import Process

Check = Callable[[], bool] | Callable[[], Awaitable[bool]]


def wait_until(check: Callable[[], bool], timeout: float, what: str,
               alive: "Process | None" = None, pause: float = 0.05) -> None:
    """Poll ``check`` until it holds; fail with ``what`` (and the process's log, when
    ``alive`` exits first or the time is up)."""
    deadline = time.monotonic() + timeout
    while not check():
        if alive is not None and alive.proc.poll() is not None:
            raise AssertionError(f"exited with {alive.proc.returncode} before {what}:\n"
                                 + alive.output())
        if time.monotonic() > deadline:
            log = alive.output() if alive is not None else ""
            raise AssertionError(f"no {what} within {timeout:g} s\n{log}")
        time.sleep(pause)


async def _holds(check: Check) -> bool:
    answer = check()
    if inspect.isawaitable(answer):
        answer = await answer
    return bool(answer)


async def until(check: Check, what: str, deadline: float, pause: float = 0.05) -> None:
    """Wait until ``check()`` (plain or awaitable) is true; fail with ``what`` once
    ``time.monotonic()`` passes ``deadline``."""
    while not await _holds(check):
        assert time.monotonic() < deadline, what
        await asyncio.sleep(pause)


async def eventually(check: Check, timeout: float = 10.0, what: str = "condition",
                     pause: float = 0.02) -> None:
    """Wait until ``check()`` (plain or awaitable) is true; fail after ``timeout``."""
    await until(check, f"no {what} within {timeout:g} s", time.monotonic() + timeout, pause)
