"""``GET /metrics``: Prometheus text exposition.

Who may read it: the bearer token ``JOBTRACK_METRICS_TOKEN`` when it is set (give that to
Prometheus: ``authorization: {credentials: ...}`` in the scrape config), or an admin API
key. Without either the answer is 401, and a tenant's key gets 403: the figures span
every tenant (queue names, job counts), so they are never open by default.

What it says:

- read from the database at each scrape, one aggregate query (the one ``GET /queues``
  runs, over every tenant): ``jobtrack_jobs{queue,status}`` (every status, zeros
  included), ``jobtrack_jobs_stuck{queue}`` (running longer than ``stuck_after_seconds``,
  default 30 minutes) and ``jobtrack_queue_oldest_pending_age_seconds{queue}`` (how long
  the oldest runnable job has waited); and ``jobtrack_table_bytes{table}`` (each table
  with its indexes: ``pg_total_relation_size`` on PostgreSQL; on SQLite ``dbstat``, which
  reads every page, so it is read again at most every ``SQLITE_SIZES_SECONDS``). When the
  database cannot be reached these are left out, ``jobtrack_database_up`` is 0, and the
  rest is still answered.
- from the stored event log, as this process's event hub reads it:
  ``jobtrack_job_transitions_total{queue,from,to}`` (``from`` is empty for a new job),
  ``jobtrack_jobs_finished_total{queue,status}`` (jobs reaching a final status: the
  failure rate is its ``failed`` share) and ``jobtrack_job_duration_seconds{queue,status}``
  (a histogram of the run time of each finished job's last attempt, from ``running`` to
  its final status; jobs that started before the process did are not timed).
- this process's HTTP traffic: ``jobtrack_http_requests_total{method,route,status}`` and
  ``jobtrack_http_request_duration_seconds{method,route}`` (a histogram of the time until
  the response starts, so an event stream counts the time to open it, not its life).
  ``route`` is the route's template (``/jobs/{jobId}``), ``unmatched`` for any other
  path, so the number of series stays bounded whatever clients send.
- this process's live updates: ``jobtrack_event_subscribers`` (open SSE, WebSocket and Socket.IO
  subscriptions), ``jobtrack_events_sent_total`` (events handed to them),
  ``jobtrack_event_subscribers_dropped_total`` (closed as too slow); and when the
  process runs the webhook loops (``webhooks_in_api``): ``jobtrack_webhook_deliveries_
  stored_total`` and ``jobtrack_webhook_attempts_total{outcome}`` (``delivered``,
  ``retry``, ``failed``).

Per-process figures start at zero when the process starts; with several API processes,
sum them. The database and event-log figures are the same from every process (take
``max``: each process reads every job's events).
"""

import asyncio
import contextlib
import hmac
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest as render
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobtrack.api.deps import StateDep, authenticate
from jobtrack.api.params import utcnow
from jobtrack.api.responses import errors
from jobtrack.api.routes.stream import Live
from jobtrack.domain.status import TERMINAL, JobStatus
from jobtrack.errors import Forbidden, JobtrackError
from jobtrack.events.hub import EventHub
from jobtrack.events.subscription import Subscription, SubscriptionClosed
from jobtrack.store.connect import is_unavailable
from jobtrack.store.events import StoredEvent
from jobtrack.store.queues import QueueStats, queue_overview
from jobtrack.store.sizes import table_bytes

router = APIRouter(tags=["operations"])

#: HTTP methods counted by name; anything else is ``other`` (bounded label values)
METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED: Final = "unmatched"
#: the classic text format, which every Prometheus version reads (the names used here
#: need none of the escaping that format 1.0.0 adds, so the body is the same)
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS: Final = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DURATION_BUCKETS: Final = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0,
                           4 * 3600.0, 24 * 3600.0)
#: running jobs whose start a process remembers to time them (oldest forgotten first)
MAX_TIMED_JOBS: Final = 100_000
#: SQLite: seconds a reading of the table sizes is reused (``dbstat`` reads every page)
SQLITE_SIZES_SECONDS: Final = 60.0
_RUNNING: Final = JobStatus.RUNNING.value
_FINAL: Final = frozenset(s.value for s in TERMINAL)

_bearer = HTTPBearer(auto_error=False,
                     description="an admin API key, or the metrics token")


@dataclass(slots=True)
class HttpMetrics:
    """One app's HTTP counters, in a registry of its own (never the global one)."""

    registry: CollectorRegistry
    requests: Counter
    latency: Histogram

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


def _size_family(sizes: dict[str, int]) -> Metric:
    family = GaugeMetricFamily("jobtrack_table_bytes",
                               "bytes on disk of each table, its indexes included",
                               labels=["table"])
    for name, size in sizes.items():
        family.add_metric([name], size)
    return family


