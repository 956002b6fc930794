"""Every rule of ``shared/spec/status.md``, one parametrized row each.

Expected values are written out from the spec here, not read from
``jobtrack.domain.status``, so a change to the module's tables fails a test.
"""

from collections.abc import Mapping

import pytest

from jobtrack.domain.status import (
    GENERIC_ALIASES,
    SOURCE_ALIASES,
    Action,
    FlowStatus,
    JobStatus,
    PhaseStatus,
    allowed_targets,
    check_phase_transition,
    check_transition,
    flow_status,
    is_alias,
    is_terminal,
    job_status_from_phases,
    normalize_status,
    percentage,
)
from jobtrack.errors import InvalidTransition, UnknownStatus, ValidationFailed

J = JobStatus
P = PhaseStatus
CANONICAL = ("pending", "running", "completed", "failed", "cancelled")


def test_exactly_five_canonical_lowercase_job_statuses() -> None:
    assert [s.value for s in JobStatus] == list(CANONICAL)
    assert [s.value for s in FlowStatus] == list(CANONICAL)


@pytest.mark.parametrize(
    ("status", "terminal"),
    [("pending", False), ("running", False), ("completed", True), ("failed", True),
     ("cancelled", True)],
)
def test_is_terminal(status: str, terminal: bool) -> None:
    assert is_terminal(status) is terminal
    assert is_terminal(JobStatus(status)) is terminal


# --- job transitions -------------------------------------------------------------

#: (from, action, attempts_left) -> targets the spec allows; same-status counts for updates
ALLOWED: Mapping[tuple[JobStatus, Action, bool], set[JobStatus]] = {
    (J.PENDING, Action.UPDATE, True): {J.PENDING, J.RUNNING, J.CANCELLED, J.FAILED},
    (J.PENDING, Action.UPDATE, False): {J.PENDING, J.RUNNING, J.CANCELLED, J.FAILED},
    (J.RUNNING, Action.UPDATE, True): {J.RUNNING, J.COMPLETED, J.FAILED, J.CANCELLED, J.PENDING},
    (J.RUNNING, Action.UPDATE, False): {J.RUNNING, J.COMPLETED, J.FAILED, J.CANCELLED},
    (J.COMPLETED, Action.UPDATE, True): set(),
    (J.COMPLETED, Action.UPDATE, False): set(),
    (J.FAILED, Action.UPDATE, True): set(),
    (J.FAILED, Action.UPDATE, False): set(),
    (J.CANCELLED, Action.UPDATE, True): set(),
    (J.CANCELLED, Action.UPDATE, False): set(),
    (J.PENDING, Action.RETRY, True): set(),
    (J.PENDING, Action.RETRY, False): set(),
    (J.RUNNING, Action.RETRY, True): set(),
    (J.RUNNING, Action.RETRY, False): set(),
    (J.COMPLETED, Action.RETRY, True): set(),
    (J.COMPLETED, Action.RETRY, False): set(),
    (J.FAILED, Action.RETRY, True): {J.PENDING},
    (J.FAILED, Action.RETRY, False): {J.PENDING},
    (J.CANCELLED, Action.RETRY, True): {J.PENDING},
    (J.CANCELLED, Action.RETRY, False): {J.PENDING},
}

TRANSITION_CASES = [
    pytest.param(current, target, action, left, target in allowed,
                 id=f"{current}-{action}-{'left' if left else 'last'}->{target}")
    for (current, action, left), allowed in ALLOWED.items()
    for target in JobStatus
]


@pytest.mark.parametrize(("current", "action", "attempts_left"), list(ALLOWED))
def test_allowed_targets(current: JobStatus, action: Action, attempts_left: bool) -> None:
    expected = ALLOWED[current, action, attempts_left]
    assert allowed_targets(current, action, attempts_left=attempts_left) == expected


@pytest.mark.parametrize(
    ("current", "target", "action", "attempts_left", "allowed"), TRANSITION_CASES
)
def test_check_transition(
    current: JobStatus, target: JobStatus, action: Action, attempts_left: bool, allowed: bool
) -> None:
    if allowed:
        check_transition(current, target, action, attempts_left=attempts_left)
        return
    with pytest.raises(InvalidTransition) as info:
        check_transition(current, target, action, attempts_left=attempts_left)
    err = info.value
    assert err.code == "invalid_transition"
    assert (err.current, err.target) == (current.value, target.value)
    assert err.allowed == sorted(s.value for s in ALLOWED[current, action, attempts_left])
    assert repr(current.value) in err.message
    assert repr(target.value) in err.message
    for name in err.allowed:
        assert name in err.message


