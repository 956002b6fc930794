"""The worker: claims jobs in batches, runs them concurrently, writes their outcomes in
batches, keeps their leases alive, and reaps jobs whose worker died.

Four loops share one event loop:

- **claim**: fills free slots (``concurrency``) with one ``claim`` transaction per batch,
  only from its queues (in the order given) and only names it has a task for; when the
  queues are empty it polls with a backoff from 10 ms to 500 ms;
- **flush**: group commit of finished runs: whatever finished while the previous batch
  was being written goes in the next transaction (``write_outcomes``);
- **heartbeat** and **reaper** (``jobtrack.queue.upkeep``): keep the leases of the runs
  held alive, stopping a run no longer held; stall expired jobs.

Shutdown (``stop()``, SIGTERM or SIGINT): claiming stops at once; running jobs get
``grace_seconds`` to finish and their outcomes are written. Jobs still running after
that are interrupted: cancelled, and written as failed with code ``interrupted`` and an
immediate retry, so that another worker runs them again while attempts remain (the last
attempt ends ``failed``: nothing is left ``running``). A plain (threaded) task cannot be
killed: it stops at its next checkpoint, and the process exits when it returns.

A run is one attempt of a job: the worker's bookkeeping (slots, leases, outcomes) is keyed
by ``(job id, attempt)``, never by the job id alone. A job cancelled and retried while its
old run still goes may be claimed again by the same worker: the two runs then live side
by side, and the old one's end touches only its own entries.
"""

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from jobtrack.domain.planner import plan_update
from jobtrack.domain.records import Change, Job, JobUpdate
from jobtrack.domain.spec import DEFAULT_QUEUE
from jobtrack.domain.status import StopReason
from jobtrack.errors import NotFound, ValidationFailed
from jobtrack.queue.app import App
from jobtrack.queue.context import JobContext, LeaseLost
from jobtrack.queue.execution import execute
from jobtrack.queue.outcomes import Outcome, owned, write_outcomes
from jobtrack.queue.presence import Presence
from jobtrack.queue.stats import WorkerStats
from jobtrack.queue.upkeep import heartbeat_loop, reaper_loop
from jobtrack.store import claim as store_claim
from jobtrack.store import jobs as store_jobs
from jobtrack.store.registry import adopt_phases

log = logging.getLogger("jobtrack.worker")

#: most outcomes written in one transaction
FLUSH_BATCH = 1000
#: how long a claim waits for more free slots once some are free (see _claim_loop)
CLAIM_WAIT = 0.005


#: one run of a job: (job id, attempt)
RunKey = tuple[str, int]


def run_key(job: Job) -> RunKey:
    """The key of the run of ``job`` as claimed."""
    return (job.id, job.attempt)


@dataclass(slots=True)
class _Run:
    ctx: JobContext
    task: "asyncio.Task[None]"


