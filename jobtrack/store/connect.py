"""How jobtrack connects to its database, whichever engine does it: the async
:class:`~jobtrack.store.engine.Database`, Alembic's and the tests' sync engines, or the
sync connection of :mod:`jobtrack.store.reader`. One place for the driver URLs, the JSON
codec of JSON columns, SQLite's pragmas and the errors that mean "unavailable".

It imports SQLAlchemy's Core only (no ``sqlalchemy.ext.asyncio``, which loads the ORM,
and no driver): a command that reads once loads no more than it uses.
"""

from typing import Any

import orjson
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from jobtrack.errors import DatabaseUnavailable


def json_dumps(value: Any) -> str:
    """How JSON columns are written (also by ``bulk``'s SQLite path)."""
    return orjson.dumps(value).decode()


def json_loads(value: Any) -> Any:
    """How JSON columns are read."""
    # SQLite gives a JSON column numeric affinity: a bare number comes back as a number
    if isinstance(value, (int, float)):
        return value
    return orjson.loads(value)


def dialect_name(url: str) -> str:
    """``sqlite`` or ``postgresql`` (any ``postgres*`` spelling), from a user's URL."""
    backend = make_url(url).get_backend_name()
    return "postgresql" if backend.startswith("postgres") else backend


def async_url(url: str) -> str:
    """The SQLAlchemy async URL for a user's ``sqlite:///`` or ``postgresql://`` URL."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return str(parsed.set(drivername="sqlite+aiosqlite"))
    if backend.startswith("postgres"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    raise ValueError(
        f"unsupported database URL {parsed.drivername!r}: use sqlite:///PATH or "
        "postgresql://USER@HOST/DB"
    )


def sync_url(url: str) -> str:
    """The synchronous driver URL (Alembic migrations, sync reads, tests' set-up)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return str(parsed.set(drivername="sqlite"))
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def engine_options(url: str) -> dict[str, Any]:
    """The engine keywords every jobtrack engine of ``url`` shares, async or sync: the JSON
    codec; on SQLite, autocommit (a write begins its own ``BEGIN IMMEDIATE``) and a long
    wait for the file lock. (Pool and timeout options are the async engine's own.)"""
    options: dict[str, Any] = {"json_serializer": json_dumps,
                               "json_deserializer": json_loads}
    backend = dialect_name(url)
    if backend == "sqlite":
        options["isolation_level"] = "AUTOCOMMIT"
        options["connect_args"] = {"timeout": 30}
    return options


def sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """Set on each new SQLite connection (a ``connect`` event listener)."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def is_unavailable(exc: BaseException) -> bool:
    """True for errors that mean the database cannot be reached (not bad SQL)."""
    if isinstance(exc, DatabaseUnavailable):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError):
        text = str(exc.orig).lower()
        return any(
            s in text
            for s in ("connection", "server closed", "terminating", "shutting down",
                      "could not", "starting up", "timeout", "timed out")
        )
    # PoolTimeout: every pooled connection is busy and none freed up in time
    return isinstance(exc, (ConnectionError, TimeoutError, OSError, PoolTimeout))
