"""The schema, as SQLAlchemy 2 Core tables. Alembic migrations must equal it (a test
checks). Status columns are plain strings with CHECK constraints generated from the
status contract, so adding a status is a migration of a constraint, never an enum type
dropped and rebuilt.

Indexes are few on purpose: every index on ``jobs`` is paid on each transition. The
claim index is partial (runnable rows only), so claiming costs the same whether the
table holds a thousand finished jobs or a million, whatever the planner's statistics say.
"""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    TextClause,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import TypeDecorator

from jobtrack.domain.status import DeliveryStatus, FlowStatus, JobStatus, PhaseStatus

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and dialect.name == "sqlite":
            if value.tzinfo is not None:
                value = value.astimezone(UTC)
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if not isinstance(value, datetime):
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


#: job, flow and key ids: UUID strings (native uuid on PostgreSQL)
Id = String(36).with_variant(postgresql.UUID(as_uuid=False), "postgresql")
#: JSON documents (json, not jsonb, on PostgreSQL: cheaper to write, never queried inside)
Json = JSON(none_as_null=True).with_variant(postgresql.JSON(none_as_null=True), "postgresql")
Timestamp = UTCDateTime


def _one_of(column: str, values: type[StrEnum]) -> str:
    listed = ", ".join(f"'{v.value}'" for v in values)
    return f"{column} IN ({listed})"


def _is(status: StrEnum, *more: str) -> TextClause:
    """A partial index's predicate: ``status = '<value>'`` (AND ``more``), its text the same
    as the migrations wrote it."""
    return text(" AND ".join((f"status = '{status.value}'", *more)))


