"""Alembic migrations build exactly the schema the code declares, on both backends."""

import warnings

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from jobtrack.store import migrate
from jobtrack.store.engine import sync_url
from jobtrack.store.tables import metadata


def _is_claim_index(item: object) -> bool:
    return isinstance(item, tuple) and getattr(item[1], "name", None) == "ix_jobs_claim"


def test_upgrade_head_equals_models(db_url: str) -> None:
    engine = create_engine(sync_url(db_url))
    try:
        with engine.connect() as conn, warnings.catch_warnings():
            # SQLite reflection cannot compare the expression index (priority DESC): it is
            # checked by its DDL below instead
            warnings.filterwarnings("ignore", message=".*expression-based index.*")
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
            indexes = {ix["name"] for ix in inspect(conn).get_indexes("jobs")}
            if conn.dialect.name == "sqlite":
                ddl = conn.execute(
                    text("SELECT sql FROM sqlite_master WHERE name = 'ix_jobs_claim'")
                ).scalar_one()
                assert "priority DESC" in ddl and "status = 'pending'" in ddl
                diff = [d for d in diff if not _is_claim_index(d)]
    finally:
        engine.dispose()
    assert diff == []
    assert "ix_jobs_claim" in indexes


def test_at_head_and_round_trip(db_url: str) -> None:
    assert migrate.is_current(db_url)
    migrate.downgrade(db_url, "base")
    assert migrate.current(db_url) is None
    migrate.upgrade(db_url)
    assert migrate.is_current(db_url)
