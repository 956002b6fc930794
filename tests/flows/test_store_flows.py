"""Flows through the store and the writer, on SQLite and PostgreSQL: creation in bulk,
children first, exact counters at every step, failure and cancel cascades, limits."""

import pytest
from sqlalchemy import select

from jobtrack.domain.events import EventType
from jobtrack.domain.flows import FlowNode
from jobtrack.domain.planner import plan_cancel, plan_retry
from jobtrack.domain.records import JobUpdate
from jobtrack.domain.status import FlowStatus, JobStatus, Step
from jobtrack.errors import InvalidTransition, NotFound, ValidationFailed
from jobtrack.store import flows as store_flows
from jobtrack.store.engine import Database
from jobtrack.store.jobs import change_job
from jobtrack.store.tables import events
from support.flows import TENANT, assert_counters_exact, get_flow, job_list, make_flow, node
from support.store import claim, finish, now, report, row_counts

J = JobStatus


def tree() -> FlowNode:
    """root (q-root) <- [split (q-a) <- [chunk-1, chunk-2 (q-b)], notify (q-b)]"""
    return node("root", "q-root",
                node("split", "q-a", node("chunk-1", "q-b"), node("chunk-2", "q-b")),
                node("notify", "q-b"),
                data={"doc": 7})


async def test_create_stores_every_job_with_its_flow_id(db: Database) -> None:
    flow, created = await make_flow(db, tree())
    assert [j.name for j in created] == ["root", "split", "chunk-1", "chunk-2", "notify"]
    jobs = await job_list(db, flow.id)
    assert all(j.flow_id == flow.id and j.data["flowId"] == flow.id for j in jobs.values())
    assert jobs["root"].data["doc"] == 7
    assert jobs["root"].parent_job_id is None
    assert jobs["split"].parent_job_id == jobs["root"].id
    assert jobs["chunk-1"].parent_job_id == jobs["split"].id
    assert jobs["notify"].parent_job_id == jobs["root"].id
    assert (jobs["root"].step, jobs["split"].step) == (Step.WAITING_CHILDREN,) * 2
    assert jobs["chunk-1"].step == Step.QUEUED
    assert {j.queue_name for j in jobs.values()} == {"q-root", "q-a", "q-b"}
    stored = await assert_counters_exact(db, flow.id)
    assert (stored.status, stored.progress.total, stored.progress.pending) == (
        FlowStatus.PENDING, 5, 5)
    assert (stored.flowname, stored.name, stored.queue_name, stored.root_job_id) == (
        "ingest", "root", "q-root", jobs["root"].id)
    async with db.read() as conn:
        types = (await conn.scalars(select(events.c.type).where(
            events.c.flow_id == flow.id))).all()
    assert types.count(EventType.JOB_CREATED.value) == 5
    assert types.count(EventType.FLOW_CREATED.value) == 1


async def test_children_run_first_and_counters_are_exact_at_each_step(db: Database) -> None:
    flow, _ = await make_flow(db, tree())
    assert await claim(db, "q-root") == []
    assert await claim(db, "q-a") == []  # split waits for its chunks

    got = {j.name: j for j in await claim(db, "q-b", limit=2)}
    assert set(got) == {"chunk-1", "chunk-2"}
    f = await assert_counters_exact(db, flow.id)
    assert (f.status, f.progress.running, f.progress.pending) == (FlowStatus.RUNNING, 2, 3)
    assert f.started_at is not None

    await finish(db, got["chunk-1"].id, J.COMPLETED)
    f = await assert_counters_exact(db, flow.id)
    assert (f.progress.completed, f.progress.percentage) == (1, 20.0)
    assert (await job_list(db, flow.id))["split"].step == Step.WAITING_CHILDREN
    assert await claim(db, "q-a") == []

    # the last child completing releases its parent in the same transaction
    await finish(db, got["chunk-2"].id, J.COMPLETED)
    split = (await job_list(db, flow.id))["split"]
    assert (split.status, split.step, split.children_left) == (J.PENDING, Step.QUEUED, 0)
    f = await assert_counters_exact(db, flow.id)
    assert (f.progress.completed, f.progress.percentage) == (2, 40.0)

    assert [j.name for j in await claim(db, "q-a")] == ["split"]
    assert await claim(db, "q-root") == []
    await finish(db, split.id, J.COMPLETED)
    assert await claim(db, "q-root") == []  # notify is still pending
    (notify,) = await claim(db, "q-b")
    await report(db, notify.id, JobUpdate(status=J.COMPLETED, result={"sent": True}))
    (root,) = await claim(db, "q-root")
    f = await assert_counters_exact(db, flow.id)
    assert (f.status, f.progress.completed, f.progress.running) == (FlowStatus.RUNNING, 4, 1)
    assert f.progress.percentage == 80.0
    await finish(db, root.id, J.COMPLETED, result={"pages": 12})
    f = await assert_counters_exact(db, flow.id)
    assert (f.status, f.result, f.progress.percentage) == (
        FlowStatus.COMPLETED, {"pages": 12}, 100.0)
    assert f.completed_at is not None


