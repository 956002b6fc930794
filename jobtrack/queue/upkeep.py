"""The worker's two upkeep loops, beside its claim and flush loops:

- **heartbeat**: every ``lease_seconds / 3``, one UPDATE extends the lease of every run the
  worker holds; a run it no longer holds (reaped, cancelled and settled elsewhere, or
  retried as a new attempt) is handed to ``on_lost``, which stops it and discards its
  outcome;
- **reaper**: every ``reap_interval_seconds`` (jittered), stalls expired jobs (``reap``).

Both end when ``pause`` says so, never by cancellation: cancelled mid-transaction, they
would strand SQLite's write lock. A failed round is logged and tried again next round.
"""

import logging
import random
from collections.abc import Awaitable, Callable, Set
from datetime import UTC, datetime, timedelta

from jobtrack.queue.reaper import reap
from jobtrack.queue.stats import WorkerStats
from jobtrack.queue.tasks import TaskRegistry
from jobtrack.store import leases
from jobtrack.store.engine import Database

log = logging.getLogger("jobtrack.worker")

#: one run of a job: (job id, attempt)
Run = tuple[str, int]
#: sleeps between two rounds of a loop; True when the loop must end
Pause = Callable[[float], Awaitable[bool]]


async def heartbeat_loop(
    db: Database,
    *,
    worker_id: str,
    lease_seconds: float,
    held: Set[Run],
    on_lost: Callable[[Run], None],
    pause: Pause,
) -> None:
    """Keep the leases of the runs in ``held`` alive; ``on_lost`` each run no longer held."""
    while not await pause(lease_seconds / 3):
        runs = list(held)
        if not runs:
            continue
        now = datetime.now(UTC)
        try:
            async with db.write() as conn:
                kept = await leases.renew_runs(
                    conn, worker_id=worker_id, runs=runs,
                    lease_until=now + timedelta(seconds=lease_seconds))
        except Exception:
            log.exception("heartbeat failed; trying again")
            continue
        for run in runs:
            if run not in kept:
                on_lost(run)


async def reaper_loop(
    db: Database,
    *,
    tasks: TaskRegistry,
    actor: str,
    interval: float,
    held: Set[Run],
    stats: WorkerStats,
    pause: Pause,
) -> None:
    """Stall expired jobs every ``interval`` seconds or so (never the runs in ``held``);
    count them in ``stats``."""
    while not await pause(interval * random.uniform(0.5, 1.5)):
        try:
            reaped = await reap(db, tasks=tasks, actor=actor, held=held)
        except Exception:
            log.exception("reaping stalled jobs failed; trying again")
            continue
        if reaped:
            stats.reaped += len(reaped)
            log.warning("reaped %d stalled job(s)", len(reaped))
