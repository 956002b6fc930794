"""Pydantic v2 models of the HTTP API (camelCase on the wire, ``docs/reference/http-api.md``).

Inputs are bounded (names up to 200 characters, JSON documents up to 64 levels, finite
numbers) and refuse unknown fields, so a bad request is a 422 naming the field and never
reaches the database. Outputs document the wire form that
:func:`jobtrack.domain.wire.job_to_wire` produces; a test proves the two agree. Status
fields use the enums of :mod:`jobtrack.domain.status`, so OpenAPI lists their values.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    Strict,
    StrictInt,
    StringConstraints,
    create_model,
    model_validator,
)
from pydantic_core import PydanticCustomError

from jobtrack.api.fields import (
    WHOLE,
    Amount,
    ApiModel,
    Finite,
    InputModel,
    JsonObject,
    JsonValue,
    Name,
    PhaseNames,
    StatusIn,
    Text,
    UtcDatetime,
    clean_text,
)
from jobtrack.domain.spec import (
    BULLMQ_MAX_DELAY_MS,
    BULLMQ_MAX_PRIORITY,
    BULLMQ_OPTIONS,
    BULLMQ_UNSUPPORTED,
    Submission,
)
from jobtrack.domain.status import JobStatus, PhaseStatus

# --- progress ----------------------------------------------------------------------


class ProgressIn(InputModel):
    """Progress as ``{done, total}``; ``total`` null when unknown."""

    done: Amount
    total: Amount | None = None


#: progress as a percentage (0..100) or as ``{done, total}``
ProgressInput = Annotated[
    Annotated[float, Strict(), Field(allow_inf_nan=False, ge=0, le=100)] | ProgressIn,
    Field(description="a percentage from 0 to 100, or {done, total}"),
]


class ProgressOut(ApiModel):
    done: float
    total: float | None
    percentage: float | None


# --- jobs: requests ----------------------------------------------------------------


def refuse_unsupported(data: Any, supported: Sequence[str]) -> Any:
    """Name BullMQ's options jobtrack does not support (before "extra inputs")."""
    if isinstance(data, dict):
        unsupported = sorted(k for k in data if k in BULLMQ_UNSUPPORTED
                             or (k == "jobId" and k not in supported))
        if unsupported:
            raise PydanticCustomError(
                "unsupported_option",
                "the BullMQ option(s) {names} are not supported; supported: {listed}",
                {"names": ", ".join(repr(k) for k in unsupported),
                 "listed": ", ".join(supported), "accepted": list(supported)})
    return data


BullmqMs = Annotated[StrictInt, Field(ge=0, le=BULLMQ_MAX_DELAY_MS), WHOLE]


class BullmqBackoff(InputModel):
    """BullMQ's ``backoff``: before retry ``n``, wait ``delay`` ms (``fixed``) or
    ``delay * 2^(n-1)`` ms (``exponential``)."""

    type: Literal["fixed", "exponential"]
    delay: BullmqMs = 0


class BullmqOpts(InputModel):
    """BullMQ's job options jobtrack maps (:func:`jobtrack.domain.spec.apply_bullmq`);
    its other options are a 422 that names them."""

    attempts: Annotated[StrictInt, Field(ge=1, le=1000), WHOLE] | None = Field(
        None, description="-> maxAttempts")
    delay: BullmqMs | None = Field(None, description="milliseconds from now -> runAt")
    backoff: BullmqBackoff | BullmqMs | None = Field(
        None, description="the job's retry policy; a number: fixed")
    priority: Annotated[StrictInt, Field(ge=0, le=BULLMQ_MAX_PRIORITY), WHOLE] | None = Field(
        None, description="BullMQ's: 0 runs first, larger later; jobtrack priority = -priority")
    job_id: Name | None = Field(None, description="-> idempotencyKey")

    @model_validator(mode="before")
    @classmethod
    def _supported(cls, data: Any) -> Any:
        return refuse_unsupported(data, BULLMQ_OPTIONS)

    def to_options(self) -> dict[str, Any]:
        """The options given (null: not given), as BullMQ spells them."""
        return self.model_dump(exclude_none=True, by_alias=True)


class JobCreate(InputModel):
    """``POST /jobs``. ``runAt`` and ``delaySeconds`` are alternatives."""

    queue_name: Name
    name: Name
    data: JsonObject | None = None
    phases: PhaseNames | None = Field(
        None, description="ordered phase names, unique")
    priority: Annotated[StrictInt, Field(ge=-1_000_000, le=1_000_000), WHOLE] = Field(
        0, description="higher runs first")
    run_at: UtcDatetime | None = Field(None, description="not before (ISO 8601; UTC if naive)")
    delay_seconds: Annotated[Finite, Field(ge=0, le=315_360_000)] | None = None
    max_attempts: Annotated[StrictInt, Field(ge=1, le=1000), WHOLE] | None = Field(
        None, description="attempts before the job fails for good (server default if absent)")
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=200),
                               AfterValidator(clean_text)] | None = None
    opts: BullmqOpts | None = Field(
        None, description="BullMQ job options (other BullMQ options are a 422)")

    @model_validator(mode="after")
    def _one_start_time(self) -> Self:
        if self.run_at is not None and self.delay_seconds is not None:
            raise PydanticCustomError(
                "exclusive", "give runAt or delaySeconds, not both")
        return self

    def to_submission(self) -> Submission:
        """The job asked for, resolved against its task by :mod:`jobtrack.domain.spec`."""
        # None when not given, so that opts.priority can be told from an explicit priority
        priority = self.priority if "priority" in self.model_fields_set else None
        return Submission(
            name=self.name, data=self.data or {}, queue=self.queue_name, phases=self.phases,
            priority=priority, max_attempts=self.max_attempts, run_at=self.run_at,
            delay=self.delay_seconds, idempotency_key=self.idempotency_key,
            bullmq=None if self.opts is None else self.opts.to_options())


