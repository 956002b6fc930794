"""Pydantic models of the ``/flows`` routes (``docs/reference/http-api.md``, "Flows").

A flow is submitted as its root job plus ``flowname``; every job of the tree is a
``FlowJob`` ``{name, queueName, data?, opts?, children?}``. The whole tree is validated
before anything is stored, so a malformed tree (a missing ``queueName`` anywhere, a bad
type, an unknown option) is refused whole with a 422 naming the path of the bad field.
"""

from datetime import datetime
from typing import Annotated, Any, Final, Literal, Self

from pydantic import Field, StrictInt, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from jobtrack.api.fields import (
    WHOLE,
    ApiModel,
    Finite,
    InputModel,
    JsonObject,
    JsonValue,
    Name,
    PhaseNames,
    StatusIn,
    UtcDatetime,
)
from jobtrack.api.schemas import (
    BullmqBackoff,
    BullmqMs,
    ErrorIn,
    JobPublic,
    ProgressInput,
    StatusReport,
    refuse_unsupported,
)
from jobtrack.domain.spec import Submission, SubmissionNode
from jobtrack.domain.status import FlowStatus

#: the ``opts`` of a flow job, as spelled on the wire (``attempts`` and ``delay``: BullMQ's)
FLOW_OPTS: Final = ("priority", "maxAttempts", "delaySeconds", "runAt", "phases",
                    "attempts", "delay", "backoff")


class FlowJobOpts(InputModel):
    """Options of one job of a flow. ``runAt`` and ``delaySeconds`` are alternatives;
    a parent's start time counts from when its last child completes at the earliest.
    Beside these, BullMQ's ``attempts``, ``delay`` (milliseconds) and ``backoff`` are taken (see
    :func:`jobtrack.domain.spec.apply_bullmq`); ``priority`` here is jobtrack's."""

    priority: Annotated[StrictInt, Field(ge=-1_000_000, le=1_000_000), WHOLE] = Field(
        0, description="higher runs first within its queue")
    max_attempts: Annotated[StrictInt, Field(ge=1, le=1000), WHOLE] | None = Field(
        None, description="attempts before the job fails for good (server default if absent)")
    delay_seconds: Annotated[Finite, Field(ge=0, le=315_360_000)] | None = Field(
        None, description="not before this many seconds from now")
    run_at: UtcDatetime | None = Field(None, description="not before (ISO 8601; UTC if naive)")
    phases: PhaseNames | None = Field(
        None, description="ordered phase names, unique")
    attempts: Annotated[StrictInt, Field(ge=1, le=1000), WHOLE] | None = Field(
        None, description="BullMQ's: -> maxAttempts")
    delay: BullmqMs | None = Field(None, description="BullMQ's: milliseconds from now")
    backoff: BullmqBackoff | BullmqMs | None = Field(
        None, description="BullMQ's: the job's retry policy; a number: fixed")

    @model_validator(mode="before")
    @classmethod
    def _known_options(cls, data: Any) -> Any:
        # BullMQ's other options (and jobId: a flow job has no idempotency key) are named
        # as not supported; anything else is a typo
        refuse_unsupported(data, ("attempts", "delay", "backoff"))
        if isinstance(data, dict):
            unknown = sorted(k for k in data if k not in FLOW_OPTS and to_camel(k) not in
                             FLOW_OPTS)
            if unknown:
                raise PydanticCustomError(
                    "unknown_option",
                    "unknown option {unknown}; accepted options: {listed}",
                    {"unknown": ", ".join(repr(k) for k in unknown),
                     "listed": ", ".join(FLOW_OPTS), "accepted": list(FLOW_OPTS)},
                )
        return data

    @model_validator(mode="after")
    def _one_start_time(self) -> Self:
        if self.run_at is not None and self.delay_seconds is not None:
            raise PydanticCustomError("exclusive", "give runAt or delaySeconds, not both")
        if self.phases is not None and len(set(self.phases)) != len(self.phases):
            raise PydanticCustomError("unique", "phase names must be unique")
        return self


