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

import hmac
from collections.abc import Iterable, Iterator
from typing import Annotated, Final

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import generate_latest as render
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.responses import Response

from jobtrack.api.deps import StateDep, authenticate
from jobtrack.api.params import utcnow
from jobtrack.api.responses import errors
from jobtrack.api.state import ApiState
from jobtrack.domain.status import JobStatus
from jobtrack.errors import Forbidden
from jobtrack.store.connect import is_unavailable
from jobtrack.store.queues import QueueStats, queue_overview

router = APIRouter(tags=["operations"])

#: the classic text format, which every Prometheus version reads (the names used here
#: need none of the escaping that format 1.0.0 adds, so the body is the same)
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

_bearer = HTTPBearer(auto_error=False,
                     description="an admin API key, or the metrics token")


def _size_family(sizes: dict[str, int]) -> Metric:
    family = GaugeMetricFamily("jobtrack_table_bytes",
                               "bytes on disk of each table, its indexes included",
                               labels=["table"])
    for name, size in sizes.items():
        family.add_metric([name], size)
    return family


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


def _live_families(state: ApiState) -> list[Metric]:
    hub, jobs, webhooks = state.hub, state.metrics.jobs, state.webhooks
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
    if webhooks is not None:
        d = webhooks.deliverer
        out.append(CounterMetricFamily(
            "jobtrack_webhook_deliveries_stored",
            "webhook deliveries stored by this process's dispatcher",
            value=webhooks.dispatcher.dispatched))
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
async def metrics(state: StateDep) -> Response:
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
            sizes = await state.metrics.sizes.read(conn, sqlite=state.db.is_sqlite)
        families += _queue_families(stats, now.timestamp())
        families.append(_size_family(sizes))
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        up = 0
    families.append(GaugeMetricFamily("jobtrack_database_up",
                                      "1 when the database answered this scrape", value=up))
    families += _live_families(state)
    body = render(_Figures(families)) + render(state.metrics.registry)
    return Response(body, headers={"Content-Type": CONTENT_TYPE})
