"""The job planner (``jobtrack.domain.planner``): invariants under random request sequences,
then one example per behaviour.

The allowed transitions are written out from ``docs/reference/status-contract.md`` here rather than
read from the domain module, so the property test checks the planner against the spec.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from jobtrack.domain.phases import progress_from_phases
from jobtrack.domain.planner import (
    plan_cancel,
    plan_cascade,
    plan_children_done,
    plan_claim,
    plan_finish,
    plan_pause,
    plan_retry,
    plan_stall,
    plan_update,
)
from jobtrack.domain.records import Change, Job, JobUpdate, Phase, PhaseUpdate, Progress, new_job
from jobtrack.domain.status import (
    GENERIC_ALIASES,
    SOURCE_ALIASES,
    JobStatus,
    PhaseStatus,
    Step,
    job_status_from_phases,
    normalize_status,
)
from jobtrack.errors import Conflict, InvalidTransition, ValidationFailed

J = JobStatus
P = PhaseStatus
T0 = datetime(2030, 1, 1, tzinfo=UTC)
LEASE = timedelta(seconds=30)
PHASES = ("loading", "chunking", "embedding", "indexing")
REFUSALS = (InvalidTransition, Conflict, ValidationFailed)

#: docs/reference/status-contract.md, "Transitions": targets of a plain update
#: (running -> pending needs attempts left)
UPDATE_ALLOWED: Mapping[JobStatus, frozenset[JobStatus]] = {
    J.PENDING: frozenset({J.RUNNING, J.CANCELLED, J.FAILED}),
    J.RUNNING: frozenset({J.COMPLETED, J.FAILED, J.CANCELLED, J.PENDING}),
    J.COMPLETED: frozenset(),
    J.FAILED: frozenset(),
    J.CANCELLED: frozenset(),
}
#: docs/reference/status-contract.md: only the explicit retry action leaves failed / cancelled
RETRY_ALLOWED: Mapping[JobStatus, frozenset[JobStatus]] = {
    J.FAILED: frozenset({J.PENDING}),
    J.CANCELLED: frozenset({J.PENDING}),
}


def make_job(
    phases: tuple[str, ...] = PHASES, *, max_attempts: int = 1, **kwargs: Any
) -> Job:
    return new_job(id="job-1", tenant="t1", queue_name="default", name="ingest", now=T0,
                   phases=phases, max_attempts=max_attempts, **kwargs)


def claimed(job: Job, now: datetime = T0) -> Job:
    return plan_claim(job, now, worker_id="w1", lease_until=now + LEASE).after


def update(job: Job, now: datetime = T0, **kwargs: Any) -> Job:
    return plan_update(job, JobUpdate(**kwargs), now).after


def phase(job: Job, name: str, status: PhaseStatus | None = None,
          progress: Progress | None = None) -> Job:
    return update(job, phase=PhaseUpdate(name=name, status=status, progress=progress))


def statuses(job: Job) -> list[PhaseStatus]:
    return [p.status for p in job.phases]


# --- operations --------------------------------------------------------------------


def _phase_name(job: Job, index: int) -> str:
    # an index past the declared phases names a phase the job does not have
    return job.phases[index].name if index < len(job.phases) else "undeclared"


@dataclass(frozen=True)
class Op:
    """One request to the planner, drawn at random; ``run`` plans it against a job."""

    kind: str
    run: Callable[[Job, datetime], Change]
    label: str

    def __repr__(self) -> str:
        return self.label


#: every accepted spelling of every table, normalized as the API would before planning
SPELLINGS = sorted(
    [(alias, None) for alias in GENERIC_ALIASES]
    + [(alias, source) for source, table in SOURCE_ALIASES.items() for alias in table],
    key=lambda pair: (pair[1] or "", pair[0]),
)
job_statuses = st.sampled_from(SPELLINGS).flatmap(
    lambda pair: st.sampled_from([pair[0], pair[0].upper(), f" {pair[0]} "]).map(
        lambda spelling: normalize_status(spelling, pair[1])
    )
)
progresses = st.builds(
    Progress,
    done=st.integers(0, 20),
    total=st.none() | st.integers(0, 20),
)
indexes = st.integers(0, len(PHASES))


@st.composite
def updates(draw: st.DrawFn, *, phase_only: bool = False) -> Op:
    """A plain update; ``phase_only``: a worker's report on one declared phase."""
    status = None if phase_only else draw(st.none() | st.none() | job_statuses)
    phase_index = draw(st.integers(0, len(PHASES) - 1) if phase_only else st.none() | indexes)
    phase_status = draw(st.none() | st.sampled_from(PhaseStatus)
                        | st.sampled_from([P.RUNNING, P.COMPLETED]))
    phase_progress = draw(st.none() | progresses)
    step_index = None if phase_only else draw(st.none() | indexes)
    progress = None if phase_only else draw(st.none() | progresses)

    def run(job: Job, now: datetime) -> Change:
        phase_update = None
        if phase_index is not None:
            phase_update = PhaseUpdate(_phase_name(job, phase_index), phase_status,
                                       phase_progress)
        step = None
        if step_index is not None:
            step = _phase_name(job, step_index) if job.phases else f"step-{step_index}"
        upd = JobUpdate(status=status, step=step, progress=progress, phase=phase_update)
        return plan_update(job, upd, now)

    label = (f"update(status={status}, phase=#{phase_index} {phase_status} {phase_progress}, "
             f"step=#{step_index}, progress={progress})")
    return Op("update", run, label)


