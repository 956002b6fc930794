"""Job rows: insert (bulk, idempotent), read, list with keyset pagination, and the
locked read-plan-write cycle every single-job change goes through."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, case, exists, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from jobtrack.domain.ids import is_id
from jobtrack.domain.records import Change, Job
from jobtrack.domain.status import JobStatus, PhaseStatus, Step
from jobtrack.errors import Conflict, NotFound, ValidationFailed
from jobtrack.store import bulk
from jobtrack.store.codec import (
    job_from_row,
    job_insert_values,
    jobs_from_joined_rows,
    phase_from_row,
    phase_values,
    select_jobs_with_phases,
)
from jobtrack.store.driver import DriverStatement
from jobtrack.store.events import created_row, insert_events
from jobtrack.store.tables import events, job_phases, jobs
from jobtrack.store.writes import apply

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from jobtrack.store.engine import Database
    from jobtrack.store.reader import Reads


@dataclass(frozen=True, slots=True)
class JobFilter:
    """Filters of ``GET /jobs``; ``tenant`` None means every tenant (admin)."""

    tenant: str | None
    status: JobStatus | None = None
    queue_name: str | None = None
    flow_id: str | None = None
    name: str | None = None
    #: ``queued``, ``delayed``, ``waiting-children``, ``paused`` or a running job's step
    #: (its current phase's name); see :func:`step_condition`
    step: str | None = None
    #: the time ``queued`` and ``delayed`` are judged at
    now: datetime | None = None


#: ``?step=`` value of a running job whose current phase is paused
PAUSED_STEP = PhaseStatus.PAUSED.value


def paused_condition() -> Any:
    """A running job whose current phase is paused."""
    return and_(jobs.c.status == JobStatus.RUNNING.value, exists().where(
        job_phases.c.job_id == jobs.c.id,
        job_phases.c.status == PhaseStatus.PAUSED.value))


def step_condition(step: str, now: datetime) -> Any:
    """Jobs at ``step``, judged from their fields (BullMQ's finer states): ``delayed`` is
    pending with ``runAt`` still ahead, ``queued`` pending and runnable now,
    ``waiting-children`` pending until its children complete, ``paused`` running with
    its current phase paused; any other value: running at that step (a phase's name)."""
    pending = jobs.c.status == JobStatus.PENDING.value
    if step == Step.WAITING_CHILDREN.value:
        return and_(pending, jobs.c.children_left > 0)
    if step == Step.DELAYED.value:
        return and_(pending, jobs.c.children_left == 0, jobs.c.run_at > now)
    if step == Step.QUEUED.value:
        return and_(pending, jobs.c.children_left == 0, jobs.c.run_at <= now)
    if step == PAUSED_STEP:
        return paused_condition()
    return and_(jobs.c.status == JobStatus.RUNNING.value, jobs.c.step == step)


async def flow_step_counts(conn: AsyncConnection, flow_id: str, *, now: datetime,
                           stuck_before: datetime) -> dict[str, int]:
    """How many jobs of the flow are delayed, waiting for children, paused, or stuck
    (running since before ``stuck_before``), by wire name: one aggregate query."""
    def n(cond: Any) -> Any:
        return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)

    row = (await conn.execute(select(
        n(step_condition(Step.DELAYED.value, now)),
        n(step_condition(Step.WAITING_CHILDREN.value, now)),
        n(paused_condition()),
        n(and_(jobs.c.status == JobStatus.RUNNING.value, jobs.c.started_at < stuck_before)),
    ).where(jobs.c.flow_id == flow_id))).one()
    return {"delayed": int(row[0]), "waitingChildren": int(row[1]), "paused": int(row[2]),
            "stuck": int(row[3])}


def not_found(job_id: str) -> NotFound:
    return NotFound(f"job {job_id!r} not found", details={"jobId": job_id})


async def insert_jobs(
    conn: AsyncConnection, new: Sequence[Job], *, actor: str
) -> list[tuple[Job, bool]]:
    """Insert new jobs with their phases and ``job.created`` events.

    A job whose idempotency key its tenant already used is not inserted: the first job
    comes back instead, with ``False`` beside it.
    """
    keyed = [j for j in new if j.idempotency_key is not None]
    existing: dict[tuple[str, str], Job] = {}
    inserted_ids: set[str] = {j.id for j in new}
    if keyed:
        dialect = conn.dialect.name
        ins = (postgresql.insert(jobs) if dialect == "postgresql" else sqlite.insert(jobs))
        stmt = ins.on_conflict_do_nothing(
            index_elements=[jobs.c.tenant, jobs.c.idempotency_key],
            index_where=jobs.c.idempotency_key.is_not(None),
        ).returning(jobs.c.id)
        inserted_ids = set()
        for job in keyed:  # one by one: RETURNING must say which rows went in
            key = (job.tenant, job.idempotency_key or "")
            for _ in range(3):
                got = await conn.scalar(stmt.values(job_insert_values(job)))
                if got is not None:
                    inserted_ids.add(str(got))
                    break
                first = await _by_idempotency_key(conn, *key)
                if first is not None:
                    existing[key] = first
                    break
                # the job holding the key went away between the two statements (deleted
                # by retention meanwhile): the key is free again, so try once more
            else:
                raise Conflict("idempotency key is being used by a concurrent request; "
                               "send the request again",
                               details={"idempotencyKey": job.idempotency_key})
        plain = [j for j in new if j.idempotency_key is None]
        if plain:
            await conn.execute(insert(jobs), [job_insert_values(j) for j in plain])
            inserted_ids.update(j.id for j in plain)
    elif bulk.wanted(conn, new):  # a batch: one statement / a driver-level executemany
        await bulk.insert(conn, jobs, [job_insert_values(j) for j in new])
    else:
        await conn.execute(insert(jobs), [job_insert_values(j) for j in new])
    fresh = [j for j in new if j.id in inserted_ids]
    phase_rows = [phase_values(j.id, i, p) for j in fresh for i, p in enumerate(j.phases)]
    if bulk.wanted(conn, phase_rows):
        await bulk.insert(conn, job_phases, phase_rows)
    elif phase_rows:
        await conn.execute(insert(job_phases), phase_rows)
    await insert_events(conn, [created_row(j, actor) for j in fresh])
    out: list[tuple[Job, bool]] = []
    for job in new:
        if job.id in inserted_ids:
            out.append((job, True))
        else:
            out.append((existing[(job.tenant, job.idempotency_key or "")], False))
    return out


async def insert_job(conn: AsyncConnection, job: Job, *, actor: str) -> None:
    """Insert one new job without an idempotency key, with its phases and its
    ``job.created`` event. On PostgreSQL this is ONE statement (the job, its phases and
    its event in a data-modifying ``WITH``), complete by itself: run on
    :meth:`Database.write_one <jobtrack.store.engine.Database.write_one>` it costs one
    round trip and one commit, what a bare ``INSERT`` costs."""
    if job.idempotency_key is not None:
        raise ValueError("a job with an idempotency key goes through insert_jobs")
    if conn.dialect.name != "postgresql":  # SQLite has no data-modifying WITH
        await insert_jobs(conn, [job], actor=actor)
        return
    job_row = job_insert_values(job)
    event_row = created_row(job, actor)
    phase_rows = [phase_values(job.id, i, p) for i, p in enumerate(job.phases)]
    stmt = _one_job_statement(tuple(job_row), tuple(event_row),
                              tuple(phase_rows[0]) if phase_rows else (), len(phase_rows))
    params = {f"j_{k}": v for k, v in job_row.items()}
    params.update((f"e_{k}", v) for k, v in event_row.items())
    for i, row in enumerate(phase_rows):
        params.update((f"p{i}_{k}", v) for k, v in row.items())
    await conn.execute(stmt, params)


@functools.cache
def _one_job_statement(job_columns: tuple[str, ...], event_columns: tuple[str, ...],
                       phase_columns: tuple[str, ...], phases: int) -> Any:
    """``WITH j AS (INSERT INTO jobs ...), p AS (INSERT INTO job_phases ...) INSERT INTO
    events ...``, built once per shape (columns written, number of phases); values bound
    by name at execution. Foreign keys are checked at the end of the statement, when the
    job row is there."""
    stmt = insert(events).values({c: bindparam(f"e_{c}") for c in event_columns})
    stmt = stmt.add_cte(insert(jobs).values(
        {c: bindparam(f"j_{c}") for c in job_columns}).cte("j"))
    if phases:
        stmt = stmt.add_cte(insert(job_phases).values(
            [{c: bindparam(f"p{i}_{c}") for c in phase_columns} for i in range(phases)]
        ).cte("p"))
    return stmt


async def _by_idempotency_key(conn: AsyncConnection, tenant: str, key: str) -> Job | None:
    rows = await conn.execute(
        select_jobs_with_phases()
        .where(jobs.c.tenant == tenant, jobs.c.idempotency_key == key)
        .order_by("p_position")
    )
    found = jobs_from_joined_rows(rows.mappings())
    return found[0] if found else None


#: built once, with bound parameters: the status read is the API's hottest path, and a
#: statement built per call costs a cache-key walk over its whole tree every time
_ONE_JOB = select_jobs_with_phases().where(jobs.c.id == bindparam("job_id"))
_ONE_JOB_OF_TENANT = _ONE_JOB.where(jobs.c.tenant == bindparam("tenant"))
_ONE_JOB = _ONE_JOB.order_by("p_position")
_ONE_JOB_OF_TENANT = _ONE_JOB_OF_TENANT.order_by("p_position")
#: the same statements, run on the driver connection (PostgreSQL: :func:`read_job`)
_ONE_JOB_DRIVER = DriverStatement(_ONE_JOB)
_ONE_JOB_OF_TENANT_DRIVER = DriverStatement(_ONE_JOB_OF_TENANT)


async def get_job(conn: AsyncConnection, job_id: str, *, tenant: str | None) -> Job | None:
    """One job with its phases, in one round trip; another tenant's job is None."""
    if not is_id(job_id):
        return None
    if tenant is None:
        rows = await conn.execute(_ONE_JOB, {"job_id": job_id})
    else:
        rows = await conn.execute(_ONE_JOB_OF_TENANT, {"job_id": job_id, "tenant": tenant})
    found = jobs_from_joined_rows(rows.mappings())
    return found[0] if found else None


async def read_job(db: Database, job_id: str, *, tenant: str | None) -> Job | None:
    """:func:`get_job` in a read of its own: the status read, the API's hottest path. On
    PostgreSQL the same statement runs on the driver connection (one round trip, rows
    decoded as SQLAlchemy would, folded by the same codec); on SQLite through
    :meth:`Database.read`."""
    if not is_id(job_id):
        return None
    if db.is_sqlite:
        async with db.read() as conn:
            return await get_job(conn, job_id, tenant=tenant)
    if tenant is None:
        rows = await _ONE_JOB_DRIVER.rows(db, {"job_id": job_id})
    else:
        rows = await _ONE_JOB_OF_TENANT_DRIVER.rows(db, {"job_id": job_id, "tenant": tenant})
    found = jobs_from_joined_rows(rows)
    return found[0] if found else None


async def list_jobs(
    conn: Reads, flt: JobFilter, *, limit: int, cursor: str | None = None
) -> tuple[list[Job], str | None]:
    """A page of jobs, newest first (ids are time-ordered), and the next page's cursor."""
    conds: list[Any] = []
    if flt.tenant is not None:
        conds.append(jobs.c.tenant == flt.tenant)
    if flt.status is not None:
        conds.append(jobs.c.status == flt.status.value)
    if flt.queue_name is not None:
        conds.append(jobs.c.queue_name == flt.queue_name)
    if flt.flow_id is not None:
        if not is_id(flt.flow_id):
            return [], None
        conds.append(jobs.c.flow_id == flt.flow_id)
    if flt.name is not None:
        conds.append(jobs.c.name == flt.name)
    if flt.step is not None:
        conds.append(step_condition(flt.step, flt.now or datetime.now(UTC)))
    if cursor is not None:
        if not is_id(cursor):
            raise ValidationFailed(
                "cursor is not valid: pass the nextCursor of a previous page",
                details={"field": "cursor", "value": cursor},
            )
        conds.append(jobs.c.id < cursor)
    rows = (
        await conn.execute(
            select(jobs).where(*conds).order_by(jobs.c.id.desc()).limit(limit + 1)
        )
    ).mappings().all()
    page = rows[:limit]
    with_phases = [r["id"] for r in page if r["phase_count"]]
    phases: dict[str, list[Any]] = {}
    if with_phases:
        prows = await conn.execute(
            select(job_phases)
            .where(job_phases.c.job_id.in_(with_phases))
            .order_by(job_phases.c.job_id, job_phases.c.position)
        )
        for p in prows.mappings():
            phases.setdefault(p["job_id"], []).append(phase_from_row(p, prefix=""))
    items = [job_from_row(r, phases.get(r["id"], ())) for r in page]
    next_cursor = page[-1]["id"] if len(rows) > limit and page else None
    return items, next_cursor


async def change_job(
    conn: AsyncConnection,
    job_id: str,
    plan: Callable[[Job], Change],
    *,
    tenant: str | None,
    actor: str,
    now: datetime,
) -> Job:
    """Lock one job, plan its change from what is really stored, and write it (``apply``
    with one target); answer the job after it.

    Under concurrent updates of one job each writer waits for the row lock and plans
    against the committed state, so exactly one transition wins per step.
    """
    if not is_id(job_id):
        raise not_found(job_id)
    planned: list[Change] = []

    def plan_one(job: Job) -> Change:
        planned.append(plan(job))
        return planned[-1]

    await apply(conn, [job_id], plan_one, tenant=tenant, actor=actor, now=now)
    if not planned:
        raise not_found(job_id)
    return planned[0].after
