"""The phase rules: how a job's ordered phases move when it runs, finishes or is
retried, which phase names its running step, and the progress they add up to.

Pure functions over :class:`~jobtrack.domain.records.Phase` tuples, used by the planner.
"""

from collections.abc import Sequence
from datetime import datetime

from jobtrack.domain._copy import replace
from jobtrack.domain.records import Phase, Progress
from jobtrack.domain.status import JobStatus, PhaseStatus


def progress_from_phases(phases: Sequence[Phase]) -> Progress | None:
    """How far a phased job is, from its phases; None before any phase started.

    Weighted by the phases' totals when every total is known (a completed phase counts
    its whole total); otherwise by count: a completed phase counts 1, any other its
    ``done / total`` when its total is known, else 0, out of the number of phases.
    """
    started, weighted = False, True
    total: float = 0
    done: float = 0
    counted = 0.0
    for p in phases:  # one pass: this runs on every change of a phased job
        status, size = p.status, p.total
        if status is not PhaseStatus.NOT_STARTED:
            started = True
        if size is None or size <= 0:
            weighted = False
            if status is PhaseStatus.COMPLETED:
                counted += 1.0
            continue
        total += size
        part = size if status is PhaseStatus.COMPLETED or p.done > size else p.done
        done += part
        counted += part / size
    if not started:
        return None
    if weighted:
        return Progress(done, total)
    return Progress(round(counted, 6), len(phases))


def enter_phase(phases: Sequence[Phase], index: int, now: datetime) -> list[Phase]:
    """Start phase ``index``; phases before it count as done (phases are ordered)."""
    out = list(phases)
    for i in range(index):
        if out[i].status in (PhaseStatus.NOT_STARTED, PhaseStatus.RUNNING, PhaseStatus.PAUSED):
            out[i] = replace(out[i], status=PhaseStatus.COMPLETED, completed_at=now,
                             started_at=out[i].started_at or now)
    if out[index].status is PhaseStatus.NOT_STARTED:
        out[index] = replace(out[index], status=PhaseStatus.RUNNING, started_at=now)
    return out


def start_next_phase(phases: Sequence[Phase], now: datetime) -> list[Phase]:
    """Keep a running job's phases honest: if none is running or paused, start the next."""
    out = list(phases)
    if any(p.status in (PhaseStatus.RUNNING, PhaseStatus.PAUSED) for p in out):
        return out
    for i, phase in enumerate(out):
        if phase.status is PhaseStatus.NOT_STARTED:
            return enter_phase(out, i, now)
    return out


def settle_phases(phases: Sequence[Phase], status: JobStatus, now: datetime) -> list[Phase]:
    """Phases of a job that has just become ``status``."""
    out = []
    for p in phases:
        if status is JobStatus.COMPLETED and p.status is not PhaseStatus.COMPLETED:
            p = replace(p, status=PhaseStatus.COMPLETED, completed_at=now,
                        started_at=p.started_at or now,
                        done=p.total if p.total is not None else p.done)
        elif status is JobStatus.FAILED and p.status in (PhaseStatus.RUNNING, PhaseStatus.PAUSED):
            p = replace(p, status=PhaseStatus.FAILED, completed_at=now)
        elif status is JobStatus.CANCELLED and p.status in (
            PhaseStatus.RUNNING, PhaseStatus.PAUSED
        ):
            p = replace(p, status=PhaseStatus.CANCELLED, completed_at=now)
        out.append(p)
    return out


def reset_phases(phases: Sequence[Phase]) -> tuple[Phase, ...]:
    """The same phases, none started (a retry runs them all again)."""
    return tuple(Phase(name=p.name) for p in phases)


def running_step(phases: Sequence[Phase], fallback: str) -> str:
    """A running job's step: the name of its running or paused phase, else ``fallback``."""
    for p in phases:
        if p.status in (PhaseStatus.RUNNING, PhaseStatus.PAUSED):
            return p.name
    return fallback