def _pause(index: int | None, resume: bool) -> Op:
    def run(job: Job, now: datetime) -> Change:
        name = None if index is None else _phase_name(job, index)
        return plan_pause(job, now, name, resume=resume)

    return Op("pause", run, f"{'resume' if resume else 'pause'}(#{index})")


def _simple(kind: str, run: Callable[[Job, datetime], Change], label: str = "") -> Op:
    return Op(kind, run, label or kind)


def _finish(status: JobStatus) -> Op:
    return _simple("finish", lambda job, now: plan_finish(job, status, now,
                                                          error={"message": "boom"}),
                   f"finish({status})")


def _cascade(status: JobStatus) -> Op:
    return _simple("cascade",
                   lambda job, now: plan_cascade(job, now, status=status, reason="child"),
                   f"cascade({status})")


def _stall(delay: int | None) -> Op:
    def run(job: Job, now: datetime) -> Change:
        retry_at = None if delay is None else now + timedelta(seconds=delay)
        return plan_stall(job, now, retry_at=retry_at)

    return Op("stall", run, f"stall(retry_at=+{delay})")


_claim = _simple("claim", lambda job, now: plan_claim(job, now, worker_id="w1",
                                                     lease_until=now + LEASE))
# weighted towards updates of running jobs, which is where phases get interesting
operations = st.sampled_from([
    st.just(_claim),
    st.just(_claim),
    *[updates()] * 8,
    st.builds(_pause, st.none() | indexes, st.booleans()),
    st.builds(_pause, st.none() | indexes, st.booleans()),
    st.just(_simple("cancel", plan_cancel)),
    st.just(_simple("retry", plan_retry)),
    st.builds(_stall, st.none() | st.integers(-5, 60)),
    st.builds(_finish, st.sampled_from(JobStatus)),
    st.builds(_cascade, st.sampled_from([J.FAILED, J.CANCELLED])),
    st.just(_simple("children_done", plan_children_done)),
]).flatmap(lambda strategy: strategy)


# --- invariants --------------------------------------------------------------------


def check_job(job: Job) -> None:
    """What must hold of every state a job can reach."""
    active = [p for p in job.phases if p.status in (P.RUNNING, P.PAUSED)]
    if job.status is J.RUNNING and job.phases:
        assert len(active) == 1, statuses(job)
        assert job.step == active[0].name
    if job.phases and job.status is not J.CANCELLED:
        derived = job_status_from_phases(statuses(job))
        never_ran = all(s is P.NOT_STARTED for s in statuses(job))
        # pending -> failed (it can never run) is decided at job level, like a cancel
        if not (job.status is J.FAILED and never_ran):
            assert derived is job.status, (job.status, statuses(job))
    if job.status is J.COMPLETED:
        assert all(s is P.COMPLETED for s in statuses(job))
    if job.is_terminal:
        assert not active, statuses(job)
        assert job.worker_id is None and job.lease_expires_at is None
        assert job.completed_at is not None
    else:
        assert job.completed_at is None
    if job.status is J.PENDING:
        assert all(s is P.NOT_STARTED for s in statuses(job)), statuses(job)
        assert not job.cancel_requested, "a requested cancel was lost to a retry"
    assert 1 <= job.attempt <= job.max_attempts, (job.attempt, job.max_attempts)


