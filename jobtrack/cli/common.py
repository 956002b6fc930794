"""What every command shares: settings, the error-to-exit mapping, the console."""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from jobtrack.errors import JobtrackError

if TYPE_CHECKING:
    import asyncio

    from rich.table import Table

    from jobtrack.settings import Settings
    from jobtrack.store.engine import Database
    from jobtrack.store.reader import Reads

T = TypeVar("T")


class LogLevel(enum.StrEnum):
    """``--log-level`` of ``worker`` and ``serve`` (any case accepted)."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


def setup_logging(level: LogLevel) -> None:
    """One line per record on stderr; Alembic's set-up chatter only at debug level."""
    import logging

    logging.basicConfig(level=level.value.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if level is not LogLevel.DEBUG:
        logging.getLogger("alembic").setLevel(logging.WARNING)

#: human output goes to stderr so stdout stays clean for scripts (e.g. a printed key)
console = Console(stderr=True)
out = Console()


#: ``jobtrack.settings.DEFAULT_DATABASE_URL``, spelled here too so that commands that only
#: need the URL do not load pydantic (tests/cli/test_cli_startup.py checks they agree)
DEFAULT_DATABASE_URL = "sqlite:///./jobtrack.db"


@dataclass
class RootOptions:
    """What the root callback was given (``--database-url`` or its environment
    variable); the full settings are built on first need."""

    database_url: str | None
    settings: Settings | None = None


def build_settings(database_url: str | None) -> Settings:
    from jobtrack.settings import Settings  # pydantic: only for commands that use it

    if database_url:
        return Settings(database_url=database_url)
    return Settings()


def _root(ctx: typer.Context) -> RootOptions:
    obj = ctx.find_root().obj
    assert isinstance(obj, RootOptions)
    return obj


def settings_of(ctx: typer.Context) -> Settings:
    """Every ``JOBTRACK_*`` setting, with the command line's database URL."""
    root = _root(ctx)
    if root.settings is None:
        root.settings = build_settings(root.database_url)
    return root.settings


def url_of(ctx: typer.Context) -> str:
    """The database URL alone: ``--database-url``, ``JOBTRACK_DATABASE_URL`` or the
    default, without building the settings."""
    return _root(ctx).database_url or DEFAULT_DATABASE_URL


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:  # uvloop: a faster event loop where it is available (not on Windows)
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


@contextmanager
def clear_errors() -> Iterator[None]:
    """A jobtrack error raised inside becomes one line on stderr and exit code 1."""
    try:
        yield
    except JobtrackError as exc:
        # one line, even on a narrow terminal, and the message is never read as markup
        console.print(Text.assemble(("error:", "red"), " ", exc.message), soft_wrap=True)
        raise typer.Exit(code=1) from None


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one async operation for a command; jobtrack errors become a clear exit."""
    import asyncio  # (not for --help, nor for the listings: see read())

    with clear_errors(), asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(coro)


def read(url: str, query: Callable[[Reads], Coroutine[Any, Any, T]]) -> T:
    """What a listing shows: the store read ``query`` run on a sync connection to the
    database at ``url`` (:mod:`jobtrack.store.reader`: no event loop, no async engine to
    load first). The database is checked as :func:`open_database` does (``create=False``);
    jobtrack errors become a clear exit."""
    from jobtrack.store.reader import reading, run_read

    with clear_errors(), reading(url) as conn:
        return run_read(query(conn))


def migrate_if_wanted(settings: Settings, no_migrate: bool) -> None:
    """``serve`` and ``worker`` apply pending migrations unless told not to."""
    if not no_migrate:
        from jobtrack.store import migrate

        migrate.upgrade(settings.database_url)


#: below this many columns, listings switch to their narrow (two lines a row) layout
WIDE = 120


def has_width() -> bool:
    """True when stdout has a width to fit: a terminal, or ``COLUMNS`` set. A pipe or a
    file without ``COLUMNS`` has none: tables are printed as wide as their content."""
    return out.is_terminal or bool(os.environ.get("COLUMNS"))


def narrow_layout() -> bool:
    """True when a listing should use its narrow layout (a width under :data:`WIDE`)."""
    return has_width() and out.width < WIDE


def print_table(table: Table) -> None:
    """Print a table on stdout. Without a width to fit (a pipe, a file, CI, without
    ``COLUMNS``) it is printed as wide as its content, so that no cell (an id above all)
    is cut short to fit 80 columns: what is shown can be passed back to another command."""
    if has_width():
        out.print(table)
        return
    from rich.measure import Measurement

    unbounded = out.options.update_width(1_000_000)  # measure() alone stops at the width
    wide = max(out.width, Measurement.get(out, unbounded, table).maximum)
    Console(width=wide).print(table)  # (print(width=) cannot go past the console's)


async def open_database(url: str, *, create: bool, pool_size: int = 1) -> Database:
    """The command's database, ready for use (the caller disposes of it).

    A new embedded (SQLite) database is migrated first; ``create=False`` (commands that
    only read) refuses a missing file in one line instead of creating it. A PostgreSQL or
    outdated schema is reported in one line naming ``jobtrack migrate``.
    """
    from jobtrack.store.engine import Database
    from jobtrack.store.migrate import prepare

    db = Database(url, pool_size=pool_size)
    try:
        await prepare(db, create=create)
    except BaseException:
        await db.dispose()
        raise
    return db
