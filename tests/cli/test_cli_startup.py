"""What the ``jobtrack`` command loads before it knows which command runs: nothing that
only some commands need (SQLAlchemy, pydantic, Alembic, the API, the worker). Speed itself
is measured by ``bench/bench_cli_startup.py``, not here."""

import subprocess
import sys
from pathlib import Path

HEAVY = ("sqlalchemy", "pydantic", "alembic", "fastapi", "httpx", "jobtrack.store",
         "jobtrack.queue", "jobtrack.api", "jobtrack.settings")


def _loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, check=True)
    return {m for m in proc.stdout.split() if m.split(".")[0] in {"sqlalchemy", "pydantic",
                                                                   "alembic", "fastapi",
                                                                   "httpx", "jobtrack"}}


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


#: what a listing on a SQLite database has no use for: the PostgreSQL driver, Alembic (the
#: schema is current), pydantic-settings (only the database URL is needed). (SQLAlchemy's
#: PostgreSQL dialect still loads: the tables' ``postgresql_where`` partial indexes make
#: SQLAlchemy load it to validate that argument.)
NOT_FOR_SQLITE_LISTINGS = ("psycopg", "psycopg_pool", "alembic", "pydantic_settings",
                           "jobtrack.settings")


def test_listings_on_sqlite_load_no_postgresql_alembic_or_settings(tmp_path: Path) -> None:
    from jobtrack.store import migrate

    url = f"sqlite:///{tmp_path / 'listed.db'}"
    migrate.upgrade(url)
    for group in ("jobs", "flows", "keys", "webhooks"):
        probe = (
            "import sys\n"
            "from jobtrack.cli import app\n"
            f"try:\n    app(['--database-url', {url!r}, {group!r}, 'ls'])\n"
            "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "print('\\n'.join(sys.modules))")
        proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr
        loaded = proc.stdout.split()
        assert "jobtrack.store.engine" in loaded  # (it did read the database)
        unwanted = sorted(m for m in loaded if m.startswith(NOT_FOR_SQLITE_LISTINGS))
        assert (group, unwanted) == (group, [])