def check_change(op: Op, before: Job, change: Change) -> None:
    """What must hold of every change the planner accepts."""
    after = change.after
    assert change.before == before
    if change.is_noop:
        assert after == before
    if before.is_terminal and op.kind != "retry":
        assert after == before, "a terminal job was changed"
    is_retry = after.status is J.PENDING and (
        op.kind == "retry" or before.status is J.RUNNING
    )
    if op.kind == "retry":
        assert after.status in RETRY_ALLOWED.get(before.status, frozenset())
    elif after.status is not before.status:
        assert after.status in UPDATE_ALLOWED[before.status], (before.status, after.status)
        if is_retry:
            assert before.attempts_left, "automatic retry without attempts left"
    assert after.attempt == before.attempt + (1 if is_retry else 0)


def run_ops(job: Job, ops: list[tuple[Op, int]]) -> None:
    """Plan each op against the job so far; check every state and every accepted change."""
    check_job(job)
    now, retries = T0, 0
    for op, seconds in ops:
        now += timedelta(seconds=seconds)
        try:
            change = op.run(job, now)
        except REFUSALS:
            event(f"refused {op.kind} of a {job.status} job")
            continue
        event(f"accepted {op.kind}: {job.status} -> {change.after.status}")
        check_change(op, job, change)
        if change.after.attempt != job.attempt:
            retries += 1
        job = change.after
        check_job(job)
        assert job.attempt == 1 + retries


@settings(max_examples=400, deadline=None)
@given(
    phases=st.integers(0, len(PHASES)).map(lambda n: PHASES[:n]),
    max_attempts=st.integers(1, 3),
    children=st.sampled_from([0, 0, 2]),
    delayed=st.booleans(),
    ops=st.lists(st.tuples(operations, st.integers(0, 120)), max_size=40),
)
def test_planner_invariants(
    phases: tuple[str, ...],
    max_attempts: int,
    children: int,
    delayed: bool,
    ops: list[tuple[Op, int]],
) -> None:
    run_at = T0 + timedelta(seconds=60) if delayed else None
    run_ops(make_job(phases, max_attempts=max_attempts, children=children, run_at=run_at), ops)


#: what a worker reports while it runs a job with phases
phase_operations = st.sampled_from([
    *[updates(phase_only=True)] * 6,
    updates(),
    st.builds(_pause, st.none() | indexes, st.booleans()),
    st.just(_claim),
    st.builds(_stall, st.none() | st.integers(-5, 60)),
    st.just(_simple("cancel", plan_cancel)),
    st.builds(_finish, st.sampled_from(JobStatus)),
    st.just(_simple("retry", plan_retry)),
]).flatmap(lambda strategy: strategy)


@settings(max_examples=300, deadline=None)
@given(
    phases=st.integers(1, len(PHASES)).map(lambda n: PHASES[:n]),
    max_attempts=st.integers(1, 3),
    ops=st.lists(st.tuples(phase_operations, st.integers(0, 120)), max_size=40),
)
def test_planner_invariants_while_running_phases(
    phases: tuple[str, ...], max_attempts: int, ops: list[tuple[Op, int]]
) -> None:
    run_ops(claimed(make_job(phases, max_attempts=max_attempts)), ops)


# --- examples ----------------------------------------------------------------------


def test_new_job_is_pending_and_queued() -> None:
    job = make_job()
    assert (job.status, job.step, job.attempt) == (J.PENDING, Step.QUEUED, 1)
    assert statuses(job) == [P.NOT_STARTED] * 4