async def test_a_waiting_parent_cannot_be_started_by_a_report(db: Database) -> None:
    flow, _ = await make_flow(db, tree())
    jobs = await job_list(db, flow.id)
    with pytest.raises(InvalidTransition, match="waiting for 2 child"):
        await report(db, jobs["split"].id, JobUpdate(status=J.RUNNING))
    with pytest.raises(InvalidTransition):
        await report(db, jobs["root"].id, JobUpdate(status=J.RUNNING))
    await assert_counters_exact(db, flow.id)


async def test_a_failed_child_fails_its_parent_chain_and_the_flow(db: Database) -> None:
    flow, _ = await make_flow(db, tree())
    chunks = {j.name: j for j in await claim(db, "q-b", limit=2)}
    await finish(db, chunks["chunk-1"].id, J.FAILED, error={"message": "bad pdf"})
    jobs = await job_list(db, flow.id)
    assert jobs["split"].status is J.FAILED
    assert jobs["split"].error is not None and jobs["split"].error["code"] == "child_failed"
    assert jobs["root"].status is J.FAILED
    assert jobs["notify"].status is J.PENDING  # a sibling branch is left alone
    f = await assert_counters_exact(db, flow.id)
    assert (f.status, f.progress.failed, f.progress.running) == (FlowStatus.FAILED, 3, 1)
    assert f.error is not None and f.error["jobId"] == chunks["chunk-1"].id
    assert f.error["message"] == "bad pdf"  # the root cause, not the cascade
    # the surviving sibling may still report; the flow stays failed
    await finish(db, chunks["chunk-2"].id, J.COMPLETED)
    f = await assert_counters_exact(db, flow.id)
    assert f.status is FlowStatus.FAILED


async def test_a_failure_with_attempts_left_is_a_retry_not_a_cascade(db: Database) -> None:
    flow, _ = await make_flow(db, node("root", "q1", node("child", "q2", max_attempts=2)))
    (child,) = await claim(db, "q2")
    await finish(db, child.id, J.FAILED, error={"message": "flaky"})
    jobs = await job_list(db, flow.id)
    assert (jobs["child"].status, jobs["child"].attempt) == (J.PENDING, 2)
    assert jobs["root"].status is J.PENDING
    f = await assert_counters_exact(db, flow.id)
    # every job is pending again, but the flow has started: it stays running
    assert f.status is FlowStatus.RUNNING


async def test_cancel_flow_cancels_pending_now_and_running_at_report(db: Database) -> None:
    flow, _ = await make_flow(db, tree())
    (chunk1,) = await claim(db, "q-b", limit=1)
    async with db.write() as conn:
        after = await store_flows.cancel_flow(conn, flow.id, tenant=TENANT, actor="test",
                                              now=chunk1.created_at)
    assert after.status is FlowStatus.CANCELLED and after.cancelled
    jobs = await job_list(db, flow.id)
    assert jobs["chunk-1"].status is J.RUNNING and jobs["chunk-1"].cancel_requested
    assert {jobs[n].status for n in ("root", "split", "chunk-2", "notify")} == {J.CANCELLED}
    f = await assert_counters_exact(db, flow.id)
    assert (f.progress.cancelled, f.progress.running) == (4, 1)
    # the worker acknowledges at its next report
    await report(db, chunk1.id, JobUpdate(status=J.CANCELLED))
    f = await assert_counters_exact(db, flow.id)
    assert (f.status, f.progress.cancelled) == (FlowStatus.CANCELLED, 5)
    async with db.read() as conn:
        types = (await conn.scalars(select(events.c.type).where(
            events.c.flow_id == flow.id, events.c.job_id.is_(None)))).all()
    assert types.count(EventType.FLOW_CANCELLED.value) == 1


async def test_cancel_flow_of_another_tenant_is_not_found(db: Database) -> None:
    flow, _ = await make_flow(db, tree())
    async with db.write() as conn:
        with pytest.raises(NotFound):
            await store_flows.cancel_flow(conn, flow.id, tenant="other", actor="t",
                                          now=flow.created_at)
    async with db.read() as conn:
        assert await store_flows.get_flow(conn, flow.id, tenant="other") is None
    assert (await get_flow(db, flow.id)).status is FlowStatus.PENDING


@pytest.mark.parametrize(("depth", "width", "message"), [
    (4, 1, "deeper than the limit of 3 levels (at root.children[0].children[0].children[0])"),
    (1, 9, "more than the limit of 5 jobs"),
])
async def test_limits_refuse_the_whole_tree(
    db: Database, depth: int, width: int, message: str
) -> None:
    before = await row_counts(db)
    root = node("leaf", "q")
    for level in range(depth - 1):
        root = node(f"n{level}", "q", root)
    root = node("root", "q", *([root] + [node(f"w{i}", "q") for i in range(width - 1)]))
    if depth > 1:
        root = root.children[0]
    with pytest.raises(ValidationFailed) as err:
        await make_flow(db, root, max_depth=3, max_jobs=5)
    assert message in err.value.message
    assert await row_counts(db) == before


