"""What a running task sees: its job, its phases and progress, and the checkpoints where
a pause makes it wait and a cancel request stops it.

Progress is coalesced: ``advance()`` only counts in memory, and at most one write per
``progress_interval_seconds`` reaches the database; that write also answers whether the
job was paused or cancelled meanwhile. The throttle keeps its trailing write: progress
reported inside the interval is written when the interval ends, whether or not the task
reaches another checkpoint (a long step after a few advances shows them). Phase changes
(entering a new phase, leaving one) are written at once. The last declared phase is left
running when its block ends, so that the job's completion, its result and that phase's
completion are one transaction.

Async tasks get a :class:`JobContext`; plain (threaded) tasks get a
:class:`SyncJobContext` with the same methods, blocking.
"""

import asyncio
import logging
import time
from collections.abc import Coroutine, Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Protocol, TypeVar

from jobtrack.domain.records import Job, JobUpdate, PhaseUpdate, Progress
from jobtrack.domain.status import PhaseStatus, StopReason
from jobtrack.errors import InvalidTransition

T = TypeVar("T")
log = logging.getLogger("jobtrack.worker")


class JobCancelled(Exception):
    """The job was cancelled while it ran; raised at a checkpoint to stop the task."""


class LeaseLost(Exception):
    """This worker no longer owns the job (reaped, cancelled or retried elsewhere)."""


class Reporter(Protocol):
    """How a context reads and writes its job (implemented by the worker)."""

    async def report(self, job: Job, update: JobUpdate) -> Job:
        """Plan and write ``update`` on the stored job; raise LeaseLost if not ours."""

    async def fetch(self, job: Job) -> Job:
        """The stored job; raise LeaseLost if not ours."""


