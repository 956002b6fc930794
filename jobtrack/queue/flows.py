"""Flows from Python: describe a tree of jobs with :class:`FlowJob` and enqueue it with
``await app.enqueue_flow(flowname, root)``; the same tree ``POST /flows`` builds.

::

    flow = await app.enqueue_flow("ingest-pdf", FlowJob(
        "assemble", document="report.pdf",
        children=[FlowJob("extract_text", page=1), FlowJob("embed", _queue="gpu")],
    ))
    done = await wait_flow(app, flow.id, timeout=60)

A node names a task; its queue, phases and attempts default to what the task was
registered with (``@app.task(queue=..., phases=..., max_attempts=...)``), so children may
run on other queues and even in other processes. Keyword arguments are the job's data;
options take a leading underscore, as with :meth:`App.enqueue`: ``_queue``,
``_priority``, ``_delay`` (seconds or timedelta), ``_run_at``, ``_max_attempts``,
``_phases``, ``_opts`` (BullMQ's ``attempts``, ``delay``, ``backoff``). Every job gets
the flow's id in ``data["flowId"]`` (a task receives it only if its function takes
``flowId``).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from jobtrack.domain.flows import Flow
from jobtrack.domain.records import Job
from jobtrack.domain.spec import FLOW_OPTIONS, SubmissionNode, flow_names, resolve_tree, submission
from jobtrack.domain.status import FLOW_TERMINAL
from jobtrack.errors import ValidationFailed
from jobtrack.queue.polling import poll_until
from jobtrack.store import flows as store_flows
from jobtrack.store import keys as store_keys
from jobtrack.store import registry as store_registry

if TYPE_CHECKING:
    from jobtrack.queue.app import App



@dataclass(frozen=True, slots=True, init=False)
class FlowJob:
    """One job of a flow: a task name, its data, its options and the jobs that must
    complete before it runs."""

    name: str
    data: Mapping[str, Any]
    options: Mapping[str, Any]
    children: Sequence["FlowJob"] = field(default=())

    def __init__(self, name: str, /, *, children: Sequence["FlowJob"] = (),
                 **kwargs: Any) -> None:
        options = {k[1:]: v for k, v in kwargs.items() if k.startswith("_")}
        submission(name, {}, options, accepted=FLOW_OPTIONS)  # refuses unknown options now
        if not all(isinstance(c, FlowJob) for c in children):
            raise ValidationFailed(f"children of {name!r} must be FlowJob values")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "data", {k: v for k, v in kwargs.items()
                                          if not k.startswith("_")})
        object.__setattr__(self, "options", options)
        object.__setattr__(self, "children", tuple(children))


def to_submission(root: FlowJob) -> SubmissionNode:
    """The submitted tree of ``root`` (no recursion: a tree of any depth reaches the depth
    limit and its clear error)."""
    order: list[tuple[FlowJob, int | None]] = []
    stack: list[tuple[FlowJob, int | None]] = [(root, None)]
    while stack:  # pre-order: every parent before its children
        job, parent = stack.pop()
        order.append((job, parent))
        stack.extend((child, len(order) - 1) for child in reversed(job.children))
    kids: list[list[SubmissionNode]] = [[] for _ in order]
    built: SubmissionNode | None = None
    for index in range(len(order) - 1, -1, -1):  # children are built before parents
        job, parent = order[index]
        built = SubmissionNode(
            submission(job.name, job.data, job.options, accepted=FLOW_OPTIONS),
            kids[index][::-1])
        if parent is not None:
            kids[parent].append(built)
    assert built is not None
    return built


async def enqueue_flow(app: "App", flowname: str, root: FlowJob) -> Flow:
    """Store the flow and all its jobs in one transaction; the new flow (pending). Each
    job is resolved against its task's declaration, as :meth:`App.enqueue` does."""
    if not isinstance(root, FlowJob):
        raise ValidationFailed("the root of a flow must be a FlowJob")
    if not flowname.strip():
        raise ValidationFailed("a flow needs a flowname", details={"field": "flowname"})
    now = datetime.now(UTC)
    tree = to_submission(root)
    settings = app.settings
    await app.open()  # a new embedded database is migrated before it is read
    lookup = await store_registry.resolver(app.db, flow_names(tree), local=app.declared,
                                           cache=app.declarations)
    node = resolve_tree(tree, lookup, now=now, default_max_attempts=settings.default_max_attempts)
    async with app.db.write() as conn:
        await store_keys.ensure_tenant(conn, app.tenant, now)
        flow, _ = await store_flows.create_flow(
            conn, node, tenant=app.tenant, flowname=flowname, now=now,
            actor=f"app:{app.tenant}", max_depth=settings.flow_max_depth,
            max_jobs=settings.flow_max_jobs, default_max_attempts=settings.default_max_attempts,
        )
    return flow


async def get_flow(app: "App", flow_id: str) -> Flow | None:
    """The flow's summary (status, exact progress), or None if unknown to this tenant."""
    async with app.db.read() as conn:
        return await store_flows.get_flow(conn, flow_id, tenant=app.tenant)


async def flow_jobs(app: "App", flow_id: str) -> list[Job]:
    """Every job of the flow, parents before children; empty if unknown to this tenant."""
    async with app.db.read() as conn:
        if await store_flows.get_flow(conn, flow_id, tenant=app.tenant) is None:
            return []
        return await store_flows.flow_job_list(conn, flow_id)


async def wait_flow(app: "App", flow_id: str, timeout: float | None = None) -> Flow:
    """Poll the summary until the flow is completed, failed or cancelled (a failed or
    cancelled flow may still have jobs finishing); TimeoutError after ``timeout`` s."""
    def late(flow: Flow) -> str:
        p = flow.progress
        return (f"flow {flow_id} is still {flow.status.value} after {timeout} s "
                f"({p.completed}/{p.total} completed)")

    return await poll_until(
        lambda: get_flow(app, flow_id), lambda flow: flow.status in FLOW_TERMINAL,
        missing=lambda: store_flows.not_found(flow_id), late=late, timeout=timeout)
