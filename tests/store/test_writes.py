"""The store's one write operation, ``apply``: each kind of target planned from the copy it
names, on SQLite and PostgreSQL."""

from datetime import UTC, datetime, timedelta

from jobtrack.domain.ids import new_id
from jobtrack.domain.planner import plan_claim, plan_update
from jobtrack.domain.records import Change, Job, JobUpdate, Progress, new_job
from jobtrack.domain.status import JobStatus
from jobtrack.store import events as store_events
from jobtrack.store import jobs as store_jobs
from jobtrack.store.engine import Database
from jobtrack.store.writes import Locked, apply


def _now() -> datetime:
    return datetime.now(UTC)


async def _running(db: Database, n: int) -> list[Job]:
    """``n`` jobs claimed by worker w1."""
    now = _now()
    new = [new_job(id=new_id(), tenant="t", queue_name="q", name="n", now=now)
           for _ in range(n)]
    async with db.write() as conn:
        await store_jobs.insert_jobs(conn, new, actor="test")
        written = await apply(
            conn, [Locked(j) for j in new],
            lambda j: plan_claim(j, now, worker_id="w1", lease_until=now + timedelta(seconds=60)),
            actor="worker:w1", now=now)
    return [c.after for c in written]


async def _get(db: Database, job_id: str) -> Job:
    async with db.read() as conn:
        job = await store_jobs.get_job(conn, job_id, tenant=None)
    assert job is not None
    return job


async def test_a_copy_is_written_as_planned_unless_its_row_moved(db: Database) -> None:
    a, b = await _running(db, 2)
    now = _now()
    async with db.write() as conn:  # someone else reports progress on b meanwhile
        await apply(conn, [b.id], lambda j: plan_update(j, JobUpdate(progress=Progress(5, 10)),
                                                        now), actor="outside", now=now)
    given: list[tuple[str, int]] = []

    def complete(job: Job) -> Change:
        given.append((job.id, job.version))
        return plan_update(job, JobUpdate(status=JobStatus.COMPLETED, result={"v": 1}), now)

    async with db.write() as conn:
        written = await apply(conn, [a, b], complete, actor="worker:w1", now=now)
    # a's copy was current: planned once, from it; b's had moved: planned again from the
    # stored row, whose progress the write kept
    assert sorted(given) == sorted([(a.id, a.version), (b.id, b.version),
                                    (b.id, b.version + 1)])
    assert {c.after.id for c in written} == {a.id, b.id}
    stored_a, stored_b = await _get(db, a.id), await _get(db, b.id)
    assert stored_a.status is stored_b.status is JobStatus.COMPLETED
    assert stored_a.version == a.version + 1
    assert stored_b.progress == Progress(5, 10) and stored_b.version == b.version + 2
    async with db.read() as conn:
        history = await store_events.history(conn, b.id)
    assert [e.to_status for e in history] == ["pending", "running", "completed"]


async def test_ids_are_locked_and_planned_none_leaves_a_job_and_a_missing_id_is_skipped(
    db: Database,
) -> None:
    a, b = await _running(db, 2)
    now = _now()
    given: list[str] = []

    def fail_a(job: Job) -> Change | None:
        given.append(job.id)
        if job.id != a.id:
            return None
        return plan_update(job, JobUpdate(status=JobStatus.FAILED, error={"message": "x"}),
                           now)

    async with db.write() as conn:
        written = await apply(conn, [b.id, new_id(), a.id], fail_a, actor="test", now=now)
    assert sorted(given) == sorted([a.id, b.id])
    assert [c.after.id for c in written] == [a.id]
    assert (await _get(db, a.id)).status is JobStatus.FAILED
    assert (await _get(db, b.id)) == b  # untouched


async def test_a_tenant_does_not_reach_another_tenants_job(db: Database) -> None:
    (a,) = await _running(db, 1)
    given: list[Job] = []

    def note(job: Job) -> None:
        given.append(job)

    async with db.write() as conn:
        written = await apply(conn, [a.id], note, actor="test", now=_now(),
                              tenant="someone-else")
    assert written == [] and given == []