def test_new_job_step_says_why_it_waits() -> None:
    assert make_job(run_at=T0 + timedelta(minutes=5)).step == Step.DELAYED
    assert make_job(run_at=T0 - timedelta(minutes=5)).step == Step.QUEUED
    assert make_job(children=2).step == Step.WAITING_CHILDREN


def test_new_job_refuses_duplicate_phase_names() -> None:
    with pytest.raises(ValidationFailed):
        make_job(("a", "b", "a"))


def test_claim_starts_the_first_phase() -> None:
    change = plan_claim(make_job(), T0, worker_id="w1", lease_until=T0 + LEASE)
    job = change.after
    assert job.status is J.RUNNING
    assert statuses(job) == [P.RUNNING, P.NOT_STARTED, P.NOT_STARTED, P.NOT_STARTED]
    assert job.step == "loading"
    assert (job.worker_id, job.lease_expires_at, job.started_at) == ("w1", T0 + LEASE, T0)
    assert change.transition == (J.PENDING, J.RUNNING)


def test_claim_of_a_job_without_phases_steps_to_running() -> None:
    job = claimed(make_job(()))
    assert (job.status, job.step) == (J.RUNNING, Step.RUNNING)


def test_claim_refuses_a_running_job() -> None:
    with pytest.raises(InvalidTransition):
        claimed(claimed(make_job()))


def test_completing_a_phase_starts_the_next() -> None:
    job = phase(claimed(make_job()), "loading", P.COMPLETED)
    assert statuses(job) == [P.COMPLETED, P.RUNNING, P.NOT_STARTED, P.NOT_STARTED]
    assert (job.status, job.step) == (J.RUNNING, "chunking")


def test_completing_the_last_phase_completes_the_job() -> None:
    job = claimed(make_job())
    for name in PHASES:
        job = phase(job, name, P.COMPLETED)
    assert job.status is J.COMPLETED
    assert statuses(job) == [P.COMPLETED] * 4
    assert job.step == "indexing"
    assert job.completed_at == T0


def test_progress_on_a_later_phase_completes_the_earlier_ones() -> None:
    job = phase(claimed(make_job()), "embedding", progress=Progress(3, 10))
    assert statuses(job) == [P.COMPLETED, P.COMPLETED, P.RUNNING, P.NOT_STARTED]
    assert job.step == "embedding"
    assert job.phases[2].progress.percentage == 30.0


def test_phase_update_on_a_pending_job_starts_it() -> None:
    job = phase(make_job(), "loading", P.RUNNING)
    assert (job.status, job.step) == (J.RUNNING, "loading")


def test_unknown_phase_is_refused_naming_the_declared_ones() -> None:
    with pytest.raises(ValidationFailed, match="loading, chunking"):
        phase(claimed(make_job()), "training", P.RUNNING)


def test_failing_with_attempts_left_is_a_pending_retry() -> None:
    job = phase(claimed(make_job(max_attempts=3)), "loading", P.COMPLETED)
    later = T0 + timedelta(minutes=1)
    change = plan_update(job, JobUpdate(phase=PhaseUpdate("chunking", P.FAILED),
                                        retry_at=later), T0)
    after = change.after
    assert (after.status, after.attempt, after.step) == (J.PENDING, 2, Step.DELAYED)
    assert after.run_at == later
    assert statuses(after) == [P.NOT_STARTED] * 4
    assert after.worker_id is None
    assert change.transition == (J.RUNNING, J.PENDING)
    assert change.is_retry


def test_failing_the_last_attempt_fails_the_job() -> None:
    job = phase(claimed(make_job(max_attempts=1)), "loading", P.FAILED)
    assert job.status is J.FAILED
    assert statuses(job) == [P.FAILED, P.NOT_STARTED, P.NOT_STARTED, P.NOT_STARTED]


def test_reported_failure_with_attempts_left_is_a_retry() -> None:
    job = plan_finish(claimed(make_job((), max_attempts=2)), J.FAILED, T0,
                      error={"message": "boom"}).after
    assert (job.status, job.attempt, job.error) == (J.PENDING, 2, {"message": "boom"})
    job = plan_finish(claimed(job), J.FAILED, T0).after
    assert (job.status, job.attempt) == (J.FAILED, 2)