def test_check_transition_defaults_to_a_plain_update() -> None:
    with pytest.raises(InvalidTransition):
        check_transition(J.FAILED, J.PENDING)
    check_transition(J.FAILED, J.PENDING, Action.RETRY)


@pytest.mark.parametrize("terminal", [J.COMPLETED, J.FAILED, J.CANCELLED])
@pytest.mark.parametrize("target", list(JobStatus))
def test_terminal_job_never_changed_by_a_plain_update(
    terminal: JobStatus, target: JobStatus
) -> None:
    # not even a same-status report (a late or duplicated "completed")
    for attempts_left in (True, False):
        with pytest.raises(InvalidTransition):
            check_transition(terminal, target, attempts_left=attempts_left)


# --- phase transitions -----------------------------------------------------------

#: (from, with_job) -> targets the spec allows; same-status (progress) counts while active
PHASE_ALLOWED: Mapping[tuple[PhaseStatus, bool], set[PhaseStatus]] = {
    (P.NOT_STARTED, False): {P.RUNNING},
    (P.NOT_STARTED, True): {P.RUNNING},
    (P.RUNNING, False): {P.RUNNING, P.PAUSED, P.COMPLETED, P.FAILED},
    (P.RUNNING, True): {P.RUNNING, P.PAUSED, P.COMPLETED, P.FAILED, P.CANCELLED},
    (P.PAUSED, False): {P.PAUSED, P.RUNNING},
    (P.PAUSED, True): {P.PAUSED, P.RUNNING, P.CANCELLED},
    (P.COMPLETED, False): set(),
    (P.COMPLETED, True): set(),
    (P.FAILED, False): set(),
    (P.FAILED, True): set(),
    (P.CANCELLED, False): set(),
    (P.CANCELLED, True): set(),
}


@pytest.mark.parametrize(
    ("current", "target", "with_job", "allowed"),
    [
        pytest.param(current, target, with_job, target in allowed,
                     id=f"{current}->{target}{'-with-job' if with_job else ''}")
        for (current, with_job), allowed in PHASE_ALLOWED.items()
        for target in PhaseStatus
    ],
)
def test_check_phase_transition(
    current: PhaseStatus, target: PhaseStatus, with_job: bool, allowed: bool
) -> None:
    if allowed:
        check_phase_transition("embedding", current, target, with_job=with_job)
        return
    with pytest.raises(InvalidTransition) as info:
        check_phase_transition("embedding", current, target, with_job=with_job)
    assert "phase 'embedding'" in info.value.message
    assert info.value.allowed == sorted(s.value for s in PHASE_ALLOWED[current, with_job])


# --- aggregation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("phases", "attempts_left", "expected"),
    [
        pytest.param([], False, None, id="no-phases"),
        # rule 1: any phase failed -> failed once attempts are exhausted, else a retry
        pytest.param([P.COMPLETED, P.FAILED, P.NOT_STARTED], False, J.FAILED, id="1-failed"),
        pytest.param([P.COMPLETED, P.FAILED, P.NOT_STARTED], True, J.PENDING, id="1-retry"),
        pytest.param([P.FAILED, P.RUNNING], False, J.FAILED, id="1-beats-3"),
        pytest.param([P.COMPLETED, P.FAILED], False, J.FAILED, id="1-beats-2"),
        # rule 2: all completed
        pytest.param([P.COMPLETED], False, J.COMPLETED, id="2-one"),
        pytest.param([P.COMPLETED] * 4, True, J.COMPLETED, id="2-all"),
        # rule 3: any running or paused
        pytest.param([P.COMPLETED, P.RUNNING, P.NOT_STARTED], False, J.RUNNING, id="3-running"),
        pytest.param([P.COMPLETED, P.PAUSED, P.NOT_STARTED], False, J.RUNNING, id="3-paused"),
        # rule 3: some completed, the rest not started: between two phases, still running
        pytest.param([P.COMPLETED, P.NOT_STARTED], False, J.RUNNING, id="3-between-phases"),
        pytest.param([P.COMPLETED, P.COMPLETED, P.NOT_STARTED, P.NOT_STARTED], True,
                     J.RUNNING, id="3-between-phases-later"),
        # rule 4: otherwise pending
        pytest.param([P.NOT_STARTED] * 3, False, J.PENDING, id="4-none-started"),
        pytest.param([P.CANCELLED, P.NOT_STARTED], False, J.PENDING, id="4-cancel-not-derived"),
    ],
)
def test_job_status_from_phases(
    phases: list[PhaseStatus], attempts_left: bool, expected: JobStatus | None
) -> None:
    assert job_status_from_phases(phases, attempts_left=attempts_left) is expected
    assert job_status_from_phases(iter(phases), attempts_left=attempts_left) is expected


