"""Settings: every knob in one place, read from ``JOBTRACK_*`` environment variables.

No module-level instance: the CLI, the API app factory and the worker build a
``Settings`` and pass it down.
"""

from typing import Annotated

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./jobtrack.db"

Seconds = Annotated[float, Field(gt=0)]


class Settings(BaseSettings):
    """jobtrack's configuration; each field is ``JOBTRACK_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="JOBTRACK_", extra="ignore")

    #: ``sqlite:///path`` (default, embedded) or ``postgresql://user@host/db``
    database_url: str = DEFAULT_DATABASE_URL
    #: connections each process keeps open to PostgreSQL (and the most it opens: a
    #: request that finds them all busy waits for one)
    pool_size: Annotated[int, Field(ge=1, le=200)] = 20
    #: API, PostgreSQL: a database that hangs instead of refusing gets a 503 in bounded
    #: time. Opening a connection; one statement (the server cancels it, and the API
    #: stops waiting for its answer 2 s later); waiting for a pooled connection
    db_connect_timeout_seconds: Seconds = 5.0
    db_statement_timeout_seconds: Seconds = 5.0
    db_pool_timeout_seconds: Seconds = 2.0
    #: how long ``/readyz`` waits for the database's answer before its 503
    readyz_timeout_seconds: Seconds = 1.0

    # --- HTTP API ---
    #: requests per minute per API key, shared by every API process on the database
    rate_limit_per_minute: Annotated[int, Field(ge=1)] = 600
    #: quota each process leases from the database at a time (0: limit / 20, 1..50); the
    #: next chunk is leased ahead once half of one is spent
    rate_limit_chunk: Annotated[int, Field(ge=0)] = 0
    #: how long a process trusts a key it has looked up (the revocation delay)
    key_cache_seconds: Annotated[float, Field(ge=0)] = 10.0
    #: largest accepted request body
    max_body_bytes: Annotated[int, Field(ge=1024)] = 1_048_576
    #: ``jobtrack serve``: most headers, and bytes of request line and headers, read of a
    #: request (more: 431, unread)
    max_header_count: Annotated[int, Field(ge=10)] = 100
    max_header_bytes: Annotated[int, Field(ge=4096)] = 65_536
    #: largest page of ``GET /jobs`` and ``GET /flows``
    max_page_size: Annotated[int, Field(ge=1)] = 500
    #: bearer token for ``GET /metrics`` (give it to Prometheus); an admin key works too,
    #: and nothing else: metrics are never open
    metrics_token: str | None = None
    #: accept legacy and foreign status aliases (``done``, ``QUEUED``...) on input, answered
    #: with a ``Deprecation`` header; false once every client sends canonical values: aliases
    #: are then refused with a 422 naming the canonical values
    accept_status_aliases: bool = True

    # --- jobs and workers ---
    #: jobs a worker runs at once when ``--concurrency`` is not given; claims and outcomes
    #: are written in batches of up to half of it, so a larger number costs fewer
    #: transactions per job (a job is running only while its task runs)
    worker_concurrency: Annotated[int, Field(ge=1, le=10_000)] = 100
    #: attempts a job gets when its submitter says nothing
    default_max_attempts: Annotated[int, Field(ge=1)] = 1
    #: a worker's lease on a claimed job; renewed by heartbeat
    lease_seconds: Seconds = 30.0
    #: how often a worker looks for stalled jobs (expired leases)
    reap_interval_seconds: Seconds = 5.0
    #: shortest gap between two progress writes of one job (advance() is coalesced)
    progress_interval_seconds: Annotated[float, Field(ge=0)] = 0.25
    #: how long a process trusts the task declarations it has read from the task registry
    #: (enqueue defaults and checks); 0: read them with every enqueue
    task_cache_seconds: Annotated[float, Field(ge=0)] = 5.0
    #: a running job older than this is reported stuck
    stuck_after_seconds: Seconds = 1800.0
    #: delete terminal jobs older than this many days (``jobtrack retention``); unset: keep
    job_retention_days: Annotated[float, Field(gt=0)] | None = None
    #: delete stored events older than this many days (a job's history stays with the job)
    event_retention_days: Annotated[float, Field(gt=0)] | None = 7.0

    # --- flows ---
    #: deepest flow tree accepted
    flow_max_depth: Annotated[int, Field(ge=1, le=1000)] = 32
    #: most jobs in one flow
    flow_max_jobs: Annotated[int, Field(ge=1)] = 200_000

    # --- events and webhooks ---
    #: how often an API process on SQLite polls for new events
    event_poll_seconds: Seconds = 0.05
    #: refuse webhook URLs on loopback and private networks (production setting)
    webhook_block_private: bool = False
    #: seconds a webhook receiver has to answer
    webhook_timeout_seconds: Seconds = 10.0
    #: delivery attempts before a delivery is marked failed
    webhook_max_attempts: Annotated[int, Field(ge=1)] = 12
    #: first retry delay of a failed delivery; doubles per attempt up to the cap
    webhook_retry_base_seconds: Seconds = 5.0
    webhook_retry_cap_seconds: Seconds = 3600.0
    #: run webhook dispatch and delivery inside each API process (off: run them elsewhere)
    webhooks_in_api: bool = True
    #: deliveries in flight at once per delivery loop
    webhook_concurrency: Annotated[int, Field(ge=1, le=1000)] = 20
    #: events buffered per live subscriber (SSE, WebSocket) before it is dropped as too slow
    event_queue_size: Annotated[int, Field(ge=1)] = 1000
    #: SSE keep-alive comment interval
    sse_keepalive_seconds: Seconds = 15.0
    #: PostgreSQL: a missing event id whose transaction is proven finished is skipped after
    #: this grace; one still missing after ``event_gap_timeout_seconds`` is skipped regardless
    event_gap_grace_seconds: Annotated[float, Field(ge=0)] = 0.5
    event_gap_timeout_seconds: Seconds = 10.0

    def chunk(self) -> int:
        """Rate-limit quota leased per process at a time."""
        if self.rate_limit_chunk:
            return self.rate_limit_chunk
        return max(1, min(50, self.rate_limit_per_minute // 20))
