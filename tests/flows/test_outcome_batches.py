"""A worker's batch of outcomes in one flow, some written from the worker's copy and some
planned again from the locked row (their row moved meanwhile): the flow's counters move
once for the whole batch, after every job of it is written."""

from sqlalchemy import func, select

from jobtrack.domain.records import JobUpdate, Progress
from jobtrack.domain.status import JobStatus
from jobtrack.queue.outcomes import Outcome, write_outcomes
from jobtrack.store.engine import Database
from jobtrack.store.tables import events
from support.flows import assert_counters_exact, make_flow, node
from support.store import claim, report


async def _flow_events(db: Database, flow_id: str) -> int:
    async with db.read() as conn:
        return int(await conn.scalar(
            select(func.count()).select_from(events)
            .where(events.c.flow_id == flow_id, events.c.job_id.is_(None))) or 0)


async def test_a_batch_moves_its_flow_once_whichever_copy_each_outcome_was_planned_from(
    db: Database,
) -> None:
    flow, _ = await make_flow(db, node("root", "q", node("a", "q"), node("b", "q"),
                                       node("c", "q")))
    a, b, c = await claim(db, "q")
    # someone else reports progress on b while it runs: the worker's copy of b is stale
    await report(db, b.id, JobUpdate(progress=Progress(1, 2)))
    before = await _flow_events(db, flow.id)
    outcomes = [Outcome(j, JobStatus.COMPLETED, seen=j) for j in (a, b, c)]
    written = await write_outcomes(db, outcomes, worker_id="w1", actor="worker:w1")
    assert written.discarded == 0
    assert {ch.after.id for ch in written.changes} >= {a.id, b.id, c.id}
    assert await _flow_events(db, flow.id) == before + 1
    after = await assert_counters_exact(db, flow.id)
    assert after.progress.completed == 3