@pytest.mark.parametrize(
    ("counts", "cancelled_by_user", "expected"),
    [
        # rule 1: any job failed, whatever else
        pytest.param({J.FAILED: 1, J.COMPLETED: 3}, False, FlowStatus.FAILED, id="1"),
        pytest.param({J.FAILED: 1, J.RUNNING: 2}, True, FlowStatus.FAILED, id="1-beats-3"),
        # rule 2: all jobs completed
        pytest.param({J.COMPLETED: 4}, False, FlowStatus.COMPLETED, id="2"),
        pytest.param({J.COMPLETED: 4, J.FAILED: 0}, True, FlowStatus.COMPLETED, id="2-beats-3"),
        # rule 3: cancelled by a user
        pytest.param({J.RUNNING: 1, J.CANCELLED: 2}, True, FlowStatus.CANCELLED, id="3"),
        pytest.param({}, True, FlowStatus.CANCELLED, id="3-empty"),
        # rule 4: any job running
        pytest.param({J.RUNNING: 1, J.PENDING: 5}, False, FlowStatus.RUNNING, id="4"),
        pytest.param({J.RUNNING: 1, J.COMPLETED: 5}, False, FlowStatus.RUNNING, id="4-partly-done"),
        # rule 4: any job finished (the flow has started), the next not claimed yet
        pytest.param({J.PENDING: 2, J.COMPLETED: 2}, False, FlowStatus.RUNNING, id="4-between"),
        pytest.param({J.PENDING: 1, J.CANCELLED: 1}, False, FlowStatus.RUNNING,
                     id="4-one-cancelled-others-left"),
        # every job finished, some cancelled (not by a user of the flow), none failed: the
        # flow is over, and it is cancelled rather than running forever
        pytest.param({J.CANCELLED: 1, J.COMPLETED: 1}, False, FlowStatus.CANCELLED,
                     id="4-all-finished-some-cancelled"),
        pytest.param({J.CANCELLED: 3}, False, FlowStatus.CANCELLED, id="4-all-cancelled"),
        # rule 5: otherwise pending
        pytest.param({J.PENDING: 3}, False, FlowStatus.PENDING, id="5"),
        pytest.param({}, False, FlowStatus.PENDING, id="5-empty"),
    ],
)
def test_flow_status(
    counts: dict[JobStatus, int], cancelled_by_user: bool, expected: FlowStatus
) -> None:
    assert flow_status(counts, cancelled_by_user=cancelled_by_user) is expected


@pytest.mark.parametrize(
    ("done", "total", "expected"),
    [(0, 0, 0.0), (3, 0, 0.0), (1, -1, 0.0), (0, 4, 0.0), (1, 4, 25.0), (1, 3, 33.33),
     (2, 3, 66.67), (3, 3, 100.0), (999, 1000, 99.9)],
)
def test_percentage(done: int, total: int, expected: float) -> None:
    assert percentage(done, total) == expected


# --- aliases ---------------------------------------------------------------------

#: status.md, "Aliases": canonical -> accepted aliases, per table (None: generic)
SPEC_ALIASES: Mapping[str | None, Mapping[str, tuple[str, ...]]] = {
    None: {
        "pending": ("pending", "queued", "waiting", "delayed", "scheduled", "deferred",
                    "created", "not_started", "todo", "waiting-children", "prioritized"),
        "running": ("running", "started", "active", "processing", "in_progress", "doing"),
        "completed": ("completed", "complete", "finished", "succeeded", "success", "done"),
        "failed": ("failed", "error", "errored", "failure"),
        "cancelled": ("cancelled", "canceled", "revoked", "aborted", "stopped"),
    },
    "bullmq": {
        "pending": ("waiting", "delayed", "waiting-children", "prioritized", "paused"),
        "running": ("active",),
        "completed": ("completed",),
        "failed": ("failed",),
    },
    "celery": {
        "pending": ("PENDING", "RECEIVED"),
        "running": ("STARTED", "RETRY"),
        "completed": ("SUCCESS",),
        "failed": ("FAILURE",),
        "cancelled": ("REVOKED",),
    },
    "rq": {
        "pending": ("queued", "deferred", "scheduled"),
        "running": ("started",),
        "completed": ("finished",),
        "failed": ("failed",),
        "cancelled": ("stopped", "canceled"),
    },
    "legacy": {
        "pending": ("QUEUED",),
        "running": ("STARTED",),
        "completed": ("COMPLETED",),
        "failed": ("ERROR",),
        "cancelled": ("CANCELLED",),
    },
}