def test_cancel_of_a_pending_job_is_immediate() -> None:
    change = plan_cancel(make_job(), T0)
    assert change.after.status is J.CANCELLED
    assert change.after.completed_at == T0


def test_cancel_of_a_running_job_is_requested() -> None:
    job = claimed(make_job())
    requested = plan_cancel(job, T0).after
    assert (requested.status, requested.cancel_requested) == (J.RUNNING, True)
    acknowledged = plan_finish(requested, J.CANCELLED, T0).after
    assert acknowledged.status is J.CANCELLED
    assert statuses(acknowledged) == [P.CANCELLED, P.NOT_STARTED, P.NOT_STARTED, P.NOT_STARTED]


@pytest.mark.parametrize("status", [J.COMPLETED, J.FAILED, J.CANCELLED])
def test_cancel_of_a_finished_job_is_refused(status: JobStatus) -> None:
    job = plan_finish(claimed(make_job(())), status, T0).after
    with pytest.raises(InvalidTransition):
        plan_cancel(job, T0)


@pytest.mark.parametrize("status", [J.FAILED, J.CANCELLED])
def test_retry_from_failed_or_cancelled(status: JobStatus) -> None:
    done = plan_finish(claimed(make_job()), status, T0, error={"message": "x"}).after
    job = plan_retry(done, T0).after
    assert (job.status, job.attempt, job.step) == (J.PENDING, 2, Step.QUEUED)
    assert (job.error, job.result, job.cancel_requested, job.started_at) == (
        None, None, False, None)
    assert statuses(job) == [P.NOT_STARTED] * 4


def test_retry_refused_unless_failed_or_cancelled() -> None:
    pending = make_job()
    running = claimed(pending)
    completed = plan_finish(running, J.COMPLETED, T0).after
    for job in (pending, running, completed):
        with pytest.raises(InvalidTransition):
            plan_retry(job, T0)


@pytest.mark.parametrize("status", [J.PENDING, J.RUNNING, J.COMPLETED, J.FAILED, J.CANCELLED])
def test_finished_job_refuses_a_late_report(status: JobStatus) -> None:
    job = plan_finish(claimed(make_job(())), J.COMPLETED, T0).after
    with pytest.raises(InvalidTransition, match="never changed"):
        plan_update(job, JobUpdate(status=status), T0)


def test_pause_and_resume_the_current_phase() -> None:
    job = claimed(make_job())
    paused = plan_pause(job, T0).after
    assert statuses(paused)[0] is P.PAUSED
    assert (paused.status, paused.step) == (J.RUNNING, "loading")
    again = plan_pause(paused, T0)
    assert again.is_noop
    resumed = plan_pause(paused, T0, "loading", resume=True).after
    assert statuses(resumed)[0] is P.RUNNING


def test_cancel_of_a_paused_job_cancels_the_paused_phase() -> None:
    job = plan_pause(claimed(make_job()), T0).after
    job = plan_finish(plan_cancel(job, T0).after, J.CANCELLED, T0).after
    assert statuses(job)[0] is P.CANCELLED


@pytest.mark.parametrize("job", [make_job(), claimed(make_job(()))], ids=["pending", "no-phases"])
def test_pause_refused(job: Job) -> None:
    with pytest.raises(Conflict):
        plan_pause(job, T0)


def test_stall_with_attempts_left_is_retried() -> None:
    job = claimed(make_job(max_attempts=2))
    after = plan_stall(job, T0, retry_at=T0 + timedelta(seconds=10)).after
    assert (after.status, after.attempt, after.step) == (J.PENDING, 2, Step.DELAYED)
    assert after.error is not None and after.error["code"] == "stalled"


def test_stall_on_the_last_attempt_fails() -> None:
    after = plan_stall(claimed(make_job(max_attempts=1)), T0, retry_at=None).after
    assert after.status is J.FAILED
    assert after.error is not None
    assert after.error["code"] == "stalled"
    assert "w1" in after.error["message"]