class ErrorIn(InputModel):
    """A job's error as its worker reports it."""

    message: Text
    type: Annotated[Text, StringConstraints(max_length=200)] | None = None
    code: Annotated[Text, StringConstraints(max_length=200)] | None = None


class PhasePatch(InputModel):
    """A change to one declared phase: its status, its progress, or both."""

    name: Name
    status: PhaseStatus | None = None
    progress: ProgressInput | None = None


class StatusReport(InputModel):
    """Base of the reports whose ``status`` accepts the aliases of the status contract
    (``PATCH /jobs/{jobId}``, ``PUT /flows/{flowId}/jobs/{jobId}``): notes the alias the
    request spelled, for the route to answer with a ``Deprecation`` header or, once
    ``JOBTRACK_ACCEPT_STATUS_ALIASES`` is off, a 422."""

    _status_alias: str | None = PrivateAttr(default=None)

    @model_validator(mode="wrap")
    @classmethod
    def _note_alias(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        model = handler(data)
        raw = data.get("status") if isinstance(data, dict) else None
        status = getattr(model, "status", None)
        if isinstance(raw, str) and isinstance(status, JobStatus) and raw != status.value:
            model._status_alias = raw
        return model

    @property
    def status_alias(self) -> str | None:
        """The alias the request spelled instead of the canonical status, if any."""
        return self._status_alias


class JobPatch(StatusReport):
    """``PATCH /jobs/{jobId}``: a worker's report. Absent fields stay as they are;
    ``result: null`` clears the result. ``status`` also accepts the aliases of the status
    contract during a deprecation window (answered with a ``Deprecation`` header)."""

    status: StatusIn | None = None
    step: Name | None = None
    progress: ProgressInput | None = None
    phase: PhasePatch | None = None
    result: JsonValue = None
    error: ErrorIn | None = None
    stats: JsonObject | None = None


class ClaimRequest(InputModel):
    """``POST /queues/{queueName}/claim``: what an external worker wants to run."""

    names: Annotated[list[Name], Field(max_length=100)] | None = Field(
        None, description="only jobs with these names")
    limit: Annotated[StrictInt, Field(ge=1, le=100), WHOLE] = 1
    lease_seconds: Annotated[Finite, Field(ge=1, le=86_400)] | None = Field(
        None, description="lease length; each PATCH by this key renews it (server default "
        "if absent)")


# --- jobs: responses ---------------------------------------------------------------


class PhaseOut(ApiModel):
    name: str
    status: PhaseStatus
    progress: ProgressOut
    started_at: datetime | None
    completed_at: datetime | None


class JobError(ApiModel):
    """``{message, type?, code?}``; errors the system records may carry more keys."""

    model_config = ConfigDict(extra="allow")

    message: str
    type: str | None = None
    code: str | None = None


class JobPublic(ApiModel):
    """A job as ``GET /jobs/{jobId}`` returns it."""

    job_id: str
    queue_name: str
    name: str
    status: JobStatus
    step: str = Field(description="queued, delayed, waiting-children, running, or the "
                      "name of the current phase")
    data: dict[str, Any]
    result: Any
    error: JobError | None
    stats: dict[str, Any] | None
    progress: ProgressOut | None
    phases: list[PhaseOut]
    flow_id: str | None
    parent_job_id: str | None
    attempt: int
    max_attempts: int
    priority: int
    run_at: datetime | None
    cancel_requested: bool
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


class JobCreated(ApiModel):
    """``POST /jobs``: 201 for a new job, 200 with the first job for a known
    ``idempotencyKey``."""

    job_id: str
    status: JobStatus
    job: JobPublic


class JobPage(ApiModel):
    """A page of jobs, newest first; pass ``nextCursor`` as ``cursor`` for the next."""

    items: list[JobPublic]
    next_cursor: str | None


class Transition(BaseModel):
    """One status change of a job (``from`` null at creation)."""

    model_config = ConfigDict(populate_by_name=True)

    from_: JobStatus | None = Field(alias="from")
    to: JobStatus
    step: str | None
    at: datetime
    attempt: int | None
    by: str | None = Field(description="who made it: api:<key prefix>, worker:<id>, system:...")


class ClaimResult(ApiModel):
    """Jobs now running under the caller's lease."""

    items: list[JobPublic]


# --- queues, health, errors ----------------------------------------------------------

#: one count per job status (field names generated from the status contract)
QueueCounts: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "QueueCounts", **{s.value: (int, ...) for s in JobStatus}
)


class QueueSteps(ApiModel):
    """Jobs of a queue at BullMQ's finer states."""

    delayed: int = Field(description="pending, runAt still ahead")
    waiting_children: int = Field(description="pending until their children complete")
    paused: int = Field(description="running, current phase paused")
    stuck: int = Field(description="running longer than the stuck threshold")


class QueueInfo(ApiModel):
    queue_name: str
    counts: QueueCounts  # type: ignore[valid-type]
    stuck: int = Field(description="running longer than the stuck threshold")
    steps: "QueueSteps" = Field(description="jobs at BullMQ's finer states")
    oldest_pending_age: float | None = Field(
        description="seconds the oldest runnable pending job has waited since its runAt")


class Health(BaseModel):
    status: str


class ErrorDetail(BaseModel):
    code: str = Field(description="e.g. not_found, invalid_transition, validation_error")
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    """Every error answer: ``{"error": {"code", "message", "details"}}``."""

    error: ErrorDetail
