"""``jobtrack webhooks``: the delivery loop as a process of its own, and an operator's look
at webhooks and their deliveries.

- ``jobtrack webhooks run [--concurrency N] [--no-migrate]``: dispatch stored events to
  webhooks and deliver them (signed POSTs, retried with backoff) until SIGTERM/SIGINT.
  Every ``jobtrack serve`` process does this too unless ``JOBTRACK_WEBHOOKS_IN_API=false``;
  run this instead when the API processes should never make outgoing calls. Any number
  of these processes (and API processes) may run on one database: they take turns.
- ``jobtrack webhooks ls [--tenant T]``: every webhook (never its secret).
- ``jobtrack webhooks deliveries WEBHOOK_ID [--limit N]``: its latest deliveries.

The listings read the database directly (every tenant unless ``--tenant``).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from jobtrack.cli.common import (
    console,
    migrate_if_wanted,
    open_database,
    print_table,
    read,
    run,
    settings_of,
    url_of,
)
from jobtrack.domain.status import DeliveryStatus

if TYPE_CHECKING:
    from jobtrack.settings import Settings
    from jobtrack.store.webhooks import Delivery

if TYPE_CHECKING:  # httpx and the delivery loop load only for the commands that use them
    from jobtrack.webhooks.runner import WebhookRunner

DELIVERY_STYLE = {
    DeliveryStatus.PENDING: "yellow",
    DeliveryStatus.DELIVERED: "green",
    DeliveryStatus.FAILED: "red",
}


def _when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


async def deliver_until_signalled(settings: Settings) -> WebhookRunner:
    """Run the webhook loops until SIGTERM or SIGINT; attempts still waiting for a
    receiver are abandoned (their leases end and they are attempted again)."""
    import asyncio
    import signal

    from jobtrack.webhooks.runner import run_webhooks

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    console.print(f"delivering webhooks from {settings.database_url} "
                  f"({settings.webhook_concurrency} at a time); SIGTERM or Ctrl-C stops")
    return await run_webhooks(settings, until=stop)


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Webhooks: signed, retried, durable delivery of events.",
                        no_args_is_help=True)
    app.add_typer(group, name="webhooks")

    @group.command("run")
    def run_command(
        ctx: typer.Context,
        concurrency: Annotated[int | None, typer.Option(
            min=1, max=1000, help="deliveries in flight at once (default: the "
                                  "JOBTRACK_WEBHOOK_CONCURRENCY setting, 20)")] = None,
        no_migrate: Annotated[bool, typer.Option(
            "--no-migrate", help="do not apply pending migrations")] = False,
        log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING")] = "INFO",
    ) -> None:
        """Dispatch events to webhooks and deliver them until SIGTERM or SIGINT."""
        import logging

        logging.basicConfig(level=log_level.upper(),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        settings = settings_of(ctx)
        if concurrency is not None:
            settings = settings.model_copy(update={"webhook_concurrency": concurrency})
        migrate_if_wanted(settings, no_migrate)
        runner = run(deliver_until_signalled(settings))
        d = runner.deliverer
        console.print(f"webhooks stopped: {runner.dispatcher.dispatched} deliveries stored, "
                      f"{d.delivered} delivered, {d.retried} to retry, {d.failed} failed")

    @group.command("ls")
    def list_command(
        ctx: typer.Context,
        tenant: Annotated[str | None, typer.Option(help="only this tenant's webhooks")] = None,
    ) -> None:
        """Every webhook, oldest first (never its secret)."""
        from jobtrack.store.webhooks import list_webhooks

        hooks = read(url_of(ctx), lambda conn: list_webhooks(conn, tenant=tenant))
        if not hooks:
            console.print("no webhooks")
            return
        table = Table("tenant", "url", "events", "flow", "queue", "created")
        table.add_column("webhook id", no_wrap=True)
        for h in hooks:
            table.add_row(h.tenant, h.url, ",".join(h.events), h.flow_id or "",
                          h.queue_name or "", _when(h.created_at), h.id)
        print_table(table)

    @group.command("deliveries")
    def deliveries_command(
        ctx: typer.Context,
        webhook_id: Annotated[str, typer.Argument(help="the webhook's id")],
        limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    ) -> None:
        """A webhook's latest deliveries, newest first: status, attempts, last answer."""
        url = url_of(ctx)

        from jobtrack.webhooks import registry

        async def go() -> list[Delivery]:
            db = await open_database(url, create=False)
            try:
                return await registry.deliveries(db, webhook_id, tenant=None, limit=limit)
            finally:
                await db.dispose()

        found = run(go())
        if not found:
            console.print("no deliveries yet")
            return
        table = Table("delivery", "event", "type", "job", "status", "attempts", "last answer",
                      "when (next attempt, delivery)")
        for d in found:
            answer = d.last_error or (str(d.last_status_code) if d.last_status_code else "")
            when = d.delivered_at if d.status is DeliveryStatus.DELIVERED else (
                d.next_attempt_at if d.status is DeliveryStatus.PENDING else None)
            table.add_row(str(d.id), str(d.event_id), d.event_type, d.job_id or "",
                          Text(d.status.value, style=DELIVERY_STYLE[d.status]),
                          str(d.attempts), answer, _when(when))
        print_table(table)
