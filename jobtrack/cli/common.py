"""What every command shares: settings, the error-to-exit mapping, the console."""

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from jobtrack.errors import JobtrackError
from jobtrack.settings import Settings

T = TypeVar("T")

#: human output goes to stderr so stdout stays clean for scripts (e.g. a printed key)
console = Console(stderr=True)
out = Console()


def build_settings(database_url: str | None) -> Settings:
    if database_url:
        return Settings(database_url=database_url)
    return Settings()


def settings_of(ctx: typer.Context) -> Settings:
    obj = ctx.find_root().obj
    assert isinstance(obj, Settings)
    return obj


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:  # uvloop: a faster event loop where it is available (not on Windows)
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one async operation for a command; jobtrack errors become a clear exit."""
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(coro)
    except JobtrackError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(code=1) from None


def migrate_if_wanted(settings: Settings, no_migrate: bool) -> None:
    """``serve`` and ``worker`` apply pending migrations unless told not to."""
    if not no_migrate:
        from jobtrack.store import migrate

        migrate.upgrade(settings.database_url)


def print_table(table: Table) -> None:
    """Print a table on stdout. Without a terminal (a pipe, a file, CI) it is printed as
    wide as its content, so that no cell (an id above all) is cut short to fit 80
    columns: what is shown can be passed back to another command."""
    if out.is_terminal:
        out.print(table)
        return
    unbounded = out.options.update_width(1_000_000)  # measure() alone stops at the width
    wide = max(out.width, Measurement.get(out, unbounded, table).maximum)
    Console(width=wide).print(table)  # (print(width=) cannot go past the console's)
