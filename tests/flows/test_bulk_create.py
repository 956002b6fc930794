"""A large flow is created in one transaction (by COPY on PostgreSQL): every row and
``job.created`` event is the same as the row-by-row path would write."""

from sqlalchemy import func, select

from jobtrack.domain.events import EventType
from jobtrack.domain.status import JobStatus, Step
from jobtrack.domain.wire import job_to_wire
from jobtrack.store.codec import jobs_from_joined_rows, select_jobs_with_phases
from jobtrack.store.engine import Database
from jobtrack.store.flows import COPY_THRESHOLD
from jobtrack.store.tables import events, jobs
from support.flows import assert_counters_exact, make_flow, node
from support.store import claim

AWKWARD = {"text": "tab\there\nnew line \\ backslash \"quotes\" ünïcødé ✓", "n": [1, 2.5, None],
           "nested": {"deep": {"er": True}}}


async def test_a_large_flow_stores_every_row_and_event_as_planned(db: Database) -> None:
    n = COPY_THRESHOLD + 20
    kids = [node(f"c{i}", "bulk", data={**AWKWARD, "i": i},
                 phases=("load", "index") if i % 3 == 0 else (), priority=i % 5)
            for i in range(n)]
    flow, created = await make_flow(db, node("root", "bulk-root", *kids, data=AWKWARD))
    async with db.read() as conn:
        rows = await conn.execute(select_jobs_with_phases().where(jobs.c.flow_id == flow.id)
                                  .order_by(jobs.c.id, "p_position"))
        stored = jobs_from_joined_rows(rows.mappings())
        created_events = (await conn.execute(
            select(events.c.job_id, events.c.data, events.c.to_status, events.c.step)
            .where(events.c.flow_id == flow.id, events.c.type == EventType.JOB_CREATED.value)
        )).all()
        flow_events = await conn.scalar(select(func.count()).select_from(events).where(
            events.c.type == EventType.FLOW_CREATED.value, events.c.flow_id == flow.id))
    assert [job_to_wire(j) for j in stored] == [job_to_wire(j) for j in created]
    assert stored[0].data["text"] == AWKWARD["text"]
    assert stored[1].phases[1].name == "index"
    assert stored[0].children_left == n and stored[0].step == Step.WAITING_CHILDREN
    by_job = {job_id: (data, to, step) for job_id, data, to, step in created_events}
    assert len(by_job) == n + 1 and flow_events == 1
    for job in created:
        assert by_job[job.id] == (job_to_wire(job), JobStatus.PENDING.value, job.step)
    f = await assert_counters_exact(db, flow.id)
    assert f.progress.total == n + 1
    # the stored children are claimable (partial claim index predicate holds)
    got = await claim(db, "bulk", limit=10)
    assert len(got) == 10 and all(j.status is JobStatus.RUNNING for j in got)
    assert await claim(db, "bulk-root") == []
