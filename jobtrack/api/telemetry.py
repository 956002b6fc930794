"""This process's metrics registry: HTTP request counters (counted by
:class:`jobtrack.api.middleware.ApiGuard`), job transitions and run times (followed from the event
hub by :meth:`JobMetrics.follow`) and the last reading of the table sizes. ``GET
/metrics`` (:mod:`jobtrack.api.routes.metrics`) renders them.

:class:`Metrics` is built by the app factory, before the lifespan runs, because the HTTP
middleware needs it when the app is assembled; the lifespan hands the same object to the
API's state (:mod:`jobtrack.api.state`), which starts and stops the job follower.
"""

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import Scope

from jobtrack.domain.status import TERMINAL, JobStatus
from jobtrack.errors import JobtrackError
from jobtrack.events.hub import EventHub
from jobtrack.events.subscription import Subscription, SubscriptionClosed
from jobtrack.store.events import StoredEvent
from jobtrack.store.sizes import table_bytes

#: HTTP methods counted by name; anything else is ``other`` (bounded label values)
METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED: Final = "unmatched"
LATENCY_BUCKETS: Final = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DURATION_BUCKETS: Final = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0,
                           4 * 3600.0, 24 * 3600.0)
#: running jobs whose start a process remembers to time them (oldest forgotten first)
MAX_TIMED_JOBS: Final = 100_000
#: SQLite: seconds a reading of the table sizes is reused (``dbstat`` reads every page)
SQLITE_SIZES_SECONDS: Final = 60.0
_RUNNING: Final = JobStatus.RUNNING.value
_FINAL: Final = frozenset(s.value for s in TERMINAL)


@dataclass(slots=True)
class HttpMetrics:
    """One app's HTTP counters, in a registry of its own (never the global one)."""

    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    #: label children by their values: ``labels()`` takes a lock and checks its
    #: arguments at every call, twice per request
    _counted: dict[tuple[str, str, str], Any] = field(default_factory=dict)
    _timed: dict[tuple[str, str], Any] = field(default_factory=dict)

    def started(self, method: str, route: str, seconds: float) -> None:
        """A response started ``seconds`` after its request came in."""
        child = self._timed.get((method, route))
        if child is None:
            child = self._timed[(method, route)] = self.latency.labels(method, route)
        child.observe(seconds)

    def answered(self, method: str, route: str, status: int) -> None:
        key = (method, route, str(status))
        child = self._counted.get(key)
        if child is None:
            child = self._counted[key] = self.requests.labels(*key)
        child.inc()

    @classmethod
    def new(cls) -> "HttpMetrics":
        registry = CollectorRegistry(auto_describe=True)
        return cls(
            registry,
            Counter("jobtrack_http_requests", "HTTP requests answered by this process",
                    ["method", "route", "status"], registry=registry),
            Histogram("jobtrack_http_request_duration_seconds",
                      "seconds until the response started, by route template",
                      ["method", "route"], registry=registry, buckets=LATENCY_BUCKETS),
        )


@dataclass(slots=True)
class JobMetrics:
    """Job transitions and run times, counted from the stored event log as this process's
    event hub reads it (so every process reports every job, whoever moved it)."""

    transitions: Counter
    duration: Histogram
    finished: Counter
    #: job id -> when its current attempt started running
    started: "OrderedDict[str, datetime]" = field(default_factory=OrderedDict)
    #: queues seen: their finished counters start at zero for every final status, so
    #: the first failure of a queue is an increase Prometheus sees
    queues: set[str] = field(default_factory=set)
    #: events taken from the hub (its ``delivered`` count includes them)
    received: int = 0
    sub: Subscription | None = None

    @property
    def following(self) -> bool:
        return self.sub is not None

    def handed(self) -> int:
        """Events the hub handed to this (not to a client): taken, or still buffered."""
        return self.received + (self.sub.pending() if self.sub is not None else 0)

    @classmethod
    def new(cls, registry: CollectorRegistry) -> "JobMetrics":
        return cls(
            Counter("jobtrack_job_transitions", "job status changes, by queue",
                    ["queue", "from", "to"], registry=registry),
            Histogram("jobtrack_job_duration_seconds",
                      "run time of finished jobs (their last attempt, from running to the "
                      "final status), by queue and final status",
                      ["queue", "status"], registry=registry, buckets=DURATION_BUCKETS),
            Counter("jobtrack_jobs_finished", "jobs that reached a final status (completed, "
                    "failed, cancelled), by queue and that status", ["queue", "status"],
                    registry=registry),
        )

    def observe(self, event: StoredEvent) -> None:
        if event.to_status is None or event.job_id is None:
            return
        queue = event.queue_name or ""
        self.transitions.labels(queue, event.from_status or "", event.to_status).inc()
        if queue not in self.queues:
            self.queues.add(queue)
            for final in sorted(_FINAL):
                self.finished.labels(queue, final)
        if event.to_status in _FINAL:
            self.finished.labels(queue, event.to_status).inc()
        if event.to_status == _RUNNING:
            self.started[event.job_id] = event.at
            if len(self.started) > MAX_TIMED_JOBS:
                self.started.popitem(last=False)
            return
        began = self.started.pop(event.job_id, None)
        if began is not None and event.to_status in _FINAL:
            self.duration.labels(queue, event.to_status).observe(
                max(0.0, (event.at - began).total_seconds()))

    async def follow(self, hub: EventHub) -> None:
        """Count every event the hub hands out until it stops (a subscription dropped as
        too slow is made again; what it missed is not counted)."""
        while hub.running:
            try:
                sub = hub.subscribe(None)
            except JobtrackError:  # the hub has not reached the database yet
                await asyncio.sleep(1.0)
                continue
            self.sub = sub
            try:
                while True:
                    event = await sub.get()
                    self.received += 1
                    self.observe(event)
            except SubscriptionClosed:
                pass
            finally:
                self.received += sub.pending()  # (never taken now)
                self.sub = None
                sub.close("metrics stopped")


@dataclass(slots=True)
class TableSizes:
    """The last reading of the table sizes (reused for a while on SQLite only)."""

    sizes: dict[str, int] | None = None
    read_at: float = 0.0

    async def read(self, conn: Any, *, sqlite: bool) -> dict[str, int]:
        now = time.monotonic()
        if not (sqlite and self.sizes is not None
                and now - self.read_at < SQLITE_SIZES_SECONDS):
            self.sizes, self.read_at = await table_bytes(conn), now
        return self.sizes



def route_of(scope: Scope) -> str:
    """The template of the route that took the request (set by the router)."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else UNMATCHED



@dataclass(slots=True)
class Metrics:
    """Everything this process counts, in one registry of its own (never the global one)."""

    http: HttpMetrics
    jobs: JobMetrics
    sizes: TableSizes

    @property
    def registry(self) -> CollectorRegistry:
        return self.http.registry

    @classmethod
    def new(cls) -> "Metrics":
        http = HttpMetrics.new()
        return cls(http, JobMetrics.new(http.registry), TableSizes())
