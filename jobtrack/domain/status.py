"""The status contract: the single source of truth for every status value, step,
transition, alias and aggregation rule (``docs/reference/status-contract.md``).

Nothing else in jobtrack spells a status string by hand: the database schema, the API
schemas, the CLI, the dashboard and the exported TypeScript / GraphQL / JSON Schema all
import or are generated from this module. It is pure: stdlib only, no I/O.
"""

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Final

from jobtrack.errors import InvalidTransition, UnknownStatus


class JobStatus(StrEnum):
    """The five canonical job statuses."""

    #: created; waiting to run (queued, delayed, waiting for children, waiting to retry)
    PENDING = "pending"
    #: a worker (ours or external) is executing it; includes a paused current phase
    RUNNING = "running"
    #: finished successfully
    COMPLETED = "completed"
    #: finished with an error after its last attempt
    FAILED = "failed"
    #: cancelled by a user, by its flow, or before it ran
    CANCELLED = "cancelled"


TERMINAL: Final = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
ACTIVE: Final = frozenset({JobStatus.PENDING, JobStatus.RUNNING})
#: statuses the explicit retry action starts again from
RETRYABLE: Final = frozenset({JobStatus.FAILED, JobStatus.CANCELLED})


def is_terminal(status: JobStatus | str) -> bool:
    """True for completed, failed and cancelled."""
    return JobStatus(status) in TERMINAL


class Step(StrEnum):
    """Where a job is inside its status, besides the name of its current phase."""

    #: initial step of a pending job
    QUEUED = "queued"
    #: pending with ``runAt`` in the future
    DELAYED = "delayed"
    #: a flow parent whose children are not all completed
    WAITING_CHILDREN = "waiting-children"
    #: running a job that declares no phases
    RUNNING = "running"


class PhaseStatus(StrEnum):
    """Status of one declared phase of a job."""

    #: not reached yet
    NOT_STARTED = "not_started"
    #: in progress
    RUNNING = "running"
    #: paused by a user; the worker waits at its next checkpoint until resumed
    PAUSED = "paused"
    #: done
    COMPLETED = "completed"
    #: failed
    FAILED = "failed"
    #: was running or paused when its job was cancelled
    CANCELLED = "cancelled"


PHASE_TERMINAL: Final = frozenset(
    {PhaseStatus.COMPLETED, PhaseStatus.FAILED, PhaseStatus.CANCELLED}
)


class FlowStatus(StrEnum):
    """A flow's status uses the same five values as a job."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: a finished flow: it changes again only if one of its jobs is retried
FLOW_TERMINAL: Final = frozenset({FlowStatus.COMPLETED, FlowStatus.FAILED, FlowStatus.CANCELLED})


class DeliveryStatus(StrEnum):
    """Status of one webhook delivery (the ``webhook_deliveries`` table's CHECK)."""

    #: stored, waiting for its first or next attempt
    PENDING = "pending"
    #: the receiver answered 2xx
    DELIVERED = "delivered"
    #: attempts exhausted, or the URL is refused
    FAILED = "failed"


class Action(StrEnum):
    """What asks for a transition: a plain update, or the explicit retry action."""

    UPDATE = "update"
    RETRY = "retry"


class StopReason(StrEnum):
    """Why a worker stopped waiting for one run of a job; its checkpoints then stop it.

    ``interrupted`` and ``timeout`` are also the ``error.code`` of the failure the worker
    records for that run.
    """

    #: the worker no longer holds the job (reaped, cancelled or retried elsewhere)
    LOST = "lost"
    #: the worker shut down before the run finished
    INTERRUPTED = "interrupted"
    #: the task ran past its timeout
    TIMEOUT = "timeout"


# --- transitions -------------------------------------------------------------------

#: Job transitions allowed by a plain update (docs/reference/status-contract.md, "Transitions").
#: ``running -> pending`` is an automatic retry, allowed only while attempts remain.
JOB_TRANSITIONS: Final[Mapping[JobStatus, frozenset[JobStatus]]] = {
    JobStatus.PENDING: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.FAILED}),
    JobStatus.RUNNING: frozenset(
        {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.PENDING}
    ),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}

#: Transitions only the explicit retry action (``POST /jobs/{id}/retry``) may make.
RETRY_TRANSITIONS: Final[Mapping[JobStatus, frozenset[JobStatus]]] = {
    JobStatus.FAILED: frozenset({JobStatus.PENDING}),
    JobStatus.CANCELLED: frozenset({JobStatus.PENDING}),
}