class FlowJobIn(InputModel):
    """One job of a flow (``FlowJob``), with the jobs that must complete before it."""

    name: Name
    queue_name: Name
    data: JsonObject | None = None
    opts: FlowJobOpts | None = None
    children: list["FlowJobIn"] | None = Field(
        None, description="jobs that run (and must complete) before this one; any queues")

    def to_submission(self) -> SubmissionNode:
        """This job and its subtree as submitted (resolved by :mod:`jobtrack.domain.spec`)."""
        opts = self.opts or FlowJobOpts.model_validate({})
        return SubmissionNode(
            Submission(name=self.name, data=self.data or {}, queue=self.queue_name,
                       phases=opts.phases, priority=opts.priority,
                       max_attempts=opts.max_attempts, run_at=opts.run_at,
                       delay=opts.delay_seconds,
                       bullmq=opts.model_dump(include={"attempts", "delay", "backoff"},
                                              exclude_none=True) or None),
            [c.to_submission() for c in self.children or ()])


class FlowCreate(FlowJobIn):
    """``POST /flows``: the root job of the tree, and the flow's human-readable name."""

    flowname: Annotated[Name, Field(description="what kind of flow this is, e.g. ingest-pdf")]


class FlowJobReport(StatusReport):
    """``PUT /flows/{flowId}/jobs/{jobId}``: a worker of another system reports one job
    of the flow. ``status`` also accepts the aliases of the status contract during a
    deprecation window (answered with a ``Deprecation`` header)."""

    status: StatusIn
    result: JsonValue = None
    error: ErrorIn | None = None
    progress: ProgressInput | None = None


# --- responses ---------------------------------------------------------------------


class FlowProgressOut(ApiModel):
    """How many jobs of the flow are in each status; ``percentage = 100 * completed /
    total``. Kept by counters moved with each job transition: exact, O(1) to read."""

    total: int
    completed: int
    failed: int
    cancelled: int
    running: int
    pending: int
    percentage: float
    steps: "FlowSteps | None" = Field(
        None, description="`GET /flows/{flowId}` only: jobs at BullMQ's finer states, "
        "counted on read")


class FlowSteps(ApiModel):
    """Jobs of a flow (or a queue) at BullMQ's finer states."""

    delayed: int = Field(description="pending, runAt still ahead")
    waiting_children: int = Field(description="pending until their children complete")
    paused: int = Field(description="running, current phase paused")
    stuck: int = Field(description="running longer than the stuck threshold")


class FlowPublic(ApiModel):
    """A flow's summary (``GET /flows/{flowId}``): one row, whatever the tree's size."""

    flow_id: str
    flowname: str
    name: str = Field(description="the root job's name")
    queue_name: str = Field(description="the root job's queue")
    status: FlowStatus
    progress: FlowProgressOut
    root_job_id: str
    result: Any = Field(description="the root job's result once the flow completed")
    error: dict[str, Any] | None = Field(description="the first failure: the failed job's "
                                         "error with its jobId")
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


class FlowJobNode(JobPublic):
    """A job of the flow with the jobs that run before it."""

    children: list["FlowJobNode"]


class FlowDetail(FlowPublic):
    """``GET /flows/{flowId}?include=jobs``: the summary and the whole job tree."""

    jobs: FlowJobNode | None = Field(None, description="the root job, children nested")


class FlowCreated(ApiModel):
    """``POST /flows``: the new flow."""

    flow_id: str
    flow: FlowPublic


class FlowPage(ApiModel):
    """A page of flows, newest first; pass ``nextCursor`` as ``cursor`` for the next."""

    items: list[FlowPublic]
    next_cursor: str | None


#: what ``?include=`` accepts on ``GET /flows/{flowId}``
Include = Literal["jobs"]
