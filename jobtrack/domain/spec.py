"""One job specification: a submission plus its task's declaration give a new job's fields.

Every way of creating a job goes through :func:`resolve`: ``POST /jobs``, each node of
``POST /flows``, ``App.enqueue`` / ``enqueue_many`` and each :class:`FlowJob` of
``App.enqueue_flow``. So the defaults (queue, phases, attempts) and the checks of a job's
data against the function that will run it are decided in one place:

- options the submission gives win; else the task's declaration; else the defaults here
  (``DEFAULT_QUEUE``, no phases, the settings' ``default_max_attempts``);
- with a declaration, data keys the function cannot take (not a parameter, and no
  ``**kwargs``), parameters it requires that the data lacks, and phases other than the
  declared ones are refused (:class:`ValidationFailed` naming the field, e.g.
  ``data.documentId``) before anything is stored;
- without one (a task no worker declared yet: an external worker's), the job is taken as
  submitted.

A task's retry policy and timeout are not stored in the job: the worker running it applies
its declaration's (see ``jobtrack.queue.execution``), unless the job has its own retry
policy (BullMQ's ``backoff`` in ``opts``, stored in ``jobs.retry``).
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final

from jobtrack.domain.flows import FlowNode
from jobtrack.domain.records import Job, new_job
from jobtrack.errors import ValidationFailed

#: the queue of a job whose submission and task say nothing
DEFAULT_QUEUE: Final = "default"
#: keys jobtrack itself puts into a job's data (a flow job carries its ``flowId``)
RESERVED_DATA_KEYS: Final = frozenset({"flowId"})


@dataclass(frozen=True, slots=True)
class TaskDeclaration:
    """What a task says about its jobs: where they go, their phases and attempts, and
    which data its function takes (``parameters``; ``accepts_any``: it has ``**kwargs``)."""

    name: str
    queue: str = DEFAULT_QUEUE
    phases: tuple[str, ...] = ()
    #: attempts a job gets; None: the settings' ``default_max_attempts``
    max_attempts: int | None = None
    #: the retry policy as ``{base, factor, cap, jitter}`` seconds
    retry: Mapping[str, float] = field(default_factory=dict)
    #: seconds one attempt may run; None: no limit
    timeout: float | None = None
    #: the names the function takes as keyword arguments (after the context)
    parameters: tuple[str, ...] = ()
    #: the parameters without a default value
    required: tuple[str, ...] = ()
    accepts_any: bool = False


@dataclass(frozen=True, slots=True)
class Submission:
    """A request for one job, as any interface received it; None: not given."""

    name: str
    data: Mapping[str, Any] = field(default_factory=dict)
    queue: str | None = None
    phases: Sequence[str] | None = None
    priority: int | None = None
    max_attempts: int | None = None
    run_at: datetime | None = None
    #: seconds (or a timedelta) from now; wins over ``run_at``
    delay: float | timedelta | None = None
    idempotency_key: str | None = None
    #: the job's own retry policy ``{base, factor, cap, jitter}`` seconds
    retry: Mapping[str, float] | None = None
    #: BullMQ job options (``attempts``, ``delay``, ``priority``, ``jobId``), applied by
    #: :func:`resolve` through :func:`apply_bullmq`
    bullmq: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class JobSpec:
    """The fields of a new job, every default applied and every check passed."""

    name: str
    queue_name: str
    data: Mapping[str, Any]
    phases: tuple[str, ...]
    priority: int
    max_attempts: int
    run_at: datetime | None
    idempotency_key: str | None
    #: the job's own retry policy (BullMQ's ``backoff``); None: its task's
    retry: Mapping[str, float] | None = None


#: options of ``App.enqueue`` (spelled with a leading underscore) and ``enqueue_many``
ENQUEUE_OPTIONS: Final = frozenset({"queue", "priority", "delay", "run_at",
                                    "idempotency_key", "max_attempts", "phases", "opts"})
#: options of a :class:`~jobtrack.queue.flows.FlowJob` (a flow job has no idempotency key)
FLOW_OPTIONS: Final = ENQUEUE_OPTIONS - {"idempotency_key"}


def submission(name: str, data: Mapping[str, Any], options: Mapping[str, Any], *,
               accepted: frozenset[str] = ENQUEUE_OPTIONS, prefix: str = "_") -> Submission:
    """A submission from Python keyword options (``queue``, ``priority``, ``delay``...,
    named here without their ``prefix``); an unknown option is refused by name."""
    unknown = set(options) - accepted
    if unknown:
        listed = ", ".join(prefix + u for u in sorted(unknown))
        raise _refuse(f"unknown option(s) {listed}; accepted: "
                      f"{', '.join(prefix + o for o in sorted(accepted))}",
                      prefix + sorted(unknown)[0], accepted=sorted(accepted))
    phases = options.get("phases")
    bullmq = options.get("opts")
    if bullmq is not None and not isinstance(bullmq, Mapping):
        raise _refuse(f"{prefix}opts must be a mapping of BullMQ job options", prefix + "opts")
    return Submission(
        name=name, data=data, queue=options.get("queue"),
        phases=None if phases is None else tuple(phases),
        priority=options.get("priority"), max_attempts=options.get("max_attempts"),
        run_at=options.get("run_at"), delay=options.get("delay"),
        idempotency_key=options.get("idempotency_key"), bullmq=bullmq)


#: BullMQ job options jobtrack maps onto its own fields
BULLMQ_OPTIONS: Final = ("attempts", "delay", "backoff", "priority", "jobId")
#: BullMQ job options jobtrack has no equivalent for (refused by name)
BULLMQ_UNSUPPORTED: Final = frozenset({
    "lifo", "repeat", "repeatJobKey", "removeOnComplete", "removeOnFail",
    "stackTraceLimit", "timestamp", "parent", "sizeLimit", "failParentOnFailure",
    "ignoreDependencyOnFailure", "removeDependencyOnFailure", "continueParentOnFailure",
    "keepLogs", "prevMillis", "debounce", "deduplication", "rateLimiterKey", "telemetry",
    "onChildFailure",
})
#: BullMQ priorities accepted: 0 (BullMQ's highest) .. this (jobtrack's lowest, negated)
BULLMQ_MAX_PRIORITY: Final = 1_000_000
#: BullMQ delays accepted, in milliseconds (ten years)
BULLMQ_MAX_DELAY_MS: Final = 315_360_000_000


def _whole(value: Any, key: str, low: int, high: int, where: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _refuse(f"opts.{key} must be a whole number from {low} to {high}",
                      f"{where}opts.{key}")
    return value


def _known_keys(opts: Mapping[str, Any], accepted: Sequence[str], where: str) -> None:
    for key in opts:
        if key in accepted:
            continue
        if key in BULLMQ_UNSUPPORTED or key == "jobId":
            raise _refuse(f"the BullMQ option {key!r} is not supported"
                          + ("" if key != "jobId" else " in a flow")
                          + f"; supported: {', '.join(accepted)}",
                          f"{where}opts.{key}", accepted=list(accepted))
        raise _refuse(f"unknown option {key!r} in opts; supported: {', '.join(accepted)}",
                      f"{where}opts.{key}", accepted=list(accepted))


def apply_bullmq(sub: Submission, *, where: str = "",
                 allow_job_id: bool = True) -> Submission:
    """``sub`` with its BullMQ options mapped onto jobtrack's fields: ``attempts`` ->
    max attempts, ``delay`` (milliseconds) -> start time, ``priority`` (BullMQ: 0 runs
    first, larger runs later) -> ``-priority`` (jobtrack: higher runs first), ``jobId`` ->
    idempotency key. Other BullMQ options and unknown keys are refused by name, and so is
    an option that contradicts the same native field given beside it."""
    opts = sub.bullmq
    if not opts:
        return sub
    accepted = BULLMQ_OPTIONS if allow_job_id else tuple(
        o for o in BULLMQ_OPTIONS if o != "jobId")
    _known_keys(opts, accepted, where)
    changes: dict[str, Any] = {}

    def native(key: str, current: Any, wanted: Any, field_name: str) -> None:
        if current is not None and current != wanted:
            raise _refuse(f"opts.{key} contradicts {field_name} ({wanted!r} against "
                          f"{current!r}): give one", f"{where}opts.{key}",
                          conflictsWith=field_name.split(" ")[0])
        changes[_FIELDS[key]] = wanted

    if "attempts" in opts:
        native("attempts", sub.max_attempts,
               _whole(opts["attempts"], "attempts", 1, 1000, where), "maxAttempts")
    if "priority" in opts:
        native("priority", sub.priority,
               -_whole(opts["priority"], "priority", 0, BULLMQ_MAX_PRIORITY, where),
               "priority (jobtrack's, which is -opts.priority)")
    if "jobId" in opts:
        job_id = opts["jobId"]
        if not isinstance(job_id, str) or not job_id.strip() or len(job_id) > 200:
            raise _refuse("opts.jobId must be a non-blank string of at most 200 characters",
                          f"{where}opts.jobId")
        native("jobId", sub.idempotency_key, job_id, "idempotencyKey")
    if "delay" in opts:
        ms = _whole(opts["delay"], "delay", 0, BULLMQ_MAX_DELAY_MS, where)
        if sub.run_at is not None:
            raise _refuse("opts.delay contradicts runAt: give one", f"{where}opts.delay",
                          conflictsWith="runAt")
        seconds = ms / 1000
        given = sub.delay
        if given is not None:
            given_s = given.total_seconds() if isinstance(given, timedelta) else float(given)
            if given_s != seconds:
                raise _refuse(f"opts.delay ({ms} ms) contradicts delaySeconds ({given_s}): "
                              "give one", f"{where}opts.delay", conflictsWith="delaySeconds")
        changes["delay"] = seconds
    if "backoff" in opts:
        changes["retry"] = _backoff(opts["backoff"], where)
    return replace(sub, bullmq=None, **changes)


def _backoff(value: Any, where: str) -> dict[str, float]:
    """BullMQ's ``backoff`` as a retry policy: ``{type: "fixed", delay: ms}`` waits ``delay``
    before every retry, ``"exponential"`` waits ``delay * 2 ** (attempt - 1)``; a bare
    number is a fixed delay. No jitter, as in BullMQ."""
    if not isinstance(value, Mapping):
        value = {"type": "fixed", "delay": value}
    unknown = sorted(set(value) - {"type", "delay"})
    if unknown:
        raise _refuse(f"opts.backoff takes type and delay, not {unknown[0]!r}",
                      f"{where}opts.backoff.{unknown[0]}")
    kind = value.get("type")
    if kind not in ("fixed", "exponential"):
        raise _refuse("opts.backoff.type must be \"fixed\" or \"exponential\" (custom "
                      "backoff strategies are not supported)", f"{where}opts.backoff.type")
    seconds = _whole(value.get("delay", 0), "backoff.delay", 0, BULLMQ_MAX_DELAY_MS,
                     where) / 1000
    if kind == "fixed":
        return {"base": seconds, "factor": 1.0, "cap": seconds, "jitter": 0.0}
    return {"base": seconds, "factor": 2.0, "cap": BULLMQ_MAX_DELAY_MS / 1000, "jitter": 0.0}


_FIELDS: Final = {"attempts": "max_attempts", "priority": "priority",
                  "jobId": "idempotency_key"}


def start_time(run_at: datetime | None, delay: float | timedelta | None,
               now: datetime) -> datetime | None:
    """When a job may start: ``now + delay`` if a delay is given, else ``run_at``."""
    if delay is None:
        return run_at
    seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
    return now + timedelta(seconds=seconds)


def _refuse(message: str, field_name: str, **details: Any) -> ValidationFailed:
    return ValidationFailed(message, details={"field": field_name, **details})


def check_data(task: TaskDeclaration, data: Mapping[str, Any], *, where: str = "") -> None:
    """Refuse data the task's function cannot take, or lacking what it requires."""
    if not task.accepts_any:
        unknown = [k for k in data if k not in task.parameters and k not in RESERVED_DATA_KEYS]
        if unknown:
            taken = ", ".join(task.parameters) or "none"
            raise _refuse(
                f"task {task.name!r} takes no parameter {unknown[0]!r} (its parameters: "
                f"{taken}); rename the data key or add it to the function",
                f"{where}data.{unknown[0]}", accepted=list(task.parameters))
    # a reserved key is jobtrack's to give (a flow job's flowId), never the submitter's
    missing = [p for p in task.required if p not in data and p not in RESERVED_DATA_KEYS]
    if missing:
        raise _refuse(
            f"task {task.name!r} requires {missing[0]!r} in the job's data",
            f"{where}data.{missing[0]}", required=list(task.required))