def allowed_targets(
    current: JobStatus, action: Action = Action.UPDATE, *, attempts_left: bool = True
) -> frozenset[JobStatus]:
    """Statuses ``current`` may move to; a same-status update of an active job counts."""
    if action is Action.RETRY:
        return RETRY_TRANSITIONS.get(current, frozenset())
    targets = set(JOB_TRANSITIONS[current])
    if current in ACTIVE:
        targets.add(current)
    if current is JobStatus.RUNNING and not attempts_left:
        targets.discard(JobStatus.PENDING)
    return frozenset(targets)


def check_transition(
    current: JobStatus,
    target: JobStatus,
    action: Action = Action.UPDATE,
    *,
    attempts_left: bool = True,
) -> None:
    """Raise :class:`InvalidTransition` unless ``current -> target`` is allowed."""
    allowed = allowed_targets(current, action, attempts_left=attempts_left)
    if target not in allowed:
        raise InvalidTransition(
            current=current.value,
            target=target.value,
            allowed=sorted(s.value for s in allowed),
        )


PHASE_TRANSITIONS: Final[Mapping[PhaseStatus, frozenset[PhaseStatus]]] = {
    PhaseStatus.NOT_STARTED: frozenset({PhaseStatus.RUNNING}),
    PhaseStatus.RUNNING: frozenset(
        {PhaseStatus.PAUSED, PhaseStatus.COMPLETED, PhaseStatus.FAILED, PhaseStatus.CANCELLED}
    ),
    PhaseStatus.PAUSED: frozenset({PhaseStatus.RUNNING, PhaseStatus.CANCELLED}),
    PhaseStatus.COMPLETED: frozenset(),
    PhaseStatus.FAILED: frozenset(),
    PhaseStatus.CANCELLED: frozenset(),
}


def check_phase_transition(
    phase: str, current: PhaseStatus, target: PhaseStatus, *, with_job: bool = False
) -> None:
    """Raise unless a phase may move ``current -> target``.

    ``cancelled`` is reachable only together with the job (``with_job``); a same-status
    update of a running or paused phase (progress) is allowed.
    """
    allowed = set(PHASE_TRANSITIONS[current])
    if current in (PhaseStatus.RUNNING, PhaseStatus.PAUSED):
        allowed.add(current)
    if not with_job:
        allowed.discard(PhaseStatus.CANCELLED)
    if target not in allowed:
        raise InvalidTransition(
            current=current.value,
            target=target.value,
            allowed=sorted(s.value for s in allowed),
            subject=f"phase {phase!r}",
        )


# --- aggregation -------------------------------------------------------------------


def job_status_from_phases(
    phases: Iterable[PhaseStatus], *, attempts_left: bool = False
) -> JobStatus | None:
    """A job's status as its phases say (rules 1-4 of "A job's status from its phases");
    None without phases.

    A job between two phases (some completed, the rest not started) has started: it is
    running, never pending again. Cancellation is decided at job level and is not
    derived here.
    """
    statuses = list(phases)
    if not statuses:
        return None
    if PhaseStatus.FAILED in statuses:
        return JobStatus.PENDING if attempts_left else JobStatus.FAILED
    if all(s is PhaseStatus.COMPLETED for s in statuses):
        return JobStatus.COMPLETED
    if PhaseStatus.RUNNING in statuses or PhaseStatus.PAUSED in statuses:
        return JobStatus.RUNNING
    if PhaseStatus.COMPLETED in statuses and all(
        s in (PhaseStatus.COMPLETED, PhaseStatus.NOT_STARTED) for s in statuses
    ):
        return JobStatus.RUNNING
    return JobStatus.PENDING


def flow_status(
    counts: Mapping[JobStatus, int], *, cancelled_by_user: bool = False, started: bool = False
) -> FlowStatus:
    """A flow's status from how many of its jobs are in each status (status contract).

    1. any job failed -> failed; 2. all completed -> completed; 3. cancelled by a user ->
    cancelled; 4. the flow has started (a job is running or finished, or one ran before:
    ``started``) -> running, except that a flow whose jobs have all finished, some
    cancelled, is cancelled (it is over and can never complete); 5. otherwise (no job
    started yet) -> pending.

    So a flow is running from its first started job until it is terminal: between two
    jobs (one finished, the next not claimed yet), and while a job waits for its next
    attempt, it stays running. A retried job reopens a finished flow as running.
    """
    total = sum(counts.values())
    if counts.get(JobStatus.FAILED, 0) > 0:
        return FlowStatus.FAILED
    if total > 0 and counts.get(JobStatus.COMPLETED, 0) == total:
        return FlowStatus.COMPLETED
    if cancelled_by_user:
        return FlowStatus.CANCELLED
    active = counts.get(JobStatus.PENDING, 0) + counts.get(JobStatus.RUNNING, 0)
    if total > 0 and active == 0:
        return FlowStatus.CANCELLED  # all finished, none failed, not all completed
    if started or active < total or counts.get(JobStatus.RUNNING, 0) > 0:
        return FlowStatus.RUNNING
    return FlowStatus.PENDING


