"""Throwaway, freshly migrated databases for the benchmarks."""

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy.engine import make_url

from jobtrack.store import migrate


@contextmanager
def scratch(backend: str, server: str | None, *, prefix: str = "jtbench",
            keep: bool = False) -> Iterator[str]:
    """A migrated database URL: a SQLite file in a temp dir, or a new database on the
    PostgreSQL ``server``; removed afterwards unless ``keep``."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix=f"{prefix}-") as tmp:
            url = f"sqlite:///{tmp}/bench.db"
            migrate.upgrade(url)
            yield url
        return
    if server is None:
        raise ValueError("a PostgreSQL scratch database needs --database-url")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = make_url(server).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        if not keep:
            with psycopg.connect(admin, autocommit=True) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