def check_phases(task: TaskDeclaration, phases: Sequence[str], *, where: str = "") -> None:
    """Refuse phases other than the declared ones (a task declaring none takes any)."""
    if task.phases and tuple(phases) != task.phases:
        raise _refuse(
            f"task {task.name!r} declares the phases {', '.join(task.phases)}; this job "
            f"gives {', '.join(phases)} (leave them out to use the declared ones)",
            f"{where}phases", accepted=list(task.phases))


def resolve(
    sub: Submission, task: TaskDeclaration | None, *, now: datetime,
    default_max_attempts: int, where: str = "", in_flow: bool = False,
) -> JobSpec:
    """The job ``sub`` asks for, against its task's declaration (None: undeclared).
    ``where`` prefixes the field named by a refusal (``children[0].`` in a flow)."""
    sub = apply_bullmq(sub, where=where, allow_job_id=not in_flow)
    phases = tuple(sub.phases) if sub.phases else ()
    if len(set(phases)) != len(phases):
        raise _refuse("phase names must be unique", f"{where}phases")
    if task is not None:
        check_data(task, sub.data, where=where)
        if phases:
            check_phases(task, phases, where=where)
        else:
            phases = task.phases
    max_attempts = (sub.max_attempts or (task.max_attempts if task else None)
                    or default_max_attempts)
    if max_attempts < 1:
        raise _refuse("max attempts must be at least 1", f"{where}maxAttempts")
    return JobSpec(
        name=sub.name,
        queue_name=sub.queue or (task.queue if task else DEFAULT_QUEUE),
        data=dict(sub.data),
        phases=phases,
        priority=int(sub.priority or 0),
        max_attempts=int(max_attempts),
        run_at=start_time(sub.run_at, sub.delay, now),
        idempotency_key=sub.idempotency_key,
        retry=sub.retry,
    )