@pytest.mark.parametrize(("max_attempts", "expected"), [(1, 2), (2, 2), (3, 3)])
def test_a_manual_retry_allows_the_attempt_it_starts(max_attempts: int, expected: int) -> None:
    """Attempt 1 ended (failed at its last attempt, or cancelled): the retry is attempt 2,
    and max_attempts is at least that; an exhausted job gets one more attempt."""
    job = plan_finish(claimed(make_job((), max_attempts=max_attempts)), J.CANCELLED, T0).after
    if max_attempts == 1:
        job = plan_finish(claimed(make_job((), max_attempts=1)), J.FAILED, T0).after
    after = plan_retry(job, T0).after
    assert (after.attempt, after.max_attempts) == (2, expected)
    assert not after.attempts_left if expected == 2 else after.attempts_left


def _ph(status: PhaseStatus, done: float = 0, total: float | None = None) -> Phase:
    return Phase(name=f"p{done}{total}{status}", status=status, done=done, total=total)


@pytest.mark.parametrize(("phases", "expected"), [
    pytest.param([], None, id="no-phases"),
    pytest.param([_ph(P.NOT_STARTED)] * 3, None, id="not-started"),
    # every total known: weighted by the totals
    pytest.param([_ph(P.COMPLETED, 10, 10), _ph(P.RUNNING, 15, 30)], Progress(25, 40),
                 id="weighted"),
    pytest.param([_ph(P.COMPLETED, 3, 10), _ph(P.RUNNING, 50, 30)], Progress(40, 40),
                 id="weighted-completed-counts-whole-running-capped"),
    # a total unknown: by count, completed phases 1, a running one done/total if known
    pytest.param([_ph(P.COMPLETED), _ph(P.RUNNING, 1, 4), _ph(P.NOT_STARTED),
                  _ph(P.NOT_STARTED)], Progress(1.25, 4), id="count"),
    pytest.param([_ph(P.COMPLETED, 5, 5), _ph(P.PAUSED, 3), _ph(P.NOT_STARTED)],
                 Progress(1, 3), id="count-running-total-unknown"),
    pytest.param([_ph(P.COMPLETED), _ph(P.COMPLETED)], Progress(2, 2), id="all-completed"),
])
def test_progress_from_phases(phases: list[Phase], expected: Progress | None) -> None:
    assert progress_from_phases(phases) == expected


def test_a_phased_job_shows_how_far_it_is() -> None:
    job = claimed(make_job())
    assert job.progress == Progress(0, 4)
    job = update(job, phase=PhaseUpdate("loading", progress=Progress(5, 10)))
    assert job.progress is not None and job.progress.percentage == 12.5
    job = update(job, phase=PhaseUpdate("loading", status=P.COMPLETED))
    assert job.progress == Progress(1, 4)
    # a progress reported for the job itself stands until its phases next move
    reported = update(job, progress=Progress(90, 100))
    assert reported.progress == Progress(90, 100)
    moved = update(reported, phase=PhaseUpdate("chunking", progress=Progress(1, 2)))
    assert moved.progress == Progress(1.5, 4)
    assert plan_finish(reported, J.COMPLETED, T0).after.progress == Progress(4, 4)
    # without phases, the reported progress stays
    assert update(claimed(make_job(())), progress=Progress(9, 10)).progress == Progress(9, 10)


@pytest.mark.parametrize("outcome", [J.COMPLETED, J.FAILED, J.CANCELLED])
def test_a_finished_attempt_carries_only_its_own_error(outcome: JobStatus) -> None:
    """Attempt 1 stalled, attempt 2 ran: the earlier error is kept while the retry waits
    (it says why), and cleared when the next attempt starts."""
    retried = plan_stall(claimed(make_job(max_attempts=2)), T0, retry_at=None).after
    assert retried.error is not None and retried.error["code"] == "stalled"
    second = claimed(retried)
    assert (second.attempt, second.error) == (2, None)
    done = plan_finish(second, outcome, T0).after
    assert (done.status, done.error) == (outcome, None)


