"""A worker's counters: what it claimed, and how the runs it wrote ended."""

from collections.abc import Sequence
from dataclasses import dataclass

from jobtrack.domain.records import Change
from jobtrack.domain.status import JobStatus


@dataclass(slots=True)
class WorkerStats:
    """Counters of one worker's life, for logs, tests and benchmarks."""

    claimed: int = 0
    completed: int = 0
    failed: int = 0
    retried: int = 0
    cancelled: int = 0
    discarded: int = 0
    reaped: int = 0
    lost: int = 0

    def __str__(self) -> str:
        """``3 claimed, 2 completed, 1 failed, ...`` (every counter, in words)."""
        return ", ".join(f"{getattr(self, name)} {name}" for name in self.__slots__)

    def count_written(self, changes: Sequence[Change], discarded: int, worker_id: str) -> None:
        """Count the outcomes worker ``worker_id`` wrote: ``changes``, and ``discarded``
        outcomes of runs it no longer held."""
        self.discarded += discarded
        for change in changes:
            after = change.after
            if change.before.worker_id != worker_id:
                continue  # a flow parent this batch released or broke
            if after.status is JobStatus.COMPLETED:
                self.completed += 1
            elif after.status is JobStatus.FAILED:
                self.failed += 1
            elif after.status is JobStatus.CANCELLED:
                self.cancelled += 1
            elif after.status is JobStatus.PENDING:
                self.retried += 1
