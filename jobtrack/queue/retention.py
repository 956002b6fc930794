"""Retention: delete old finished jobs (with their phases and events), finished flows
with all their jobs, old rate-limit windows, and old events that are no job's history.

Each batch is its own short transaction, so retention runs beside live traffic without
holding locks for long; ``on_progress`` hears about every batch.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from jobtrack.store import keys as store_keys
from jobtrack.store import retention as store_retention
from jobtrack.store.engine import Database

#: rate-limit windows are one minute; keep the last hour of them
WINDOW_KEEP_SECONDS = 3600


@dataclass(slots=True)
class RetentionReport:
    """How many rows of each kind were deleted."""

    jobs: int = 0
    flows: int = 0
    events: int = 0
    windows: int = 0


async def purge(
    db: Database,
    *,
    job_days: float,
    event_days: float | None,
    batch: int = 1000,
    now: datetime | None = None,
    on_progress: Callable[[str, int], None] | None = None,
) -> RetentionReport:
    """Delete what is older than the limits, in batches of ``batch`` rows."""
    now = now or datetime.now(UTC)
    report = RetentionReport()
    job_cutoff = now - timedelta(days=job_days)

    def tell(kind: str, n: int) -> None:
        if on_progress is not None and n:
            on_progress(kind, n)

    while True:
        async with db.write() as conn:
            ids = await store_retention.old_job_ids(conn, before=job_cutoff, limit=batch)
            gone = await store_retention.delete_jobs(conn, ids)
        report.jobs += gone
        tell("jobs", gone)
        if len(ids) < batch:
            break
    while True:
        async with db.write() as conn:
            ids = await store_retention.old_flow_ids(conn, before=job_cutoff,
                                                     limit=max(1, batch // 100))
            flows, flow_jobs = await store_retention.delete_flows(conn, ids)
        report.flows += flows
        report.jobs += flow_jobs
        tell("flows", flows)
        if not ids:
            break
    async with db.write() as conn:
        report.windows = await store_keys.forget_windows(
            conn, int(now.timestamp()) - WINDOW_KEEP_SECONDS)
    tell("rate-limit windows", report.windows)
    if event_days is not None:
        event_cutoff = now - timedelta(days=event_days)
        while True:
            async with db.write() as conn:
                gone = await store_retention.delete_old_events(conn, before=event_cutoff,
                                                               limit=batch)
            report.events += gone
            tell("events", gone)
            if gone < batch:
                break
    return report
