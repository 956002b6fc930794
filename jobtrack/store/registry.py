"""The task registry: the workers that recorded themselves and the tasks they declared.

A worker records itself and its task declarations when it starts (upserts), refreshes
its row with the heartbeat it already keeps its leases with, and deletes it at a clean
shutdown. A worker whose heartbeat stopped (killed) is shown ``stale`` after
``STALE_LEASES`` lease periods and deleted after ``FORGET_LEASES`` (by any other worker's
heartbeat); the tasks it declared stay: they describe code, not a process.

Tasks are global, not per tenant: a worker claims every tenant's jobs, so its functions
are what any tenant's job of that name runs. A declaration is keyed by task name and
queue; a worker re-declaring it overwrites it (the newest code wins).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from jobtrack.domain._copy import replace
from jobtrack.domain.records import Job, Phase
from jobtrack.domain.registry import TaskRecord, WorkerInfo
from jobtrack.domain.spec import Submission, TaskDeclaration, pick
from jobtrack.domain.status import JobStatus
from jobtrack.store.codec import phase_values
from jobtrack.store.tables import job_phases, jobs, tasks, workers

if TYPE_CHECKING:
    import asyncio

    from sqlalchemy.ext.asyncio import AsyncConnection

    from jobtrack.store.engine import Database
    from jobtrack.store.reader import Reads

# built once, its names bound at execution: this runs with every enqueue (see
# jobtrack/store/claim.py on why statements are not rebuilt per call)
_DECLARATIONS = (select(tasks).where(tasks.c.name.in_(bindparam("names", expanding=True)))
                 .order_by(tasks.c.name, tasks.c.queue))


def _insert(conn: AsyncConnection) -> Any:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def _task_values(task: TaskDeclaration, worker_id: str, now: datetime) -> dict[str, Any]:
    return {
        "name": task.name, "queue": task.queue, "phases": list(task.phases),
        "max_attempts": task.max_attempts, "retry": dict(task.retry), "timeout": task.timeout,
        "parameters": list(task.parameters), "required": list(task.required),
        "accepts_any": task.accepts_any, "updated_at": now, "worker_id": worker_id,
    }


async def register_worker(
    conn: AsyncConnection, worker: WorkerInfo, declared: Sequence[TaskDeclaration],
    now: datetime,
) -> None:
    """Record (or refresh) a worker and upsert the tasks it declares."""
    values = {"id": worker.id, "host": worker.host, "pid": worker.pid,
              "queues": list(worker.queues), "concurrency": worker.concurrency,
              "version": worker.version, "started_at": worker.started_at,
              "heartbeat_at": now}
    stmt = _insert(conn)(workers).values(values)
    await conn.execute(stmt.on_conflict_do_update(
        index_elements=[workers.c.id],
        set_={k: stmt.excluded[k] for k in values if k != "id"}))
    if declared:
        rows = [_task_values(t, worker.id, now) for t in declared]
        up = _insert(conn)(tasks)
        await conn.execute(up.on_conflict_do_update(
            index_elements=[tasks.c.name, tasks.c.queue],
            set_={k: up.excluded[k] for k in rows[0] if k not in ("name", "queue")}), rows)


async def heartbeat(conn: AsyncConnection, worker_id: str, now: datetime,
                    forget_before: datetime) -> bool:
    """Refresh a worker's heartbeat and delete workers silent since ``forget_before``;
    False when this worker's row is gone (deleted as stale): it must register again."""
    await conn.execute(delete(workers).where(workers.c.heartbeat_at < forget_before,
                                             workers.c.id != worker_id))
    done = await conn.execute(update(workers).where(workers.c.id == worker_id)
                              .values(heartbeat_at=now))
    return bool(done.rowcount)


async def remove_worker(conn: AsyncConnection, worker_id: str) -> None:
    """Forget a worker that shut down cleanly (its task declarations stay)."""
    await conn.execute(delete(workers).where(workers.c.id == worker_id))


async def list_workers(conn: Reads, *, now: datetime,
                       stale_after: timedelta) -> list[WorkerInfo]:
    """Every recorded worker, oldest first, with the jobs it runs now."""
    running = (select(jobs.c.worker_id, func.count().label("n"))
               .where(jobs.c.status == JobStatus.RUNNING.value, jobs.c.worker_id.is_not(None))
               .group_by(jobs.c.worker_id).subquery())
    rows = await conn.execute(
        select(workers, func.coalesce(running.c.n, 0).label("running"))
        .outerjoin(running, running.c.worker_id == workers.c.id)
        .order_by(workers.c.started_at, workers.c.id))
    return [
        WorkerInfo(id=r["id"], host=r["host"], pid=r["pid"], queues=tuple(r["queues"]),
                   concurrency=r["concurrency"], version=r["version"],
                   started_at=r["started_at"], heartbeat_at=r["heartbeat_at"],
                   running=int(r["running"]), stale=r["heartbeat_at"] < now - stale_after)
        for r in rows.mappings()
    ]


def _record(r: Mapping[Any, Any]) -> TaskRecord:
    return TaskRecord(
        declaration=TaskDeclaration(
            name=r["name"], queue=r["queue"], phases=tuple(r["phases"]),
            max_attempts=r["max_attempts"], retry=dict(r["retry"]), timeout=r["timeout"],
            parameters=tuple(r["parameters"]), required=tuple(r["required"]),
            accepts_any=bool(r["accepts_any"])),
        updated_at=r["updated_at"], worker_id=r["worker_id"])


async def list_tasks(conn: Reads) -> list[TaskRecord]:
    """Every recorded task declaration, by name then queue."""
    rows = await conn.execute(select(tasks).order_by(tasks.c.name, tasks.c.queue))
    return [_record(r) for r in rows.mappings()]


