"""Pydantic v2 models of the HTTP API (camelCase on the wire, ``docs/reference/http-api.md``).

Inputs are bounded (names up to 200 characters, JSON documents up to 64 levels, finite
numbers) and refuse unknown fields, so a bad request is a 422 naming the field and never
reaches the database. Outputs document the wire form that
:func:`jobtrack.domain.wire.job_to_wire` produces; a test proves the two agree. Status
fields use the enums of :mod:`jobtrack.domain.status`, so OpenAPI lists their values.
"""

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
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
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from jobtrack.api.jsonguard import problem, text_problem
from jobtrack.domain.spec import Submission
from jobtrack.domain.status import JobStatus, PhaseStatus, normalize_status
from jobtrack.errors import UnknownStatus

# --- reusable field types ----------------------------------------------------------

_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def clean_text(value: str) -> str:
    """Refuse text the database cannot store (NUL, unpaired surrogates)."""
    bad = text_problem(value)
    if bad:
        raise PydanticCustomError("invalid_text", bad)
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank", "must not be blank")
    return value


def _storable(value: Any) -> Any:
    bad = problem(value)
    if bad:
        raise PydanticCustomError("invalid_json", bad)
    return value


def _whole(value: Any) -> Any:
    """A JSON number without a fraction is an integer (``3.0`` is ``3``, as in JSON
    Schema); booleans and strings are still refused by the strict int after this."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _iso_datetime(value: Any) -> Any:
    """Only an ISO 8601 string is a date-time (as the document says): pydantic alone
    would also read a number, or a string of digits, as a Unix time."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or _NUMBER.fullmatch(value.strip()):
        raise PydanticCustomError("datetime_type",
                                  "must be an ISO 8601 date-time string, e.g. "
                                  "2030-01-01T12:00:00Z")
    return value


def _utc(value: datetime) -> datetime:
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError("datetime_range", "date is out of range") from None


def canonical_status(value: Any) -> Any:
    """Aliases (``done``, ``processing``, ``CANCELED``...) become canonical statuses."""
    if isinstance(value, str):
        try:
            return normalize_status(value)
        except UnknownStatus as exc:
            raise PydanticCustomError(
                "invalid_status", "{message}", {"message": exc.message, "accepted": exc.accepted}
            ) from None
    return value


#: a queue, job, phase or step name
Name = Annotated[str, StringConstraints(min_length=1, max_length=200),
                 AfterValidator(clean_text), AfterValidator(_not_blank)]
#: the ordered phases of a job (their uniqueness is checked by the model)
PhaseNames = Annotated[list[Name], Field(max_length=100, json_schema_extra={"uniqueItems": True})]
#: free text of bounded length (error messages)
Text = Annotated[str, StringConstraints(max_length=10_000), AfterValidator(clean_text)]
#: any JSON document jobtrack can store and send back
JsonValue = Annotated[Any, AfterValidator(_storable)]
JsonObject = Annotated[dict[str, Any], AfterValidator(_storable)]
#: last in an integer's ``Annotated`` (after its bounds, which stay in the JSON Schema):
#: ``3.0`` is accepted as ``3``; ``true`` and ``"3"`` are still refused
WHOLE: Final = BeforeValidator(_whole)
Finite = Annotated[float, Strict(), Field(allow_inf_nan=False)]
Amount = Annotated[float, Strict(), Field(allow_inf_nan=False, ge=0, le=1e12)]
UtcDatetime = Annotated[datetime, BeforeValidator(_iso_datetime), AfterValidator(_utc)]
#: a job status; aliases accepted (deprecated), answered canonically
StatusIn = Annotated[JobStatus, BeforeValidator(canonical_status)]


class ApiModel(BaseModel):
    """Base of every API model: camelCase aliases, snake_case attributes."""

    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True,
                              validate_by_alias=True, serialize_by_alias=True)


class InputModel(ApiModel):
    """Base of request bodies: unknown fields are refused, so typos do not pass."""

    model_config = ConfigDict(extra="forbid")


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

    @model_validator(mode="after")
    def _one_start_time(self) -> Self:
        if self.run_at is not None and self.delay_seconds is not None:
            raise PydanticCustomError(
                "exclusive", "give runAt or delaySeconds, not both")
        return self

    def to_submission(self) -> Submission:
        """The job asked for, resolved against its task by :mod:`jobtrack.domain.spec`."""
        return Submission(
            name=self.name, data=self.data or {}, queue=self.queue_name, phases=self.phases,
            priority=self.priority, max_attempts=self.max_attempts, run_at=self.run_at,
            delay=self.delay_seconds, idempotency_key=self.idempotency_key)


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


class QueueInfo(ApiModel):
    queue_name: str
    counts: QueueCounts  # type: ignore[valid-type]
    stuck: int = Field(description="running longer than the stuck threshold")
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