class HttpMetricsMiddleware:
    """Counts every HTTP request by method, route template and status (pure ASGI)."""

    def __init__(self, app: ASGIApp, *, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # no answer at all: the server will say 500
        method = scope["method"] if scope["method"] in METHODS else "other"

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                self.metrics.latency.labels(method, _route(scope)).observe(
                    time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            self.metrics.requests.labels(method, _route(scope), str(status)).inc()


def _route(scope: Scope) -> str:
    """The template of the route that took the request (set by the router)."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else UNMATCHED


def install(app: FastAPI) -> None:
    """Serve ``GET /metrics`` on ``app``, count its HTTP requests, and (while the app's
    lifespan runs) count job transitions from its event hub."""
    metrics = HttpMetrics.new()
    jobs = JobMetrics.new(metrics.registry)
    app.state.jobtrack_http_metrics = metrics
    app.state.jobtrack_job_metrics = jobs
    app.state.jobtrack_table_sizes = TableSizes()
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)
    app.include_router(router)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with inner(app) as state:
            live = getattr(app.state, "jobtrack_live", None)
            task = asyncio.create_task(jobs.follow(live.hub), name="jobtrack-job-metrics") \
                if isinstance(live, Live) else None
            try:
                yield state
            finally:
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    app.router.lifespan_context = lifespan


async def _reader(
    request: Request,
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """The metrics token, or else an admin key (401 without a valid key, 403 for a
    tenant's key)."""
    token = state.settings.metrics_token
    if token and credentials is not None and hmac.compare_digest(
        credentials.credentials.encode(), token.encode()
    ):
        return
    caller = await authenticate(request, state, credentials)
    if not caller.admin:
        raise Forbidden("GET /metrics needs an admin key or the metrics token "
                        "(JOBTRACK_METRICS_TOKEN): the figures span every tenant")


class _Figures(Collector):
    """What one scrape read, as metric families."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def _queue_families(stats: list[QueueStats], now_ts: float) -> list[Metric]:
    jobs = GaugeMetricFamily("jobtrack_jobs", "jobs stored, by queue and status",
                             labels=["queue", "status"])
    stuck = GaugeMetricFamily("jobtrack_jobs_stuck",
                              "running jobs started longer ago than the stuck threshold",
                              labels=["queue"])
    oldest = GaugeMetricFamily("jobtrack_queue_oldest_pending_age_seconds",
                               "how long the oldest runnable pending job has waited",
                               labels=["queue"])
    for s in stats:
        for status in JobStatus:
            jobs.add_metric([s.queue_name, status.value], s.counts.get(status, 0))
        stuck.add_metric([s.queue_name], s.stuck)
        waited = 0.0 if s.oldest_pending_at is None else max(
            0.0, now_ts - s.oldest_pending_at.timestamp())
        oldest.add_metric([s.queue_name], round(waited, 3))
    return [jobs, stuck, oldest]


def _live_families(live: object, jobs: JobMetrics) -> list[Metric]:
    if not isinstance(live, Live):
        return []
    hub = live.hub
    out: list[Metric] = [  # (the job metrics' own subscription is not a client's)
        GaugeMetricFamily("jobtrack_event_subscribers",
                          "open live subscriptions (SSE, WebSocket, Socket.IO) of this process",
                          value=hub.subscriber_count() - int(jobs.following)),
        CounterMetricFamily("jobtrack_events_sent",
                            "events handed to live subscribers by this process",
                            value=hub.delivered - jobs.handed()),
        CounterMetricFamily("jobtrack_event_subscribers_dropped",
                            "live subscribers closed for being too slow", value=hub.dropped),
    ]
    if live.webhooks is not None:
        d = live.webhooks.deliverer
        out.append(CounterMetricFamily(
            "jobtrack_webhook_deliveries_stored",
            "webhook deliveries stored by this process's dispatcher",
            value=live.webhooks.dispatcher.dispatched))
        attempts = CounterMetricFamily(
            "jobtrack_webhook_attempts", "webhook delivery attempts by this process",
            labels=["outcome"])
        for outcome, n in (("delivered", d.delivered), ("retry", d.retried),
                           ("failed", d.failed)):
            attempts.add_metric([outcome], n)
        out.append(attempts)
    return out


@router.get(
    "/metrics", response_class=Response, dependencies=[Depends(_reader)],
    responses={200: {"description": "Prometheus text exposition format",
                     "content": {"text/plain": {
                         "schema": {"type": "string"}}}},
               **errors(401, 403, 429)},
)
async def metrics(request: Request, state: StateDep) -> Response:
    """Prometheus metrics: jobs by queue and status, stuck jobs, queue wait, this
    process's HTTP requests, live subscribers and webhook attempts. Needs the metrics
    token (``JOBTRACK_METRICS_TOKEN``) or an admin key."""
    now = utcnow()
    families: list[Metric] = []
    up = 1
    try:
        async with state.db.read() as conn:
            stats = await queue_overview(conn, tenant=None, now=now,
                                         stuck_after=state.settings.stuck_after_seconds)
            sizes = await request.app.state.jobtrack_table_sizes.read(
                conn, sqlite=state.db.is_sqlite)
        families += _queue_families(stats, now.timestamp())
        families.append(_size_family(sizes))
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        up = 0
    families.append(GaugeMetricFamily("jobtrack_database_up",
                                      "1 when the database answered this scrape", value=up))
    families += _live_families(getattr(request.app.state, "jobtrack_live", None),
                               request.app.state.jobtrack_job_metrics)
    http: HttpMetrics = request.app.state.jobtrack_http_metrics
    body = render(_Figures(families)) + render(http.registry)
    return Response(body, headers={"Content-Type": CONTENT_TYPE})
