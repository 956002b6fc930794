"""Flows made, read and recounted through the real store (their jobs are driven with
``support.store``)."""

from typing import Any

from sqlalchemy import func, select

from jobtrack.domain.flows import Flow, FlowNode
from jobtrack.domain.records import Job
from jobtrack.domain.status import JobStatus, flow_status
from jobtrack.store import flows as store_flows
from jobtrack.store.engine import Database
from jobtrack.store.tables import jobs
from support.store import now

TENANT = "t1"


def node(name: str, queue: str, *children: FlowNode, **kwargs: Any) -> FlowNode:
    """A flow node, children given positionally."""
    return FlowNode(name=name, queue_name=queue, children=list(children), **kwargs)


async def make_flow(
    db: Database, root: FlowNode, *, tenant: str = TENANT, flowname: str = "ingest",
    max_depth: int = 32, max_jobs: int = 200_000,
) -> tuple[Flow, list[Job]]:
    async with db.write() as conn:
        return await store_flows.create_flow(
            conn, root, tenant=tenant, flowname=flowname, now=now(), actor="test",
            max_depth=max_depth, max_jobs=max_jobs, default_max_attempts=1,
        )


async def get_flow(db: Database, flow_id: str) -> Flow:
    async with db.read() as conn:
        flow = await store_flows.get_flow(conn, flow_id, tenant=None)
    assert flow is not None
    return flow


async def job_list(db: Database, flow_id: str) -> dict[str, Job]:
    async with db.read() as conn:
        return {j.name: j for j in await store_flows.flow_job_list(conn, flow_id)}


async def recount(db: Database, flow_id: str) -> dict[JobStatus, int]:
    """Job statuses of a flow counted from the job rows themselves."""
    async with db.read() as conn:
        rows = await conn.execute(
            select(jobs.c.status, func.count()).where(jobs.c.flow_id == flow_id)
            .group_by(jobs.c.status)
        )
        counted = {JobStatus(s): int(n) for s, n in rows}
    return {s: counted.get(s, 0) for s in JobStatus}


async def assert_counters_exact(db: Database, flow_id: str) -> Flow:
    """The stored counters and status equal a recount of the flow's job rows."""
    flow = await get_flow(db, flow_id)
    counted = await recount(db, flow_id)
    assert flow.progress.counts() == counted, (flow.progress, counted)
    assert flow.progress.total == sum(counted.values())
    assert flow.status == flow_status(counted, cancelled_by_user=flow.cancelled,
                                      started=flow.started_at is not None)
    return flow
