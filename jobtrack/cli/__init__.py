"""The ``jobtrack`` command line. Each command group lives in its own module and
registers itself on the root app; the database URL and settings are resolved once here.

Fixed forms scripts rely on (README): ``--database-url`` or ``JOBTRACK_DATABASE_URL``
(default ``sqlite:///./jobtrack.db``); ``serve --host H --port P``; ``worker MODULE:APP
--queues a,b --concurrency N``; ``keys create --tenant NAME [--admin]`` prints the raw key
alone on stdout; ``serve``, ``worker`` and ``webhooks run`` migrate unless ``--no-migrate``.
"""

import gc
from typing import Annotated

import typer

from jobtrack.cli import (
    common,
    contract,
    demo,
    flows,
    jobs,
    keys,
    migrate,
    registry,
    retention,
    serve,
    webhooks,
    worker,
)

app = typer.Typer(
    name="jobtrack",
    help="jobtrack: a job queue where every job and flow has one trustworthy status.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    # plain help: no type column that calls every flag <bool>, and no rich layout to load
    rich_markup_mode=None,
)


@app.callback()
def root(
    ctx: typer.Context,
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", envvar="JOBTRACK_DATABASE_URL",
                     help="sqlite:///PATH (default ./jobtrack.db) or postgresql://..."),
    ] = None,
) -> None:
    ctx.obj = common.RootOptions(database_url)


for module in (migrate, keys, serve, worker, webhooks, jobs, flows, registry, retention,
               contract, demo):
    module.register(app)


def main() -> None:
    try:
        app()
    finally:
        # the process ends here: without this, the interpreter's last garbage collections
        # walk every object SQLAlchemy and the rest built at import (about 0.2 s of CPU
        # after a listing: docs/benchmarks.md, "CLI start-up"). Frozen, they are left to
        # the exit; what is still alive in a reference cycle then is not finalized (Python
        # never promises it at exit): the commands close their connections, engines and
        # files themselves, and stdout and stderr are flushed at exit regardless.
        gc.freeze()