def job_of(spec: JobSpec, *, id: str, tenant: str, now: datetime) -> Job:
    """The new pending job ``spec`` describes."""
    return new_job(
        id=id, tenant=tenant, queue_name=spec.queue_name, name=spec.name, now=now,
        data=spec.data, phases=spec.phases, priority=spec.priority, run_at=spec.run_at,
        max_attempts=spec.max_attempts, idempotency_key=spec.idempotency_key,
        retry=spec.retry,
    )


def pick(name: str, queue: str | None,
         declared: Sequence[TaskDeclaration]) -> TaskDeclaration | None:
    """The declaration a job of task ``name`` on ``queue`` resolves against, among those
    recorded for that name (one per queue): the one on its queue; with no queue given, the
    only one (several: the queue must be given). None: undeclared there."""
    if queue is not None:
        return next((d for d in declared if d.queue == queue), None)
    if len(declared) > 1:
        raise _refuse(
            f"task {name!r} is declared on the queues "
            f"{', '.join(d.queue for d in declared)}: give the queue", "queue",
            accepted=[d.queue for d in declared])
    return declared[0] if declared else None


@dataclass(frozen=True, slots=True)
class SubmissionNode:
    """One job of a flow as submitted, with the jobs that must complete before it."""

    submission: Submission
    children: Sequence["SubmissionNode"] = ()


