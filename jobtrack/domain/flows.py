"""Flows: trees of jobs with one status and exact progress counters.

A flow keeps one counter per job status. Each job transition moves one unit from the
old status's counter to the new one, so progress is O(1) per transition and never needs
a scan of the tree; the flow's status is the contract's rule applied to the counters.
"""

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from jobtrack.domain.events import EventType, flow_event_type
from jobtrack.domain.ids import new_id
from jobtrack.domain.records import Job, new_job
from jobtrack.domain.status import TERMINAL, FlowStatus, JobStatus, flow_status, percentage
from jobtrack.errors import ValidationFailed


@dataclass(frozen=True, slots=True)
class FlowProgress:
    """How many of a flow's jobs are in each status."""

    total: int = 0
    pending: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def percentage(self) -> float:
        return percentage(self.completed, self.total)

    def counts(self) -> dict[JobStatus, int]:
        return {s: getattr(self, s.value) for s in JobStatus}

    def moved(self, deltas: Mapping[JobStatus, int]) -> "FlowProgress":
        return replace(self, **{s.value: getattr(self, s.value) + n for s, n in deltas.items()})


@dataclass(frozen=True, slots=True)
class Flow:
    """A flow: its identity, counters and the status they give."""

    id: str
    tenant: str
    flowname: str
    name: str
    queue_name: str
    root_job_id: str
    status: FlowStatus
    progress: FlowProgress
    created_at: datetime
    updated_at: datetime
    cancelled: bool = False
    result: Any = None
    error: Mapping[str, Any] | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class FlowChange:
    before: Flow
    after: Flow
    event_type: EventType | None


def transition_deltas(transitions: Sequence[tuple[JobStatus, JobStatus]]) -> Counter[JobStatus]:
    """Counter moves for a batch of job transitions in one flow."""
    deltas: Counter[JobStatus] = Counter()
    for before, after in transitions:
        if before is not after:
            deltas[before] -= 1
            deltas[after] += 1
    return deltas


def plan_flow(
    flow: Flow,
    deltas: Mapping[JobStatus, int],
    now: datetime,
    *,
    cancelled: bool | None = None,
    result: Any = None,
    error: Mapping[str, Any] | None = None,
) -> FlowChange:
    """Move the counters, derive the status, and say which event announces it."""
    progress = flow.progress.moved(deltas)
    is_cancelled = flow.cancelled if cancelled is None else cancelled
    status = flow_status(progress.counts(), cancelled_by_user=is_cancelled,
                         started=flow.started_at is not None)
    after = replace(flow, progress=progress, status=status, cancelled=is_cancelled,
                    updated_at=now)
    if status is FlowStatus.RUNNING and flow.started_at is None:
        after = replace(after, started_at=now)
    if status.value not in {s.value for s in TERMINAL}:
        # a retried job reopened the flow: the failure it had is no longer its outcome
        after = replace(after, completed_at=None, error=None)
    if status.value in {s.value for s in TERMINAL} and flow.status is not status:
        after = replace(after, completed_at=now)
        if status is FlowStatus.COMPLETED and result is not None:
            after = replace(after, result=result)
        if status is FlowStatus.FAILED and error is not None and flow.error is None:
            after = replace(after, error=dict(error))
    elif status is FlowStatus.FAILED and error is not None and flow.error is None:
        after = replace(after, error=dict(error))
    if after == replace(flow, updated_at=now) and not deltas:
        return FlowChange(flow, flow, None)
    return FlowChange(flow, after, flow_event_type(flow.status, status))


# --- building a tree ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlowNode:
    """One job of a flow as submitted (``FlowJob``, docs/reference/http-api.md), ``opts`` parsed."""

    name: str
    queue_name: str
    data: Mapping[str, Any] = field(default_factory=dict)
    children: Sequence["FlowNode"] = ()
    phases: Sequence[str] = ()
    priority: int = 0
    max_attempts: int | None = None
    run_at: datetime | None = None
    #: the job's own retry policy (see :attr:`jobtrack.domain.records.Job.retry`)
    retry: Mapping[str, float] | None = None


@dataclass(frozen=True, slots=True)
class PlannedJob:
    """A flow job with its id and its place in the tree decided, ready to insert."""

    id: str
    node: FlowNode
    parent_id: str | None
    depth: int
    children: int


def plan_tree(root: FlowNode, *, max_depth: int, max_jobs: int) -> list[PlannedJob]:
    """Give every node an id, parent-first order; refuse trees too deep or too large."""
    out: list[PlannedJob] = []
    stack: list[tuple[FlowNode, str | None, int, str]] = [(root, None, 1, "root")]
    while stack:
        node, parent, depth, path = stack.pop()
        if depth > max_depth:
            raise ValidationFailed(
                f"flow is deeper than the limit of {max_depth} levels (at {path})",
                details={"field": path, "maxDepth": max_depth},
            )
        if len(out) >= max_jobs:
            raise ValidationFailed(
                f"flow has more than the limit of {max_jobs} jobs",
                details={"field": "children", "maxJobs": max_jobs},
            )
        job_id = new_id()
        out.append(PlannedJob(job_id, node, parent, depth, len(node.children)))
        for i in range(len(node.children) - 1, -1, -1):
            stack.append((node.children[i], job_id, depth + 1, f"{path}.children[{i}]"))
    return out


def flow_jobs(
    planned: Sequence[PlannedJob], *, flow_id: str, tenant: str, now: datetime,
    default_max_attempts: int,
) -> list[Job]:
    """The jobs of a planned tree, each carrying ``flowId`` in its field and its data."""
    return [
        new_job(
            id=p.id,
            tenant=tenant,
            queue_name=p.node.queue_name,
            name=p.node.name,
            now=now,
            data={**p.node.data, "flowId": flow_id},
            phases=p.node.phases,
            priority=p.node.priority,
            retry=p.node.retry,
            run_at=p.node.run_at,
            max_attempts=p.node.max_attempts or default_max_attempts,
            flow_id=flow_id,
            parent_job_id=p.parent_id,
            children=p.children,
        )
        for p in planned
    ]


def new_flow(
    *, id: str, tenant: str, flowname: str, root: PlannedJob, total: int, now: datetime
) -> Flow:
    """A new flow: every job pending."""
    return Flow(
        id=id,
        tenant=tenant,
        flowname=flowname,
        name=root.node.name,
        queue_name=root.node.queue_name,
        root_job_id=root.id,
        status=FlowStatus.PENDING,
        progress=FlowProgress(total=total, pending=total),
        created_at=now,
        updated_at=now,
    )