tenants = Table(
    "tenants",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("created_at", Timestamp, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Id, primary_key=True),
    Column("tenant", String(100), ForeignKey("tenants.name"), nullable=False),
    #: first characters of the key, shown to people to tell keys apart
    Column("prefix", String(16), nullable=False),
    #: sha256 of the whole key; the key itself is never stored
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("admin", Boolean, nullable=False, default=False),
    Column("label", String(200), nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Column("revoked_at", Timestamp, nullable=True),
)

rate_limits = Table(
    "rate_limits",
    metadata,
    Column("key_id", Id, primary_key=True),
    #: start of the fixed one-minute window, as Unix seconds
    Column("window_start", BigInteger, primary_key=True),
    Column("used", Integer, nullable=False),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Id, primary_key=True),
    Column("tenant", String(100), nullable=False),
    Column("queue_name", String(200), nullable=False),
    Column("name", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("step", String(200), nullable=False),
    Column("data", Json, nullable=False),
    Column("result", Json, nullable=True),
    Column("error", Json, nullable=True),
    Column("stats", Json, nullable=True),
    Column("progress_done", Float, nullable=True),
    Column("progress_total", Float, nullable=True),
    Column("phase_count", SmallInteger, nullable=False, default=0),
    Column("flow_id", Id, nullable=True),
    Column("parent_job_id", Id, nullable=True),
    #: children of a flow parent not yet completed; the parent is runnable at 0
    Column("children_left", Integer, nullable=False, default=0),
    Column("attempt", Integer, nullable=False, default=1),
    Column("max_attempts", Integer, nullable=False, default=1),
    Column("priority", Integer, nullable=False, default=0),
    Column("run_at", Timestamp, nullable=False),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("idempotency_key", String(200), nullable=True),
    Column("worker_id", String(200), nullable=True),
    Column("lease_expires_at", Timestamp, nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Column("started_at", Timestamp, nullable=True),
    Column("completed_at", Timestamp, nullable=True),
    #: moved by one with every planned change: finishing a run checks it instead of
    #: re-reading the row (jobtrack/queue/outcomes.py)
    Column("version", Integer, nullable=False, server_default="1"),
    #: the job's own retry policy ``{base, factor, cap, jitter}``; null: its task's
    Column("retry", Json, nullable=True),
    CheckConstraint(_one_of("status", JobStatus), name="status"),
    CheckConstraint("attempt >= 1 AND max_attempts >= 1", name="attempts"),
    # claim: runnable rows only, in claim order
    Index(
        "ix_jobs_claim",
        "queue_name",
        text("priority DESC"),
        "run_at",
        "id",
        postgresql_where=_is(JobStatus.PENDING, "children_left = 0"),
        sqlite_where=_is(JobStatus.PENDING, "children_left = 0"),
    ),
    # stall detection: running rows only
    Index(
        "ix_jobs_lease",
        "lease_expires_at",
        postgresql_where=_is(JobStatus.RUNNING),
        sqlite_where=_is(JobStatus.RUNNING),
    ),
    # listing, newest first (ids are time-ordered)
    Index("ix_jobs_tenant_id", "tenant", "id"),
    Index(
        "ix_jobs_flow",
        "flow_id",
        "id",
        postgresql_where=text("flow_id IS NOT NULL"),
        sqlite_where=text("flow_id IS NOT NULL"),
    ),
    Index(
        "ix_jobs_parent",
        "parent_job_id",
        postgresql_where=text("parent_job_id IS NOT NULL"),
        sqlite_where=text("parent_job_id IS NOT NULL"),
    ),
    Index(
        "ix_jobs_idempotency",
        "tenant",
        "idempotency_key",
        unique=True,
        postgresql_where=text("idempotency_key IS NOT NULL"),
        sqlite_where=text("idempotency_key IS NOT NULL"),
    ),
)

job_phases = Table(
    "job_phases",
    metadata,
    Column("job_id", Id, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("position", SmallInteger, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("done", Float, nullable=False, default=0),
    Column("total", Float, nullable=True),
    Column("started_at", Timestamp, nullable=True),
    Column("completed_at", Timestamp, nullable=True),
    CheckConstraint(_one_of("status", PhaseStatus), name="status"),
)

flows = Table(
    "flows",
    metadata,
    Column("id", Id, primary_key=True),
    Column("tenant", String(100), nullable=False),
    Column("flowname", String(200), nullable=False),
    Column("name", String(200), nullable=False),
    Column("queue_name", String(200), nullable=False),
    Column("root_job_id", Id, nullable=False),
    Column("status", String(16), nullable=False),
    Column("total", Integer, nullable=False),
    Column("pending", Integer, nullable=False),
    Column("running", Integer, nullable=False),
    Column("completed", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("cancelled", Integer, nullable=False),
    #: the flow was cancelled by a user (or its root job was)
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("result", Json, nullable=True),
    Column("error", Json, nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Column("started_at", Timestamp, nullable=True),
    Column("completed_at", Timestamp, nullable=True),
    CheckConstraint(_one_of("status", FlowStatus), name="status"),
    Index("ix_flows_tenant_id", "tenant", "id"),
    Index("ix_flows_tenant_flowname", "tenant", "flowname", "id"),
)

#: The event log: the outbox announcing every change, and, for rows with ``to_status``,
#: each job's transition history. Written in the same transaction as the change.
events = Table(
    "events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("tenant", String(100), nullable=False),
    Column("type", String(32), nullable=False),
    Column("at", Timestamp, nullable=False),
    Column("job_id", Id, nullable=True),
    Column("flow_id", Id, nullable=True),
    Column("queue_name", String(200), nullable=True),
    Column("from_status", String(16), nullable=True),
    Column("to_status", String(16), nullable=True),
    Column("step", String(200), nullable=True),
    Column("attempt", Integer, nullable=True),
    #: who made the change: ``worker:<id>``, ``api:<key prefix>``, ``system:<what>``
    Column("actor", String(200), nullable=True),
    Column("data", Json, nullable=False),
    Index(
        "ix_events_job",
        "job_id",
        "id",
        postgresql_where=text("job_id IS NOT NULL"),
        sqlite_where=text("job_id IS NOT NULL"),
    ),
    Index(
        "ix_events_flow",
        "flow_id",
        "id",
        postgresql_where=text("flow_id IS NOT NULL"),
        sqlite_where=text("flow_id IS NOT NULL"),
    ),
    sqlite_autoincrement=True,
)

webhooks = Table(
    "webhooks",
    metadata,
    Column("id", Id, primary_key=True),
    Column("tenant", String(100), nullable=False),
    Column("url", Text, nullable=False),
    Column("events", Json, nullable=False),
    #: HMAC secret; kept (not hashed) because every delivery is signed with it
    Column("secret", String(200), nullable=False),
    Column("flow_id", Id, nullable=True),
    Column("queue_name", String(200), nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Index("ix_webhooks_tenant", "tenant"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("webhook_id", Id, ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("tenant", String(100), nullable=False),
    Column("event_id", BigInteger, nullable=False),
    Column("event_type", String(32), nullable=False),
    #: the job whose events must arrive in order (null for flow events)
    Column("job_id", Id, nullable=True),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Timestamp, nullable=False),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Column("delivered_at", Timestamp, nullable=True),
    CheckConstraint(_one_of("status", DeliveryStatus), name="status"),
    Index(
        "ix_webhook_deliveries_due",
        "next_attempt_at",
        postgresql_where=_is(DeliveryStatus.PENDING),
        sqlite_where=_is(DeliveryStatus.PENDING),
    ),
    Index("ix_webhook_deliveries_webhook", "webhook_id", "id"),
    sqlite_autoincrement=True,
)

#: the cursor of each background loop that reads the event log (webhook dispatcher)
cursors = Table(
    "cursors",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("event_id", BigInteger, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

#: The task registry: workers that recorded themselves, refreshed with their heartbeat
#: and removed at clean shutdown (stale ones age out: jobtrack/store/registry.py)
workers = Table(
    "workers",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("queues", Json, nullable=False),
    Column("concurrency", Integer, nullable=False),
    Column("version", String(64), nullable=False),
    Column("started_at", Timestamp, nullable=False),
    Column("heartbeat_at", Timestamp, nullable=False),
)

#: The task declarations workers recorded (shared by every tenant: workers serve them
#: all); a declaration outlives the workers that made it
tasks = Table(
    "tasks",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("queue", String(200), primary_key=True),
    Column("phases", Json, nullable=False),
    Column("max_attempts", Integer, nullable=True),
    #: ``{base, factor, cap, jitter}`` seconds
    Column("retry", Json, nullable=False),
    Column("timeout", Float, nullable=True),
    #: keyword parameters after the context, and those of them without a default
    Column("parameters", Json, nullable=False),
    Column("required", Json, nullable=False),
    #: the function takes ``**kwargs``: any data key
    Column("accepts_any", Boolean, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    #: the worker that recorded this version of the declaration
    Column("worker_id", String(200), nullable=True),
)