def percentage(done: float, total: float) -> float:
    """``100 * done / total`` rounded to two decimals; 0 for an empty total."""
    if total <= 0:
        return 0.0
    return round(100.0 * done / total, 2)


# --- aliases -----------------------------------------------------------------------

#: Generic aliases (source=None), keyed by lower-case value.
GENERIC_ALIASES: Final[Mapping[str, JobStatus]] = {
    **{s.value: s for s in JobStatus},
    **dict.fromkeys(
        (
            "queued", "waiting", "delayed", "scheduled", "deferred", "created",
            "not_started", "todo", "waiting-children", "prioritized",
        ),
        JobStatus.PENDING,
    ),
    **dict.fromkeys(
        ("started", "active", "processing", "in_progress", "doing"), JobStatus.RUNNING
    ),
    **dict.fromkeys(
        ("complete", "finished", "succeeded", "success", "done"), JobStatus.COMPLETED
    ),
    **dict.fromkeys(("error", "errored", "failure"), JobStatus.FAILED),
    **dict.fromkeys(("canceled", "revoked", "aborted", "stopped"), JobStatus.CANCELLED),
}

#: Source-aware tables, keyed by lower-case value.
SOURCE_ALIASES: Final[Mapping[str, Mapping[str, JobStatus]]] = {
    "bullmq": {
        **dict.fromkeys(
            ("waiting", "delayed", "waiting-children", "prioritized", "paused"),
            JobStatus.PENDING,
        ),
        "active": JobStatus.RUNNING,
        "completed": JobStatus.COMPLETED,
        "failed": JobStatus.FAILED,
    },
    "celery": {
        "pending": JobStatus.PENDING,
        "received": JobStatus.PENDING,
        "started": JobStatus.RUNNING,
        "retry": JobStatus.RUNNING,
        "success": JobStatus.COMPLETED,
        "failure": JobStatus.FAILED,
        "revoked": JobStatus.CANCELLED,
    },
    "rq": {
        **dict.fromkeys(("queued", "deferred", "scheduled"), JobStatus.PENDING),
        "started": JobStatus.RUNNING,
        "finished": JobStatus.COMPLETED,
        "failed": JobStatus.FAILED,
        "stopped": JobStatus.CANCELLED,
        "canceled": JobStatus.CANCELLED,
    },
    "legacy": {
        "queued": JobStatus.PENDING,
        "started": JobStatus.RUNNING,
        "completed": JobStatus.COMPLETED,
        "error": JobStatus.FAILED,
        "cancelled": JobStatus.CANCELLED,
    },
}

#: Values a source names that are not statuses at all, with the reason.
REFUSED_VALUES: Final[Mapping[str, Mapping[str, str]]] = {
    "bullmq": {"stuck": "'stuck' is a BullMQ condition, not a status"},
}


def normalize_status(value: str, source: str | None = None) -> JobStatus:
    """Turn a foreign or legacy status value into a canonical :class:`JobStatus`.

    Case-insensitive and whitespace-trimmed. ``source`` picks a source-aware table
    (``bullmq``, ``celery``, ``rq``, ``legacy``); without it the generic aliases apply.
    Anything unknown raises :class:`UnknownStatus` naming the canonical values; this
    function never answers "unknown".
    """
    key = value.strip().lower() if isinstance(value, str) else ""
    src = source.strip().lower() if source is not None else None
    if src is None:
        table = GENERIC_ALIASES
    elif src in SOURCE_ALIASES:
        table = SOURCE_ALIASES[src]
    else:
        raise UnknownStatus(
            value=str(source),
            accepted=sorted(SOURCE_ALIASES),
            message=f"unknown status source {source!r}; known sources: "
            + ", ".join(sorted(SOURCE_ALIASES)),
        )
    refused = REFUSED_VALUES.get(src or "", {}).get(key)
    if refused:
        raise UnknownStatus(value=value, accepted=[s.value for s in JobStatus], reason=refused)
    try:
        return table[key]
    except KeyError:
        raise UnknownStatus(value=value, accepted=[s.value for s in JobStatus]) from None


def is_alias(value: str, source: str | None = None) -> bool:
    """True when ``value`` is accepted but is not spelled as the canonical value."""
    return normalize_status(value, source).value != value
