"""``jobtrack serve --host H --port P [--workers N] [--no-migrate]``: run the HTTP API.

Each API process also dispatches and delivers webhooks on background tasks (never on a
request's path), unless ``--no-webhooks`` (or ``JOBTRACK_WEBHOOKS_IN_API=false``): then
run ``jobtrack webhooks run`` somewhere. On SIGTERM/SIGINT the server stops accepting,
gives open requests ``--grace`` seconds, then cancels what is left, so open event
streams (SSE, WebSocket), which never end by themselves, do not hold up a shutdown.

uvicorn imports the app factory by name (``jobtrack.api.app:create_app``), so the CLI
stays independent of the API package and ``--workers`` can start several processes.
Every process builds its settings from ``JOBTRACK_*`` environment variables; the
database URL given to the CLI is passed on that way. uvicorn picks uvloop and httptools
when they are installed. The request head is bounded
(``JOBTRACK_MAX_HEADER_COUNT``, ``JOBTRACK_MAX_HEADER_BYTES``): more is answered 431
unread (``jobtrack.cli.http_limits``).
"""

import os
from typing import Annotated, Any

import typer

from jobtrack.cli.common import migrate_if_wanted, settings_of
from jobtrack.settings import Settings

APP_FACTORY = "jobtrack.api.app:create_app"


def _http(settings: Settings) -> Any:
    """The HTTP protocol: httptools with the head bounded (h11 when httptools is missing,
    bounded by ``h11_max_incomplete_event_size``: 400, not 431, and no header count)."""
    try:
        from jobtrack.cli.http_limits import http_protocol
    except ImportError:
        return "h11"
    return http_protocol(max_header_count=settings.max_header_count,
                         max_header_bytes=settings.max_header_bytes)


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        ctx: typer.Context,
        host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
        port: Annotated[int, typer.Option(min=0, max=65535, help="port to listen on")] = 8000,
        workers: Annotated[int, typer.Option(min=1, help="API processes")] = 1,
        no_migrate: Annotated[bool, typer.Option(
            "--no-migrate", help="do not apply pending migrations")] = False,
        log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
        access_log: Annotated[bool, typer.Option(
            "--access-log/--no-access-log", help="log every request")] = False,
        webhooks: Annotated[bool | None, typer.Option(
            "--webhooks/--no-webhooks",
            help="deliver webhooks in the API processes (default: the "
                 "JOBTRACK_WEBHOOKS_IN_API setting, on)")] = None,
        grace: Annotated[int, typer.Option(
            min=0, help="seconds open requests and event streams get to finish on "
                        "SIGTERM/SIGINT before they are cut")] = 5,
    ) -> None:
        """Serve the HTTP API (the processes share rate limits and events through the
        database)."""
        import uvicorn

        settings = settings_of(ctx)
        migrate_if_wanted(settings, no_migrate)
        os.environ["JOBTRACK_DATABASE_URL"] = settings.database_url
        if webhooks is not None:
            os.environ["JOBTRACK_WEBHOOKS_IN_API"] = "true" if webhooks else "false"
        uvicorn.run(
            APP_FACTORY, factory=True, host=host, port=port, workers=workers,
            loop="auto", http=_http(settings), log_level=log_level.lower(),
            access_log=access_log, h11_max_incomplete_event_size=settings.max_header_bytes,
            server_header=False, proxy_headers=False, timeout_graceful_shutdown=grace,
        )