def test_an_external_start_clears_the_last_attempt_error_unless_it_reports_one() -> None:
    retried = plan_finish(claimed(make_job((), max_attempts=3)), J.FAILED, T0,
                          error={"message": "boom"}).after
    assert plan_update(retried, JobUpdate(status=J.RUNNING), T0).after.error is None
    reported = plan_update(retried, JobUpdate(status=J.RUNNING, error={"message": "w"}), T0)
    assert reported.after.error == {"message": "w"}


@pytest.mark.parametrize("status", [J.FAILED, J.CANCELLED])
def test_cascade_of_a_pending_parent(status: JobStatus) -> None:
    parent = make_job((), children=2)
    after = plan_cascade(parent, T0, status=status, reason="child job c1 failed").after
    assert after.status is status
    if status is J.FAILED:
        assert after.error == {"message": "child job c1 failed", "code": "child_failed"}


def test_cascade_cancel_of_a_running_parent_is_a_request() -> None:
    after = plan_cascade(claimed(make_job()), T0, status=J.CANCELLED, reason="r").after
    assert (after.status, after.cancel_requested) == (J.RUNNING, True)


def test_cascade_leaves_a_finished_job_alone() -> None:
    job = plan_finish(claimed(make_job()), J.COMPLETED, T0).after
    assert plan_cascade(job, T0, status=J.FAILED, reason="r").is_noop


def test_children_done_makes_the_parent_runnable() -> None:
    parent = make_job(children=2)
    after = plan_children_done(parent, T0).after
    assert (after.status, after.step, after.children_left) == (J.PENDING, Step.QUEUED, 0)
    assert plan_children_done(after, T0).is_noop
    delayed = make_job(children=1, run_at=T0 + timedelta(minutes=1))
    assert plan_children_done(delayed, T0).after.step == Step.DELAYED


def test_same_status_progress_update_is_progress() -> None:
    job = claimed(make_job(()))
    change = plan_update(job, JobUpdate(status=J.RUNNING, progress=Progress(1, 4)), T0)
    assert change.transition is None
    assert change.changed == {"progress"}
    assert change.after.progress is not None and change.after.progress.percentage == 25.0


def test_stall_of_a_job_no_longer_running_is_a_noop() -> None:
    # the reaper raced the worker's own failure report, which already queued a retry
    retried = plan_finish(claimed(make_job(max_attempts=2)), J.FAILED, T0).after
    assert plan_stall(retried, T0, retry_at=None).is_noop


@pytest.mark.parametrize("report", [
    pytest.param(lambda job: plan_stall(job, T0, retry_at=None), id="stall"),
    pytest.param(lambda job: plan_finish(job, J.FAILED, T0), id="failure"),
])
def test_a_cancel_requested_while_running_wins_over_a_retry(
    report: Callable[[Job], Change],
) -> None:
    job = plan_cancel(claimed(make_job(max_attempts=3)), T0).after
    after = report(job).after
    assert (after.status, after.attempt) == (J.CANCELLED, 1)


def test_step_enters_that_phase() -> None:
    job = update(make_job(), step="chunking", phase=PhaseUpdate("loading"))
    assert (job.status, job.step) == (J.RUNNING, "chunking")
    assert statuses(job)[:2] == [P.COMPLETED, P.RUNNING]


@pytest.mark.parametrize(
    ("job", "upd"),
    [
        pytest.param(make_job(), JobUpdate(status=J.PENDING, step="loading"),
                     id="pending-but-in-a-phase"),
        pytest.param(claimed(make_job(("only",))),
                     JobUpdate(status=J.RUNNING, phase=PhaseUpdate("only", P.COMPLETED)),
                     id="running-but-all-phases-done"),
        pytest.param(claimed(make_job(("only",))),
                     JobUpdate(status=J.FAILED, phase=PhaseUpdate("only", P.COMPLETED)),
                     id="failed-but-all-phases-done"),
    ],
)
def test_a_status_that_contradicts_the_phases_is_refused(job: Job, upd: JobUpdate) -> None:
    with pytest.raises(ValidationFailed, match="contradicts"):
        plan_update(job, upd, T0)
