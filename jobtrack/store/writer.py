"""The steps of the store's one write operation (``jobtrack.store.writes.apply``, the only
caller outside the store's tests): lock jobs, write job rows planned from locked rows or
only if unchanged since a copy, their phases, and what they cause in their flow (parents
released or cascaded, counters moved) with the events announcing all of it, in the
caller's transaction. Nothing above the store imports this module (import-linter).

Locks are taken children before parents (descending job id: a flow child's id always
sorts after its parent's), then flows, so concurrent writers cannot deadlock on a tree.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import BindParameter, bindparam, select, update

from jobtrack.domain._copy import replace
from jobtrack.domain.flows import Flow, plan_flow, transition_deltas
from jobtrack.domain.planner import plan_cascade, plan_children_done
from jobtrack.domain.records import Change, Job, Phase
from jobtrack.domain.status import JobStatus
from jobtrack.store import bulk
from jobtrack.store.codec import (
    flow_from_row,
    flow_update_values,
    job_update_values,
    jobs_from_joined_rows,
    phase_from_row,
    phase_values,
    select_jobs_with_phases,
)
from jobtrack.store.events import change_row, flow_row, insert_events
from jobtrack.store.tables import flows, job_phases, jobs

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

RowValues = Mapping[str, Any]
# Statements built once, their ids bound at execution (expanding IN): building
# ``column.in_([...])`` per call leaves a reference cycle of ten objects behind (see
# jobtrack/store/claim.py), for the cyclic GC only.
_IDS: BindParameter[str] = bindparam("ids", expanding=True)
_LOCK_JOBS = (select_jobs_with_phases().where(jobs.c.id.in_(_IDS))
              .order_by(jobs.c.id.desc(), "p_position").with_for_update(of=jobs))
_LOCK_TENANT_JOBS = (select_jobs_with_phases()
                     .where(jobs.c.id.in_(_IDS), jobs.c.tenant == bindparam("tenant"))
                     .order_by(jobs.c.id.desc(), "p_position").with_for_update(of=jobs))
_PHASES_OF = (select(job_phases).where(job_phases.c.job_id.in_(_IDS))
              .order_by(job_phases.c.job_id, job_phases.c.position))
_VERSIONS = select(jobs.c.id, jobs.c.version).where(jobs.c.id.in_(_IDS))
_LOCK_FLOWS = select(flows).where(flows.c.id.in_(_IDS)).order_by(flows.c.id).with_for_update()
_UPDATE_JOB = update(jobs).where(jobs.c.id == bindparam("_id"))
_UPDATE_FLOW = update(flows).where(flows.c.id == bindparam("_id"))
_UPDATE_PHASE = update(job_phases).where(
    job_phases.c.job_id == bindparam("_job_id"), job_phases.c.position == bindparam("_position")
)
_DECREMENT_CHILDREN = (
    update(jobs)
    .where(jobs.c.id == bindparam("_id"))
    .values(children_left=jobs.c.children_left - bindparam("_n"))
)


async def lock_jobs(
    conn: AsyncConnection, ids: Sequence[str], *, tenant: str | None = None
) -> dict[str, Job]:
    """Load and lock jobs (``FOR UPDATE`` on PostgreSQL), children before parents."""
    if not ids:
        return {}
    params: dict[str, Any] = {"ids": list(ids)}
    if tenant is not None:
        params["tenant"] = tenant
    query = _LOCK_JOBS if tenant is None else _LOCK_TENANT_JOBS
    rows = (await conn.execute(query, params)).mappings()
    found = {job.id: job for job in jobs_from_joined_rows(rows)}
    if conn.dialect.name == "postgresql" and any(j.phases for j in found.values()):
        # A row we had to wait for is re-read once its lock is ours, but the phases joined
        # to it come from the statement's older snapshot: read them again, now that the
        # job rows are locked (every phase writer locks its job row first).
        fresh = await _phases_of(conn, [j.id for j in found.values() if j.phases])
        found = {i: replace(j, phases=tuple(fresh.get(i, ()))) if j.phases else j
                 for i, j in found.items()}
    return found


async def _phases_of(conn: AsyncConnection, ids: Sequence[str]) -> dict[str, list[Phase]]:
    rows = await conn.execute(_PHASES_OF, {"ids": list(ids)})
    out: dict[str, list[Phase]] = {}
    for r in rows.mappings():
        out.setdefault(r["job_id"], []).append(phase_from_row(cast(RowValues, r), prefix=""))
    return out


async def persist(
    conn: AsyncConnection, changes: Sequence[Change], *, actor: str, now: datetime
) -> list[Change]:
    """Write ``changes``, planned from rows this transaction holds locked, and everything
    they cause; return every change written (``apply`` without the planning)."""
    pending = [c for c in changes if not c.is_noop]
    await write_job_rows(conn, pending)
    await write_phases(conn, pending)
    return await persist_effects(conn, pending, actor=actor, now=now)


async def persist_effects(
    conn: AsyncConnection, changes: Sequence[Change], *, actor: str, now: datetime
) -> list[Change]:
    """Write everything ``changes`` cause, their own job rows and phases being written
    already: parents released or broken (with what that causes in turn), flow counters
    and the events of it all; return ``changes`` and every change they caused."""
    written = [c for c in changes if not c.is_noop]
    pending = await _parent_effects(conn, written, now)
    while pending:  # a parent's change may in turn change its own parent
        await write_job_rows(conn, pending)
        await write_phases(conn, pending)
        written.extend(pending)
        pending = await _parent_effects(conn, pending, now)
    if not written:
        return written
    rows = [change_row(c, actor) for c in written if c.event_type is not None]
    rows.extend(await _move_flow_counters(conn, written, now, actor))
    await insert_events(conn, rows)
    return written


#: job fields stored in columns of another name; every other field is its own column
_FIELD_COLUMNS = {"progress": ("progress_done", "progress_total")}
#: bookkeeping columns every change writes
_ALWAYS = ("updated_at", "worker_id", "lease_expires_at", "version")


def _changed_values(changes: Sequence[Change]) -> list[dict[str, Any]]:
    """Each job's new column values, limited to the columns any change of the batch
    touches (a claim or a completion writes 7 of 15): less to send, bind and log."""
    names = set(_ALWAYS)
    for c in changes:
        for name in c.changed:
            names.update(_FIELD_COLUMNS.get(name, (name,)))
    rows = []
    for c in changes:
        values = job_update_values(c.after)
        rows.append({"id": c.after.id, **{k: v for k, v in values.items() if k in names}})
    return rows


async def write_if_unchanged(conn: AsyncConnection, changes: Sequence[Change]) -> set[str]:
    """Write the job rows of changes planned without a lock, each only if its row is
    still at the version it was planned from; return the ids written. Their phases and
    effects are the caller's to write (``write_phases``, ``persist_effects``); the others
    are to be locked and planned again."""
    if conn.dialect.name == "sqlite":
        # this transaction holds SQLite's write lock: what it reads now stays until commit
        got = await conn.execute(_VERSIONS, {"ids": [c.before.id for c in changes]})
        current = {str(i): v for i, v in got.all()}
        fresh = [c for c in changes if current.get(c.before.id) == c.before.version]
        await write_job_rows(conn, fresh)
        return {c.before.id for c in fresh}
    rows = _changed_values(changes)
    ids = await bulk.update(conn, jobs, ["id"], rows, version="version", returning="id")
    return {str(i) for i in ids}


async def write_job_rows(conn: AsyncConnection, changes: Sequence[Change]) -> None:
    """Write the job rows of ``changes`` planned from rows this transaction has locked."""
    rows = _changed_values(changes)
    if bulk.wanted(conn, rows):  # a batch: one statement / a driver-level executemany
        await bulk.update(conn, jobs, ["id"], rows)
    elif rows:
        await conn.execute(_UPDATE_JOB, [{"_id": r.pop("id"), **r} for r in rows])


async def write_phases(conn: AsyncConnection, changes: Sequence[Change]) -> None:
    """Write the phases ``changes`` moved."""
    phase_rows: list[dict[str, Any]] = []
    for c in changes:
        if "phases" not in c.changed:
            continue
        for pos, (old, new) in enumerate(zip(c.before.phases, c.after.phases, strict=True)):
            if old != new:
                values = phase_values(c.after.id, pos, new)
                del values["job_id"], values["position"], values["name"]
                phase_rows.append({"_job_id": c.after.id, "_position": pos, **values})
    if bulk.wanted(conn, phase_rows):
        await bulk.update(conn, job_phases, ["job_id", "position"],
                          [{"job_id": r.pop("_job_id"), "position": r.pop("_position"), **r}
                           for r in phase_rows])
    elif phase_rows:
        await conn.execute(_UPDATE_PHASE, phase_rows)


async def _parent_effects(
    conn: AsyncConnection, changes: Sequence[Change], now: datetime
) -> list[Change]:
    """Children that finished release or break their parents."""
    completed: Counter[str] = Counter()
    broken: dict[str, tuple[JobStatus, str]] = {}
    for c in changes:
        parent = c.after.parent_job_id
        if parent is None or c.transition is None or c.before.status is c.after.status:
            continue
        if c.after.status is JobStatus.COMPLETED:
            completed[parent] += 1
        elif c.after.status is JobStatus.FAILED:
            broken[parent] = (JobStatus.FAILED, f"child job {c.after.id} failed")
        elif c.after.status is JobStatus.CANCELLED and parent not in broken:
            broken[parent] = (JobStatus.CANCELLED, f"child job {c.after.id} was cancelled")
    if not completed and not broken:
        return []
    if completed:
        await conn.execute(
            _DECREMENT_CHILDREN,
            # descending, like every other job lock: children before parents
            [{"_id": p, "_n": n} for p, n in sorted(completed.items(), reverse=True)],
        )
    parents = await lock_jobs(conn, sorted(set(completed) | set(broken), reverse=True))
    out: list[Change] = []
    for job in parents.values():
        if job.id in broken:
            status, reason = broken[job.id]
            change = plan_cascade(job, now, status=status, reason=reason)
        elif job.children_left <= 0:
            change = plan_children_done(job, now)
        else:
            continue
        if not change.is_noop:
            out.append(change)
    return out


async def _move_flow_counters(
    conn: AsyncConnection, changes: Sequence[Change], now: datetime, actor: str
) -> list[dict[str, Any]]:
    """Move each touched flow's counters by its jobs' transitions: O(1) per transition."""
    moves: dict[str, list[tuple[JobStatus, JobStatus]]] = defaultdict(list)
    roots: dict[str, Job] = {}
    failures: dict[str, dict[str, Any]] = {}
    for c in changes:
        flow_id = c.after.flow_id
        if flow_id is None or c.before.status is c.after.status:
            continue
        moves[flow_id].append((c.before.status, c.after.status))
        if c.after.parent_job_id is None:
            roots[flow_id] = c.after
        if c.after.status is JobStatus.FAILED and flow_id not in failures:
            failures[flow_id] = {"message": f"job {c.after.id} ({c.after.name}) failed",
                                 "jobId": c.after.id, **dict(c.after.error or {})}
    if not moves:
        return []
    rows = await conn.execute(_LOCK_FLOWS, {"ids": sorted(moves)})
    events: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for row in rows.mappings():
        flow: Flow = flow_from_row(row)
        root = roots.get(flow.id)
        change = plan_flow(
            flow,
            transition_deltas(moves[flow.id]),
            now,
            cancelled=True if root is not None and root.status is JobStatus.CANCELLED else None,
            result=root.result if root is not None else None,
            error=failures.get(flow.id),
        )
        if change.event_type is None:
            continue
        updates.append({"_id": change.after.id, **flow_update_values(change.after)})
        events.append(flow_row(change.after, change.event_type, actor))
    if updates:
        await conn.execute(_UPDATE_FLOW, updates)
    return events