async def test_list_flows_filters_and_pages(db: Database) -> None:
    made = [await make_flow(db, node("r", "q"), flowname=name)
            for name in ("a", "b", "a", "a")]
    (done,) = await claim(db, "q", limit=1)
    await finish(db, done.id, J.COMPLETED)
    async with db.read() as conn:
        page, cursor = await store_flows.list_flows(conn, tenant=TENANT, limit=2,
                                                    flowname="a")
        assert [f.id for f in page] == [made[3][0].id, made[2][0].id]
        rest, end = await store_flows.list_flows(conn, tenant=TENANT, limit=2,
                                                 flowname="a", cursor=cursor)
        assert ([f.id for f in rest], end) == ([made[0][0].id], None)
        completed, _ = await store_flows.list_flows(conn, tenant=TENANT, limit=10,
                                                    status=FlowStatus.COMPLETED)
        assert [f.id for f in completed] == [made[0][0].id]
        other, _ = await store_flows.list_flows(conn, tenant="other", limit=10)
        assert other == []


async def flow_event_statuses(db: Database, flow_id: str) -> list[tuple[str, str]]:
    """(type, status) of every event announcing the flow itself, oldest first."""
    async with db.read() as conn:
        rows = await conn.execute(select(events.c.type, events.c.data).where(
            events.c.flow_id == flow_id, events.c.job_id.is_(None)).order_by(events.c.id))
        return [(t, d["status"]) for t, d in rows]


async def test_a_flow_between_two_jobs_stays_running(db: Database) -> None:
    """2 of 4 jobs completed, the next not claimed yet: the flow has started (running),
    and no event ever announces it going back to pending."""
    flow, _ = await make_flow(db, node("root", "q-root", node("a", "q-a"), node("b", "q-b"),
                                       node("c", "q-c")))
    for queue in ("q-a", "q-b"):
        (job,) = await claim(db, queue)
        assert (await assert_counters_exact(db, flow.id)).status is FlowStatus.RUNNING
        await finish(db, job.id, J.COMPLETED)
        f = await assert_counters_exact(db, flow.id)
        assert f.status is FlowStatus.RUNNING, f.progress
    assert (f.progress.completed, f.progress.pending, f.progress.running) == (2, 2, 0)
    (c,) = await claim(db, "q-c")
    await finish(db, c.id, J.COMPLETED)
    (root,) = await claim(db, "q-root")
    await finish(db, root.id, J.COMPLETED)
    seen = await flow_event_statuses(db, flow.id)
    assert seen[0] == (EventType.FLOW_CREATED.value, FlowStatus.PENDING.value)
    assert [s for _, s in seen[1:-1]] == [FlowStatus.RUNNING.value] * (len(seen) - 2)
    assert seen[-1] == (EventType.FLOW_COMPLETED.value, FlowStatus.COMPLETED.value)


async def test_a_flow_whose_jobs_all_ended_with_a_cancel_is_cancelled(db: Database) -> None:
    """One job cancelled on its own (not the flow), the rest completed or cancelled with
    it, none failed: the flow is finished (cancelled), never running forever."""
    flow, _ = await make_flow(db, node("root", "q-root", node("a", "q-a"), node("b", "q-b")))
    (a,) = await claim(db, "q-a")
    await finish(db, a.id, J.COMPLETED)
    b = (await job_list(db, flow.id))["b"]
    async with db.write() as conn:
        await change_job(conn, b.id, lambda j: plan_cancel(j, now()), tenant=None,
                         actor="test", now=now())
    jobs = await job_list(db, flow.id)
    assert jobs["root"].status is J.CANCELLED  # it can never run now
    f = await assert_counters_exact(db, flow.id)
    assert f.status is FlowStatus.CANCELLED
    assert f.completed_at is not None
    assert (await flow_event_statuses(db, flow.id))[-1] == (
        EventType.FLOW_CANCELLED.value, FlowStatus.CANCELLED.value)


async def test_a_flow_reopened_by_a_retry_drops_the_error_of_its_failure(db: Database) -> None:
    flow, _ = await make_flow(db, node("root", "q-root"))
    (root,) = await claim(db, "q-root")
    await finish(db, root.id, J.FAILED, error={"message": "boom"})
    f = await assert_counters_exact(db, flow.id)
    assert f.status is FlowStatus.FAILED and f.error is not None
    async with db.write() as conn:
        await change_job(conn, root.id, lambda j: plan_retry(j, now()), tenant=None,
                         actor="test", now=now())
    (root,) = await claim(db, "q-root")
    f = await assert_counters_exact(db, flow.id)
    assert (f.status, f.error, f.completed_at) == (FlowStatus.RUNNING, None, None)
    await finish(db, root.id, J.COMPLETED, result=1)
    f = await assert_counters_exact(db, flow.id)
    assert (f.status, f.error, f.result) == (FlowStatus.COMPLETED, None, 1)