def flow_names(root: SubmissionNode) -> set[str]:
    """Every task name of a submitted tree."""
    names: set[str] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        names.add(node.submission.name)
        stack.extend(node.children)
    return names


def resolve_tree(
    root: SubmissionNode, lookup: Callable[[Submission], TaskDeclaration | None], *,
    now: datetime, default_max_attempts: int,
) -> FlowNode:
    """The domain tree of a submitted flow, each job resolved against its task
    (``lookup``); a refusal names the job's path (``children[0].data.x``). Iterative: a
    tree of any depth reaches the depth limit of ``plan_tree`` and its clear error."""
    order: list[tuple[SubmissionNode, int | None, str]] = []
    stack: list[tuple[SubmissionNode, int | None, str]] = [(root, None, "")]
    while stack:  # pre-order: every parent before its children
        node, parent, where = stack.pop()
        order.append((node, parent, where))
        here = len(order) - 1
        stack.extend((child, here, f"{where}children[{i}].")
                     for i, child in reversed(list(enumerate(node.children))))
    kids: list[list[FlowNode]] = [[] for _ in order]
    built: FlowNode | None = None
    for index in range(len(order) - 1, -1, -1):  # children are built before parents
        node, parent, where = order[index]
        sub = node.submission
        spec = resolve(sub, lookup(sub), now=now, default_max_attempts=default_max_attempts,
                       where=where, in_flow=True)
        built = FlowNode(name=spec.name, queue_name=spec.queue_name, data=spec.data,
                         children=kids[index][::-1], phases=spec.phases,
                         priority=spec.priority, max_attempts=spec.max_attempts,
                         run_at=spec.run_at, retry=spec.retry)
        if parent is not None:
            kids[parent].append(built)
    assert built is not None
    return built
