"""The store's one write operation: ``apply`` takes the jobs to change and a domain planner,
and in the caller's transaction locks the jobs (or version-checks those planned from a copy
read without a lock), plans each through the planner, writes the changes and everything
they cause (phases, parents released or broken, flow counters, events) and returns them.

Every change to a job goes through it: claims, the outcomes of runs, the stall reaper,
flow cancels and the single-job changes of the API and the CLI (``store.jobs.change_job``).

Jobs are locked children before parents (descending id: a flow child's id always sorts
after its parent's), flows after jobs, so concurrent writers cannot deadlock on a tree.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from jobtrack.domain.records import Change, Job
from jobtrack.store.writer import (
    lock_jobs,
    persist_effects,
    write_if_unchanged,
    write_job_rows,
    write_phases,
)

#: A planner of ``jobtrack.domain.planner`` bound to its request: the change to make to
#: the job it is given, or None to leave that job as it is.
Plan = Callable[[Job], Change | None]


@dataclass(frozen=True, slots=True)
class Locked:
    """A job read under a lock this transaction already holds (the claim's
    ``FOR UPDATE SKIP LOCKED``): planned from it and written as planned."""

    job: Job


#: What ``apply`` is given for each job to change, by where its stored copy comes from:
#: a job id: locked and read now (children before parents);
#: ``Locked``: read under this transaction's lock already;
#: a ``Job``: a copy read earlier without a lock (decision 6): planned from it and written
#: only if the row's version has not moved since, else locked, read and planned again.
Target = str | Locked | Job


async def apply(
    conn: AsyncConnection,
    targets: Iterable[Target],
    plan: Plan,
    *,
    actor: str,
    now: datetime,
    tenant: str | None = None,
) -> list[Change]:
    """Plan each target through ``plan`` against its stored job and write the changes and
    everything they cause, in the caller's transaction; return every change written
    (no-ops left out, the parents' changes they caused included).

    ``tenant``: job ids of another tenant are not found (nor planned). A job id missing
    from the store is skipped: callers that need it tell from what ``plan`` was given.
    Each job is a target once."""
    held: list[Change] = []  # planned from rows this transaction holds locked
    seen: list[Change] = []  # planned from copies read without a lock
    ids: list[str] = []  # to lock and read now
    for target in targets:
        if isinstance(target, str):
            ids.append(target)
        elif isinstance(target, Locked):
            change = plan(target.job)
            if change is not None:
                held.append(change)
        else:
            change = plan(target)
            if change is None or change.is_noop:
                # refused or moot against the copy: what is stored decides
                ids.append(target.id)
            else:
                seen.append(change)
    fresh: list[Change] = []  # version-checked and written
    if seen:
        seen.sort(key=lambda c: c.before.id, reverse=True)  # children before parents
        written = await write_if_unchanged(conn, seen)
        for change in seen:
            if change.before.id in written:
                fresh.append(change)
            else:
                ids.append(change.before.id)
    if ids:
        for job in (await lock_jobs(conn, ids, tenant=tenant)).values():
            change = plan(job)
            if change is not None:
                held.append(change)
    held = [c for c in held if not c.is_noop]
    await write_job_rows(conn, held)
    await write_phases(conn, [*fresh, *held])
    return await persist_effects(conn, [*fresh, *held], actor=actor, now=now)