class Worker:
    """Runs an App's tasks from the database until stopped."""

    def __init__(
        self,
        app: App,
        *,
        queues: Sequence[str] | None = None,
        concurrency: int | None = None,
        worker_id: str | None = None,
        grace_seconds: float = 30.0,
        idle_poll: tuple[float, float] = (0.01, 0.5),
    ) -> None:
        self.app = app
        self.settings = app.settings
        if concurrency is None:
            concurrency = self.settings.worker_concurrency
        if concurrency < 1:
            raise ValidationFailed("concurrency must be at least 1")
        self.queues = list(queues or app.tasks.queues() or [DEFAULT_QUEUE])
        self.concurrency = concurrency
        self.grace_seconds = grace_seconds
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.actor = f"worker:{self.id}"
        self.stats = WorkerStats()
        self._idle_min, self._idle_max = idle_poll
        # claim at least this many at once when the rest of the slots are busy
        self._claim_batch = max(1, min(50, concurrency // 2))
        self._names = app.tasks.names()
        # a job stored without phases (created before its task was declared) gets these
        self._phases = {t.name: t.phases for t in app.tasks if t.phases}
        self.presence = Presence(app, worker_id=self.id, queues=self.queues,
                                 concurrency=concurrency)
        self._running: dict[RunKey, _Run] = {}
        self._held: set[RunKey] = set()
        self._outcomes: list[Outcome] = []
        self._has_outcomes = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._stopping = asyncio.Event()
        self._forced = asyncio.Event()
        self._closing = False
        self._helpers_done = asyncio.Event()
        self._pool = ThreadPoolExecutor(max_workers=concurrency,
                                        thread_name_prefix="jobtrack-task")

    # --- control --------------------------------------------------------------------

    def stop(self, *, force: bool = False) -> None:
        """Stop claiming; running jobs get the grace period (none with ``force``)."""
        if force:
            self.grace_seconds = 0
            self._forced.set()  # cuts short a grace period already being waited out
        self._stopping.set()
        self._slot_free.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def install_signal_handlers(self) -> None:
        """SIGTERM / SIGINT stop gracefully; a second one stops at once."""
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            if self.stopping:
                log.warning("second signal: interrupting running jobs now")
            self.stop(force=self.stopping)

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)

    async def run(self) -> WorkerStats:
        """Work until :meth:`stop`; return the counters."""
        if not self._names:
            raise ValidationFailed("this app has no tasks: register some with @app.task")
        log.info("worker %s: queues %s, concurrency %d, tasks %s", self.id,
                 ",".join(self.queues), self.concurrency, ",".join(self._names))
        await self.presence.enter()
        flusher = asyncio.create_task(self._flush_loop(), name="jobtrack-flush")
        db, settings = self.app.db, self.settings
        heartbeat = heartbeat_loop(db, worker_id=self.id, lease_seconds=settings.lease_seconds,
                                   held=self._held, on_lost=self._lost, pause=self._pause)
        reaper = reaper_loop(db, tasks=self.app.tasks, actor=self.actor, held=self._held,
                             interval=settings.reap_interval_seconds,
                             stats=self.stats, pause=self._pause)
        helpers = [asyncio.create_task(heartbeat, name="jobtrack-heartbeat"),
                   asyncio.create_task(reaper, name="jobtrack-reaper"),
                   asyncio.create_task(self.presence.run(self._pause),
                                       name="jobtrack-presence")]
        try:
            await self._claim_loop()
            await self._drain()
        finally:
            self._closing = True
            self._has_outcomes.set()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            # never cancelled mid-transaction (on SQLite that would strand the write
            # lock): they see the flag at their next pause and return
            self._helpers_done.set()
            await asyncio.gather(*helpers, return_exceptions=True)
            self._pool.shutdown(wait=False, cancel_futures=True)
            await self.presence.leave()
        log.info("worker %s stopped: %s", self.id, self.stats)
        return self.stats

    # --- claim and run ----------------------------------------------------------------

    async def _claim_loop(self) -> None:
        delay = self._idle_min
        while not self.stopping:
            free = self.concurrency - len(self._running)
            if free <= 0:
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            if free < self._claim_batch and self._running:
                # a few slots free while the rest still run: wait a moment for more, so
                # short jobs are claimed in batches, not one transaction per freed slot
                await self._more_slots()
                free = self.concurrency - len(self._running)
            try:
                claimed = await self._claim(free)
            except Exception:
                log.exception("claim failed; trying again")
                await self._idle(1.0)
                continue
            if claimed:
                for job in claimed:
                    self._start(job)
                delay = self._idle_min
                await asyncio.sleep(0)  # let them run before looking for more
            else:
                await self._idle(delay)
                delay = min(delay * 2, self._idle_max)

    async def _more_slots(self) -> None:
        deadline = asyncio.get_running_loop().time() + CLAIM_WAIT
        while (self.concurrency - len(self._running) < self._claim_batch
               and not self.stopping):
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return
            self._slot_free.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._slot_free.wait(), left)

    async def _claim(self, limit: int) -> list[Job]:
        now = datetime.now(UTC)
        async with self.app.db.write() as conn:
            claimed = await store_claim.claim(
                conn, queues=self.queues, worker_id=self.id, limit=limit, now=now,
                lease_until=now + timedelta(seconds=self.settings.lease_seconds),
                names=self._names, actor=self.actor)
            if self._phases:
                claimed = await adopt_phases(conn, claimed, self._phases)
        self.stats.claimed += len(claimed)
        return claimed

    async def _idle(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _start(self, job: Job) -> None:
        ctx = JobContext(job, self, progress_interval=self.settings.progress_interval_seconds)
        key = run_key(job)
        self._held.add(key)
        self._running[key] = _Run(ctx, asyncio.create_task(self._execute(ctx)))

    async def _execute(self, ctx: JobContext) -> None:
        job = ctx.job
        key = run_key(job)
        outcome: Outcome | None = None
        try:
            outcome = await execute(self.app.tasks[job.name], ctx, self._pool)
        except Exception:  # a bug of ours, not the task's: let the lease run out
            log.exception("job %s: the worker failed to run it", job.id)
        finally:
            del self._running[key]
            self._slot_free.set()
        if outcome is None:
            self.stats.discarded += 1
            self._held.discard(key)
            return
        self._outcomes.append(outcome)
        self._has_outcomes.set()

    async def _drain(self) -> None:
        """Give running jobs the grace period, then interrupt the rest."""
        runs = [r.task for r in self._running.values()]
        if runs:
            log.info("waiting up to %.1f s for %d running job(s)", self.grace_seconds,
                     len(runs))
            await self._grace(runs)
            late = [run for run in runs if not run.done()]
            if late:
                log.warning("interrupting %d job(s) still running", len(late))
                for run in list(self._running.values()):
                    run.ctx.stopped = StopReason.INTERRUPTED
                    run.task.cancel()
                await asyncio.wait(late, timeout=5)

    async def _grace(self, runs: list["asyncio.Task[None]"]) -> None:
        """Wait until the runs end, the grace period ends, or ``stop(force=True)`` (a
        second signal) comes, whichever is first."""
        if self._forced.is_set():
            return
        ended = asyncio.ensure_future(asyncio.wait(runs))
        forced = asyncio.ensure_future(self._forced.wait())
        try:
            await asyncio.wait({ended, forced}, timeout=max(0.0, self.grace_seconds),
                               return_when=asyncio.FIRST_COMPLETED)
        finally:  # cancelling the waiters leaves the runs alone
            ended.cancel()
            forced.cancel()

    # --- flush ----------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        delay = 0.05
        while True:
            if not self._outcomes:
                if self._closing:
                    return
                self._has_outcomes.clear()
                await self._has_outcomes.wait()
                continue
            batch = self._outcomes[:FLUSH_BATCH]
            del self._outcomes[:FLUSH_BATCH]
            try:
                written = await write_outcomes(self.app.db, batch, worker_id=self.id,
                                               actor=self.actor)
            except Exception:
                log.exception("writing %d outcome(s) failed; trying again", len(batch))
                self._outcomes[:0] = batch
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                if self._closing and delay >= 2.0:
                    return  # the leases will expire and the reaper retries these jobs
                continue
            delay = 0.05
            self.stats.count_written(written.changes, written.discarded, self.id)
            for outcome in batch:
                self._held.discard(run_key(outcome.job))

    # --- leases ---------------------------------------------------------------------

    def _lost(self, key: RunKey) -> None:
        """The heartbeat found a run no longer held: stop it (its outcome is discarded)."""
        run = self._running.get(key)
        if run is not None and run.ctx.stopped is None:
            log.warning("job %s: lease of attempt %d lost; stopping it", *key)
            self.stats.lost += 1
            run.ctx.stopped = StopReason.LOST
            run.task.cancel()

    async def _pause(self, seconds: float) -> bool:
        """Sleep between two rounds of a helper loop; True when the loop must end."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._helpers_done.wait(), seconds)
        return self._helpers_done.is_set()

    # --- Reporter (used by JobContext) ------------------------------------------------

    async def report(self, job: Job, update: JobUpdate) -> Job:
        """Write a progress or phase update of a job this worker runs (shielded: a task
        stopped meanwhile does not cut its transaction short)."""
        return await asyncio.shield(self._report(job, update))

    async def fetch(self, job: Job) -> Job:
        """The stored state of a job this worker runs."""
        return await asyncio.shield(self._fetch(job))

    async def _report(self, job: Job, update: JobUpdate) -> Job:
        now = datetime.now(UTC)

        def plan(stored: Job) -> Change:
            if not owned(stored, job, self.id):
                raise LeaseLost(job.id)
            return plan_update(stored, update, now)

        try:
            async with self.app.db.write() as conn:
                return await store_jobs.change_job(conn, job.id, plan, tenant=None,
                                                   actor=self.actor, now=now)
        except NotFound:
            raise LeaseLost(job.id) from None

    async def _fetch(self, job: Job) -> Job:
        async with self.app.db.read() as conn:
            stored = await store_jobs.get_job(conn, job.id, tenant=None)
        if stored is None or not owned(stored, job, self.id):
            raise LeaseLost(job.id)
        return stored