async def declarations(conn: AsyncConnection,
                       names: Iterable[str]) -> dict[str, list[TaskDeclaration]]:
    """The recorded declarations of these task names (each name: one per queue)."""
    wanted = sorted(set(names))
    out: dict[str, list[TaskDeclaration]] = {}
    if not wanted:
        return out
    rows = await conn.execute(_DECLARATIONS, {"names": wanted})
    for r in rows.mappings():
        out.setdefault(r["name"], []).append(_record(r).declaration)
    return out


class DeclarationCache:
    """Task declarations a process has read, trusted for ``ttl`` seconds per task name
    (0: read with every enqueue), so that enqueueing costs no extra round trip on its hot
    path. The price is a short delay: a declaration a worker records or changes applies
    to this process's enqueues at most ``ttl`` seconds later (a job created meanwhile
    still gets its declared phases from the worker that runs it)."""

    #: most task names remembered (the table is cleared beyond)
    MAX_NAMES: Final = 10_000

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[float, list[TaskDeclaration]]] = {}
        #: reads in flight, by task name: concurrent enqueues of a name not known recently
        #: enough share one read instead of taking a connection each
        self._inflight: dict[str, asyncio.Future[dict[str, list[TaskDeclaration]]]] = {}

    async def fetch(self, db: Database,
                    names: Iterable[str]) -> dict[str, list[TaskDeclaration]]:
        """The declarations of these names, read (one read) for those not known recently
        enough."""
        import asyncio  # (here: the CLI's listings import this module, and need no loop)

        now = self._clock()
        out: dict[str, list[TaskDeclaration]] = {}
        reads: dict[str, asyncio.Future[dict[str, list[TaskDeclaration]]]] = {}
        fresh: list[str] = []
        for name in set(names):
            hit = self._entries.get(name)
            if hit is not None and hit[0] > now:
                out[name] = hit[1]
            elif name in self._inflight:
                reads[name] = self._inflight[name]
            else:
                fresh.append(name)
        if fresh:
            task = asyncio.ensure_future(self._read(db, fresh))
            for name in fresh:
                reads[name] = self._inflight[name] = task
            task.add_done_callback(lambda done: self._settle(fresh, done))
        for name, read in reads.items():
            # shielded: an enqueue that gives up does not cancel the read others wait for
            out[name] = (await asyncio.shield(read)).get(name, [])
        return out

    async def _read(self, db: Database, names: list[str]) -> dict[str, list[TaskDeclaration]]:
        got = await read_declarations(db, names)
        if len(self._entries) + len(names) > self.MAX_NAMES:
            self._entries.clear()
        if self.ttl > 0:
            until = self._clock() + self.ttl
            for name in names:
                self._entries[name] = (until, got.get(name, []))
        return got

    def _settle(self, names: list[str], done: asyncio.Future[Any]) -> None:
        for name in names:
            if self._inflight.get(name) is done:
                del self._inflight[name]


async def read_declarations(db: Database,
                            names: Iterable[str]) -> dict[str, list[TaskDeclaration]]:
    """:func:`declarations` in a read of its own (none when no name is asked for)."""
    wanted = list(names)
    if not wanted:
        return {}
    async with db.read() as conn:
        return await declarations(conn, wanted)


async def resolver(
    db: Database, names: Iterable[str],
    local: Callable[[str], TaskDeclaration | None] = lambda _name: None,
    cache: DeclarationCache | None = None,
) -> Callable[[Submission], TaskDeclaration | None]:
    """How submissions of these task names find their declaration: ``local`` (a task
    registered in this process), else the one workers recorded here (by name and queue:
    :func:`~jobtrack.domain.spec.pick`; through ``cache`` if given), else none
    (undeclared: taken as submitted). Read before the job's write transaction, so that
    group commit (``jobtrack.store.group_commit``) shares it."""
    names = set(names)
    mine = {n: local(n) for n in names}
    others = [n for n, d in mine.items() if d is None]
    recorded = (await cache.fetch(db, others) if cache is not None
                else await read_declarations(db, others))
    seen: dict[tuple[str, str | None], TaskDeclaration | None] = {}

    def lookup(sub: Submission) -> TaskDeclaration | None:
        key = (sub.name, sub.queue)
        if key not in seen:
            found = mine.get(sub.name)
            seen[key] = found if found is not None else pick(
                sub.name, sub.queue, recorded.get(sub.name, ()))
        return seen[key]

    return lookup


async def adopt_phases(conn: AsyncConnection, claimed: Sequence[Job],
                       phases_of: Mapping[str, Sequence[str]]) -> list[Job]:
    """Give claimed jobs stored without phases the phases their task declares (``phases_of``
    by task name), so a job created before its task was declared runs its phases; in
    the claim's transaction, before the task sees the job."""
    out: list[Job] = []
    rows: list[dict[str, Any]] = []
    counts: list[dict[str, Any]] = []
    for job in claimed:
        declared = phases_of.get(job.name, ())
        if job.phases or not declared:
            out.append(job)
            continue
        adopted = tuple(Phase(name=p) for p in declared)
        rows.extend(phase_values(job.id, i, p) for i, p in enumerate(adopted))
        counts.append({"_id": job.id, "phase_count": len(adopted)})
        out.append(replace(job, phases=adopted))
    if rows:
        await conn.execute(insert(job_phases), rows)
        await conn.execute(update(jobs).where(jobs.c.id == bindparam("_id"))
                           .values(phase_count=bindparam("phase_count")), counts)
    return out
