"""What the ``jobtrack`` command loads before it knows which command runs: nothing that
only some commands need (SQLAlchemy, pydantic, Alembic, the API, the worker). Speed itself
is measured by ``bench/bench_cli_startup.py``, not here."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

HEAVY = ("sqlalchemy", "pydantic", "alembic", "fastapi", "httpx", "jobtrack.store",
         "jobtrack.queue", "jobtrack.api", "jobtrack.settings",
         # what only some commands run: an event loop (``run()``, ``watch``, ``serve``...),
         # live displays and progress bars (``demo``, ``--watch``, ``retention``), the
         # demo itself, the planner (``cancel``, ``retry``), the records and the wire form
         "asyncio", "rich.live", "rich.progress", "rich.tree", "jobtrack.cli.demo_run",
         "jobtrack.domain.planner", "jobtrack.domain.records", "jobtrack.domain.wire",
         "jobtrack.contract")


def _loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, check=True)
    return set(proc.stdout.split())


def test_importing_the_cli_loads_nothing_heavy() -> None:
    loaded = _loaded_after("import jobtrack.cli")
    heavy = sorted(m for m in loaded if m.startswith(HEAVY))
    assert heavy == []


def test_help_loads_nothing_heavy() -> None:
    loaded = _loaded_after(
        "from jobtrack.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass")
    heavy = sorted(m for m in loaded if m.startswith(HEAVY))
    assert heavy == []


def test_listings_load_no_settings_and_the_default_url_agrees() -> None:
    from jobtrack.cli.common import DEFAULT_DATABASE_URL
    from jobtrack.settings import DEFAULT_DATABASE_URL as SETTINGS_DEFAULT

    assert DEFAULT_DATABASE_URL == SETTINGS_DEFAULT
    loaded = _loaded_after(
        "import os, tempfile\n"
        "os.chdir(tempfile.mkdtemp())\n"
        "from jobtrack.cli import app\n"
        "try:\n    app(['jobs', 'ls'])\nexcept SystemExit:\n    pass")
    # (typer itself loads pydantic to read a command's parameters)
    assert "jobtrack.settings" not in loaded


#: what no listing loads: they run the store's reads on a sync Core connection
#: (jobtrack/store/reader.py), so not the async engine (``sqlalchemy.ext.asyncio`` imports
#: SQLAlchemy's ORM), the async SQLite driver or an event loop; nor Alembic (the schema is
#: current), the queue or the webhook dispatcher; nor what other commands show or run
#: (live displays, progress bars, trees, the demo). (``asyncio`` itself is loaded:
#: SQLAlchemy imports it.)
NOT_FOR_LISTINGS = ("sqlalchemy.orm", "sqlalchemy.ext.asyncio", "aiosqlite", "uvloop",
                    "alembic", "jobtrack.store.engine", "jobtrack.queue", "jobtrack.webhooks",
                    "rich.live", "rich.progress", "rich.tree", "jobtrack.cli.demo_run",
                    "jobtrack.examples", "jobtrack.contract")
#: and on SQLite: the PostgreSQL driver; pydantic-settings (only the database URL is
#: needed; ``workers ls`` also reads the lease setting). (SQLAlchemy's PostgreSQL dialect
#: still loads: the tables' ``postgresql_where`` partial indexes make SQLAlchemy load it to
#: validate that argument.)
NOT_FOR_SQLITE_LISTINGS = ("psycopg", "psycopg_pool", "pydantic_settings", "jobtrack.settings")
LISTINGS = ("jobs", "flows", "keys", "webhooks", "tasks", "workers")
_MODULES = "--- modules ---"


def _list(url: str, group: str) -> tuple[str, list[str]]:
    """``jobtrack GROUP ls`` in a fresh process: its stdout, and the modules it loaded."""
    probe = (
        "import sys\n"
        "from jobtrack.cli import app\n"
        f"try:\n    app(['--database-url', {url!r}, {group!r}, 'ls'])\n"
        "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
        f"print({_MODULES!r})\n"
        "print('\\n'.join(sys.modules))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "COLUMNS": "250"})
    assert proc.returncode == 0, proc.stderr
    shown, _, modules = proc.stdout.partition(_MODULES)
    return shown, modules.split()


def _seed(url: str) -> str:
    from jobtrack.queue.app import App

    async def go() -> str:
        async with App(url) as app:
            job = await app.enqueue("ingest", _queue="ingest", document_id="d1")
            return job.id

    return asyncio.run(go())


def test_listings_read_without_the_async_engine_or_alembic(db_url: str) -> None:
    job_id = _seed(db_url)
    driver = "sqlite3" if db_url.startswith("sqlite") else "psycopg"
    for group in LISTINGS:
        shown, loaded = _list(db_url, group)
        unwanted = sorted(m for m in loaded if m.startswith(NOT_FOR_LISTINGS))
        assert (group, unwanted) == (group, [])
        assert driver in loaded  # (it did read the database)
        if group == "jobs":
            assert job_id in shown


def test_listings_on_sqlite_load_no_postgresql_driver_or_settings(tmp_path: Path) -> None:
    from jobtrack.store import migrate

    url = f"sqlite:///{tmp_path / 'listed.db'}"
    migrate.upgrade(url)
    for group in LISTINGS:
        _, loaded = _list(url, group)
        assert "sqlite3" in loaded
        unwanted = sorted(m for m in loaded if m.startswith(NOT_FOR_SQLITE_LISTINGS))
        if group == "workers":
            unwanted = [m for m in unwanted if m.split(".")[0] == "psycopg"]
        assert (group, unwanted) == (group, [])


def test_the_command_leaves_what_it_loaded_to_the_exit(tmp_path: Path) -> None:
    """``jobtrack`` (``main()``) freezes the objects it made before the interpreter exits, so
    the exit's garbage collections do not walk them all; what the command printed is
    still all there."""
    url = f"sqlite:///{tmp_path / 'listed.db'}"
    job_id = _seed(url)
    probe = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print('frozen at exit:', gc.get_freeze_count()))\n"
        f"sys.argv = ['jobtrack', '--database-url', {url!r}, 'jobs', 'ls']\n"
        "from jobtrack.cli import main\n"
        "main()")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "COLUMNS": "250"})
    assert proc.returncode == 0, proc.stderr
    shown, _, frozen = proc.stdout.partition("frozen at exit:")
    assert job_id in shown
    assert int(frozen) > 10_000  # (SQLAlchemy alone makes more than that)
