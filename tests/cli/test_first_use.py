"""The first use of a database: ``App`` and every command make a new embedded (SQLite)
database ready by themselves, read-only commands never create one, a PostgreSQL or
outdated schema is reported in one line, and processes starting at once migrate one
after the other (issue 10)."""

import asyncio
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from jobtrack.domain.status import JobStatus
from jobtrack.queue.app import App
from jobtrack.store import migrate
from support.cli import invoke


def test_app_enqueue_migrates_a_new_sqlite_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"

    async def go() -> JobStatus:
        async with App(url) as app:
            job = await app.enqueue("ingest", document_id="d1")
            stored = await app.get_job(job.id)
            assert stored is not None
            return stored.status

    assert asyncio.run(go()) is JobStatus.PENDING
    assert migrate.is_current(url)


def test_enqueue_sync_migrates_a_new_sqlite_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    job = App(url).enqueue_sync("ingest", document_id="d1")
    assert job.status is JobStatus.PENDING
    assert migrate.is_current(url)


@pytest.mark.parametrize("args", [
    ("jobs", "ls"), ("jobs", "show", "01a209ed-0000-7000-8000-000000000000"),
    ("flows", "ls"), ("keys", "ls"), ("webhooks", "ls"),
])
def test_read_only_commands_on_a_missing_file_say_so_and_create_nothing(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    db = tmp_path / "missing.db"
    code, stdout, stderr = invoke(f"sqlite:///{db}", *args)
    assert code == 1
    assert stdout == ""
    assert "no database" in stderr and str(db) in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert not db.exists()


def test_read_only_command_on_an_empty_new_file_migrates_it(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    db.touch()  # what an earlier failed run used to leave behind
    code, _, stderr = invoke(f"sqlite:///{db}", "jobs", "ls")
    assert code == 0, stderr
    assert "no jobs" in stderr
    assert migrate.is_current(f"sqlite:///{db}")


def test_write_commands_migrate_a_new_sqlite_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    code, _, stderr = invoke(url, "jobs", "cancel", "01a209ed-0000-7000-8000-000000000000")
    assert code == 1
    assert "not found" in stderr.lower() or "no job" in stderr.lower(), stderr
    assert migrate.is_current(url)


def test_an_unmigrated_postgres_database_is_reported_in_one_line(
    pg_server_url: str | None,
) -> None:
    if pg_server_url is None:
        pytest.skip("JOBTRACK_TEST_POSTGRES_URL not set")
    url = _empty_pg_database(pg_server_url)
    try:
        code, stdout, stderr = invoke(url, "jobs", "ls")
        assert code == 1 and stdout == ""
        assert "jobtrack migrate" in stderr
        assert len(stderr.strip().splitlines()) == 1, stderr
        assert migrate.current(url) is None, "nothing is migrated behind the user's back"
    finally:
        _drop_pg_database(pg_server_url, url)


def test_an_outdated_sqlite_schema_is_reported_in_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    migrate.upgrade(url, "0001")
    code, _, stderr = invoke(url, "jobs", "ls")
    assert code == 1
    assert "jobtrack migrate" in stderr and "0001" in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert migrate.current(url) == "0001"


def test_the_quick_head_is_alembics_head() -> None:
    assert migrate.head_revision() == migrate.head()


# --- several processes migrating one new database at once ---------------------------

MIGRATE_AT_GO = """
import sys, time
from pathlib import Path
from jobtrack.store import migrate
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
migrate.upgrade(sys.argv[1])
"""


def _migrate_at_once(url: str, tmp_path: Path, n: int = 6) -> list[str]:
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", MIGRATE_AT_GO, url, str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(n)]
    import time
    time.sleep(2.5)  # every process has imported jobtrack and waits for the signal
    go.touch()
    failures = []
    for p in procs:
        output, _ = p.communicate(timeout=120)
        if p.returncode != 0:
            failures.append(output[-2000:])
    return failures


def test_processes_migrating_a_new_sqlite_database_at_once_all_succeed(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}"
    assert _migrate_at_once(url, tmp_path) == []
    assert migrate.is_current(url)


@pytest.mark.postgres
def test_processes_migrating_a_new_postgres_database_at_once_all_succeed(
    tmp_path: Path, pg_server_url: str | None,
) -> None:
    if pg_server_url is None:
        pytest.skip("JOBTRACK_TEST_POSTGRES_URL not set")
    url = _empty_pg_database(pg_server_url)
    try:
        assert _migrate_at_once(url, tmp_path) == []
        assert migrate.is_current(url)
    finally:
        _drop_pg_database(pg_server_url, url)


def _empty_pg_database(server: str) -> str:
    import uuid

    from sqlalchemy.engine import make_url

    name = f"jobtrack_fresh_{uuid.uuid4().hex[:10]}"
    admin = make_url(server).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    return make_url(server).set(database=name).render_as_string(hide_password=False)


def _drop_pg_database(server: str, url: str) -> None:
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    admin = make_url(server).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