SPEC_ROWS = [
    (source, alias, canonical)
    for source, table in SPEC_ALIASES.items()
    for canonical, aliases in table.items()
    for alias in aliases
]


def _spelled(value: str) -> list[str]:
    """The ways a client may spell one value: any case, surrounding whitespace."""
    return [value, value.lower(), value.upper(), value.title(), f"  {value}\t",
            f"\n{value.upper()} "]


@pytest.mark.parametrize(("source", "alias", "canonical"), SPEC_ROWS)
def test_spec_alias(source: str | None, alias: str, canonical: str) -> None:
    for spelling in _spelled(alias):
        assert normalize_status(spelling, source) is JobStatus(canonical)


@pytest.mark.parametrize("source", list(SPEC_ALIASES))
def test_alias_tables_hold_exactly_the_spec(source: str | None) -> None:
    table = GENERIC_ALIASES if source is None else SOURCE_ALIASES[source]
    expected = {a.lower(): J(c) for c, aliases in SPEC_ALIASES[source].items() for a in aliases}
    assert dict(table) == expected


def test_every_source_table_is_in_the_spec() -> None:
    assert set(SOURCE_ALIASES) == {s for s in SPEC_ALIASES if s is not None}


@pytest.mark.parametrize(
    ("source", "alias", "canonical"),
    [(None, k, v) for k, v in GENERIC_ALIASES.items()]
    + [(s, k, v) for s, table in SOURCE_ALIASES.items() for k, v in table.items()],
)
def test_every_table_entry_normalizes_in_any_spelling(
    source: str | None, alias: str, canonical: JobStatus
) -> None:
    for spelling in _spelled(alias):
        assert normalize_status(spelling, source) is canonical


@pytest.mark.parametrize(
    ("value", "source"),
    [("active", "BullMQ"), ("started", " celery "), ("started", "RQ"), ("started", "Legacy")],
)
def test_source_name_is_case_insensitive(value: str, source: str) -> None:
    assert normalize_status(value, source) is J.RUNNING


@pytest.mark.parametrize(
    ("value", "source"),
    [
        ("", None), ("   ", None), ("unknown", None), ("pend", None), ("runningg", None),
        ("stuck", None), ("paused", None), ("retry", None), ("received", None), ("0", None),
        ("in progress", None), ("waiting children", None), ("constructor", None),
        ("__proto__", None),
        ("running", "bullmq"), ("cancelled", "bullmq"), ("queued", "bullmq"),
        ("running", "celery"), ("queued", "celery"), ("failed", "celery"),
        ("active", "rq"), ("pending", "rq"), ("done", "rq"),
        ("pending", "legacy"), ("done", "legacy"), ("failed", "legacy"),
    ],
)
def test_unknown_value_raises_naming_the_canonical_values(value: str, source: str | None) -> None:
    with pytest.raises(UnknownStatus) as info:
        normalize_status(value, source)
    err = info.value
    assert isinstance(err, ValidationFailed)
    assert err.code == "invalid_status"
    assert err.value == value
    assert err.accepted == list(CANONICAL)
    for name in CANONICAL:
        assert name in err.message


@pytest.mark.parametrize("spelling", ["stuck", "STUCK", " Stuck\n"])
def test_bullmq_stuck_is_refused(spelling: str) -> None:
    with pytest.raises(UnknownStatus) as info:
        normalize_status(spelling, "bullmq")
    assert "not a status" in info.value.message
    for name in CANONICAL:
        assert name in info.value.message


@pytest.mark.parametrize("source", ["sidekiq", "", "bull", "celery-beat"])
def test_unknown_source_is_refused(source: str) -> None:
    with pytest.raises(UnknownStatus) as info:
        normalize_status("pending", source)
    for known in ("bullmq", "celery", "legacy", "rq"):
        assert known in info.value.message


@pytest.mark.parametrize(
    ("value", "source", "expected"),
    [("pending", None, False), ("done", None, True), ("PENDING", None, True),
     (" running", None, True), ("completed", "bullmq", False), ("SUCCESS", "celery", True)],
)
def test_is_alias(value: str, source: str | None, expected: bool) -> None:
    assert is_alias(value, source) is expected
