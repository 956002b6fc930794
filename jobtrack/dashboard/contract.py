"""What the dashboard page knows of the status contract, rendered from the one module that
spells it (:mod:`jobtrack.domain.status`) and from the event types.

The page's script spells no status value: it reads the members embedded here as JSON
(``JobStatus.RUNNING`` and so on, like the TypeScript export), and its colours come from
CSS rules generated below, keyed by the enum members. So a status added to, or renamed in,
the domain module reaches the page without editing it.
"""

import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Final

from jobtrack.domain.events import EventType
from jobtrack.domain.status import RETRYABLE, TERMINAL, FlowStatus, JobStatus, PhaseStatus, Step

#: the one place the dashboard's status colours are chosen
JOB_STATUS_COLORS: Final[Mapping[JobStatus, str]] = {
    JobStatus.PENDING: "#64748b",
    JobStatus.RUNNING: "#2563eb",
    JobStatus.COMPLETED: "#15803d",
    JobStatus.FAILED: "#dc2626",
    JobStatus.CANCELLED: "#b45309",
}
PHASE_STATUS_COLORS: Final[Mapping[PhaseStatus, str]] = {
    PhaseStatus.NOT_STARTED: "#94a3b8",
    PhaseStatus.RUNNING: "#2563eb",
    PhaseStatus.PAUSED: "#7c3aed",
    PhaseStatus.COMPLETED: "#15803d",
    PhaseStatus.FAILED: "#dc2626",
    PhaseStatus.CANCELLED: "#b45309",
}
#: a flow's status takes the five job values, and so the job colours
FLOW_STATUS_COLORS: Final[Mapping[FlowStatus, str]] = {
    status: JOB_STATUS_COLORS[JobStatus(status.value)] for status in FlowStatus
}


def _members(enum: type[StrEnum]) -> dict[str, str]:
    return {member.name: member.value for member in enum}


def page_contract() -> dict[str, Any]:
    """The contract as the page's script reads it (member name -> value, in order)."""
    return {
        "JobStatus": _members(JobStatus),
        "PhaseStatus": _members(PhaseStatus),
        "FlowStatus": _members(FlowStatus),
        "Step": _members(Step),
        "EventType": _members(EventType),
        "terminal": [s.value for s in JobStatus if s in TERMINAL],
        "retryable": [s.value for s in JobStatus if s in RETRYABLE],
        "flowTerminal": [s.value for s in FlowStatus if JobStatus(s.value) in TERMINAL],
    }


def status_css() -> str:
    """One rule per status and kind: ``[data-job-status="failed"] { --status: #dc2626; }``.

    The page marks a badge or a bar with ``data-job-status`` (``-phase-``, ``-flow-``) and
    its stylesheet colours it with ``var(--status)``.
    """
    tables: tuple[tuple[str, Mapping[Any, str]], ...] = (
        ("job", JOB_STATUS_COLORS), ("flow", FLOW_STATUS_COLORS), ("phase", PHASE_STATUS_COLORS),
    )
    return "".join(
        f"[data-{kind}-status={json.dumps(status.value)}] {{ --status: {color}; }}\n"
        for kind, colors in tables for status, color in colors.items()
    )
