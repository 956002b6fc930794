"""The SQL text the tables generate from the status contract (partial-index predicates,
CHECK constraints) is exactly what the migrations created, on both backends.

The tables are built afresh beside the migrated ones (an attached SQLite database, a
PostgreSQL schema) and each database's own rendering of both is compared, so a status
spelled differently, or a predicate written differently, shows up here even where
Alembic's comparison does not look (it compares neither index predicates nor CHECKs).
"""

import re

from sqlalchemy import Connection, create_engine

from jobtrack.store.engine import sync_url
from jobtrack.store.tables import metadata

PROBE = "probe"
_CHECK = re.compile(r"CONSTRAINT (\w+) CHECK \((.*)\)")


def _sqlite_text(conn: Connection, schema: str) -> dict[str, str]:
    out: dict[str, str] = {}
    rows = conn.exec_driver_sql(f"SELECT type, name, sql FROM {schema}.sqlite_master "
                                "WHERE sql IS NOT NULL AND type IN ('index', 'table')")
    for kind, name, sql in rows:
        if kind == "index" and " WHERE " in sql:
            out[f"index {name}"] = " ".join(sql.split(" WHERE ", 1)[1].split())
        if kind == "table":
            for line in sql.splitlines():
                found = _CHECK.search(line.strip().rstrip(","))
                if found:
                    out[f"check {found[1]}"] = " ".join(found[2].split())
    return out


def _postgres_text(conn: Connection, schema: str) -> dict[str, str]:
    indexes = conn.exec_driver_sql(
        "SELECT c.relname, pg_get_expr(i.indpred, i.indrelid) FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE i.indpred IS NOT NULL AND n.nspname = %(s)s", {"s": schema})
    checks = conn.exec_driver_sql(
        "SELECT k.conname, pg_get_constraintdef(k.oid) FROM pg_constraint k "
        "JOIN pg_namespace n ON n.oid = k.connamespace "
        "WHERE k.contype = 'c' AND n.nspname = %(s)s", {"s": schema})
    return {**{f"index {n}": t for n, t in indexes}, **{f"check {n}": t for n, t in checks}}


def test_generated_predicates_and_checks_equal_the_migrated_ones(db_url: str) -> None:
    engine = create_engine(sync_url(db_url))
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql(f"ATTACH ':memory:' AS {PROBE}")
                read, migrated_schema = _sqlite_text, "main"
            else:
                conn.exec_driver_sql(f"CREATE SCHEMA {PROBE}")
                read, migrated_schema = _postgres_text, "public"
            metadata.create_all(conn.execution_options(schema_translate_map={None: PROBE}))
            migrated, generated = read(conn, migrated_schema), read(conn, PROBE)
            conn.rollback()
    finally:
        engine.dispose()
    assert "index ix_jobs_claim" in generated and "check ck_jobs_status" in generated
    assert generated == migrated