class JobContext:
    """The first argument of an async task."""

    def __init__(
        self, job: Job, reporter: Reporter, *, progress_interval: float,
        pause_poll: float = 0.25,
    ) -> None:
        #: the job as it was claimed
        self.job = job
        #: extra figures to store in the job's ``stats`` when it finishes
        self.stats: dict[str, Any] = {}
        #: why the worker stopped waiting for this run; checkpoints then stop the task
        self.stopped: StopReason | None = None
        self._reporter = reporter
        self._interval = progress_interval
        self._poll = pause_poll
        self._state = job
        self._checked = time.monotonic()
        self._pending: JobUpdate | None = None
        #: one reporter call at a time, so a trailing write never lands after a newer one
        self._io = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._trailing: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def known(self) -> Job:
        """The job as last read or written by this worker (its stored state then)."""
        return self._state

    @property
    def attempt(self) -> int:
        """1 for the first run, 2 for the first retry, ..."""
        return self.job.attempt

    @property
    def data(self) -> Mapping[str, Any]:
        return self.job.data

    def phase(self, name: str, total: float | None = None) -> "PhaseScope":
        """``async with ctx.phase(name, total=...) as phase:`` runs one declared phase."""
        self.job.phase_index(name)  # an undeclared name fails here, naming the declared ones
        return PhaseScope(self, name, total)

    async def progress(self, done: float, total: float | None = None) -> None:
        """Progress of a job without phases; also a checkpoint."""
        self._pending = JobUpdate(progress=Progress(done, total))
        await self.checkpoint()

    async def checkpoint(self) -> None:
        """Write pending progress if due; wait while paused; stop if cancelled."""
        if self.stopped is not None:
            raise LeaseLost(self.job.id)
        if time.monotonic() - self._checked >= self._interval:
            await self._sync()
        elif self._pending is not None:
            self.arm()
        await self._obey()

    def arm(self) -> None:
        """Make sure pending progress is written when the throttle interval ends, even
        if the task reaches no checkpoint by then (call on the worker's event loop)."""
        if self._timer is not None or self._closed or self._pending is None:
            return
        delay = max(0.0, self._checked + self._interval - time.monotonic())
        self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        if not self._closed and self._pending is not None:
            self._trailing = asyncio.get_running_loop().create_task(self._trail())

    async def _trail(self) -> None:
        if self._closed or self.stopped is not None:
            return
        try:
            await self._sync()
        except Exception:  # the task's own next checkpoint learns what went wrong
            log.debug("job %s: a trailing progress write failed", self.job.id, exc_info=True)

    def close(self) -> None:
        """The run ended: no trailing write after this (its outcome is written next)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def quiet(self) -> bool:
        """True when a checkpoint now would neither write nor wait nor stop."""
        state = self._state
        if self.stopped is not None or state.cancel_requested:
            return False
        if time.monotonic() - self._checked >= self._interval:
            return False
        current = state.current_phase
        return current is None or current.status is not PhaseStatus.PAUSED

    async def _sync(self) -> None:
        """Write the pending progress (or read the job) and learn its stored state."""
        async with self._io:
            update, self._pending = self._pending, None
            if update is not None:
                self._state = await self._reporter.report(self.job, update)
            else:
                self._state = await self._reporter.fetch(self.job)
            self._checked = time.monotonic()

    async def _obey(self) -> None:
        while True:
            if self.stopped is not None:
                raise LeaseLost(self.job.id)
            if self._state.cancel_requested:
                raise JobCancelled(self.job.id)
            current = self._state.current_phase
            if current is None or current.status is not PhaseStatus.PAUSED:
                return
            await asyncio.sleep(self._poll)
            await self._sync()

    async def _write(self, update: JobUpdate) -> None:
        """An immediate write (a phase change), waiting out a pause it collides with."""
        self._pending = None
        for _ in range(3):
            try:
                async with self._io:
                    self._state = await self._reporter.report(self.job, update)
                    self._checked = time.monotonic()
                return
            except InvalidTransition:
                # paused meanwhile (paused -> completed is not a move): wait, then again
                await self._sync()
                await self._obey()
        async with self._io:
            self._state = await self._reporter.report(self.job, update)

    async def _enter(self, name: str, total: float | None) -> "PhaseHandle":
        handle = PhaseHandle(self, name, total)
        stored = self._state.phases[self._state.phase_index(name)]
        progress = None if total is None else Progress(0, total)
        if stored.status is PhaseStatus.NOT_STARTED:
            await self._write(JobUpdate(phase=PhaseUpdate(name, PhaseStatus.RUNNING, progress)))
        elif progress is not None:
            self._pending = JobUpdate(phase=PhaseUpdate(name, progress=progress))
        await self.checkpoint()
        return handle

    async def _leave(self, handle: "PhaseHandle") -> None:
        if handle.name == self.job.phases[-1].name:
            return  # completed together with the job, in the worker's final write
        await self.checkpoint()
        await self._write(JobUpdate(phase=PhaseUpdate(
            handle.name, PhaseStatus.COMPLETED, Progress(handle.done, handle.total))))


class PhaseHandle:
    """Progress of one phase: ``await phase.advance()`` is also a checkpoint."""

    def __init__(self, ctx: JobContext, name: str, total: float | None) -> None:
        self.name = name
        self.done: float = 0
        self.total = total
        self._ctx = ctx

    def _mark(self) -> None:
        self._ctx._pending = JobUpdate(
            phase=PhaseUpdate(self.name, progress=Progress(self.done, self.total)))

    async def advance(self, n: float = 1) -> None:
        """Count ``n`` more units done; write if due; wait if paused; stop if cancelled."""
        self.done += n
        self._mark()
        await self._ctx.checkpoint()

    async def set_total(self, total: float | None) -> None:
        """Say (or correct) how many units this phase has."""
        self.total = total
        self._mark()
        await self._ctx.checkpoint()


class PhaseScope:
    """Entering starts the phase; leaving completes it; an exception fails it (the
    worker's failure write marks the running phase failed)."""

    def __init__(self, ctx: JobContext, name: str, total: float | None) -> None:
        self._ctx = ctx
        self._name = name
        self._total = total
        self._handle: PhaseHandle | None = None

    async def __aenter__(self) -> PhaseHandle:
        self._handle = await self._ctx._enter(self._name, self._total)
        return self._handle

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is None and self._handle is not None:
            await self._ctx._leave(self._handle)


class SyncPhaseHandle:
    """:class:`PhaseHandle` for plain (threaded) tasks."""

    def __init__(self, owner: "SyncJobContext", handle: PhaseHandle) -> None:
        self._owner = owner
        self._handle = handle

    @property
    def name(self) -> str:
        return self._handle.name

    @property
    def done(self) -> float:
        return self._handle.done

    @property
    def total(self) -> float | None:
        return self._handle.total

    def advance(self, n: float = 1) -> None:
        self._handle.done += n
        self._handle._mark()
        self._owner.checkpoint()

    def set_total(self, total: float | None) -> None:
        self._handle.total = total
        self._handle._mark()
        self._owner.checkpoint()


class SyncJobContext:
    """The first argument of a plain task, run in a worker thread: the same methods as
    :class:`JobContext`, blocking; database work runs on the worker's event loop."""

    def __init__(self, ctx: JobContext, loop: asyncio.AbstractEventLoop) -> None:
        self._ctx = ctx
        self._loop = loop

    @property
    def job(self) -> Job:
        return self._ctx.job

    @property
    def id(self) -> str:
        return self._ctx.id

    @property
    def attempt(self) -> int:
        return self._ctx.attempt

    @property
    def data(self) -> Mapping[str, Any]:
        return self._ctx.data

    @property
    def stats(self) -> dict[str, Any]:
        return self._ctx.stats

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    @contextmanager
    def phase(self, name: str, total: float | None = None) -> Iterator[SyncPhaseHandle]:
        """``with ctx.phase(name, total=...) as phase:`` runs one declared phase."""
        self._ctx.job.phase_index(name)
        handle = self._run(self._ctx._enter(name, total))
        yield SyncPhaseHandle(self, handle)
        self._run(self._ctx._leave(handle))

    def progress(self, done: float, total: float | None = None) -> None:
        self._ctx._pending = JobUpdate(progress=Progress(done, total))
        self.checkpoint()

    def checkpoint(self) -> None:
        ctx = self._ctx
        if not ctx.quiet():
            self._run(ctx.checkpoint())
        elif ctx._pending is not None and ctx._timer is None:
            self._loop.call_soon_threadsafe(ctx.arm)
