"""``jobtrack keys``: create, list and revoke API keys."""

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from jobtrack.cli.common import console, out, print_table, run, settings_of
from jobtrack.store import keys as store_keys
from jobtrack.store.engine import Database


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="API keys: each belongs to a tenant; only a hash is stored.",
                        no_args_is_help=True)
    app.add_typer(group, name="keys")

    @group.command("create")
    def create(
        ctx: typer.Context,
        tenant: Annotated[str, typer.Option(help="tenant the key acts for (created if new)")],
        admin: Annotated[bool, typer.Option("--admin", help="sees every tenant")] = False,
        label: Annotated[str | None, typer.Option(help="a note to tell keys apart")] = None,
    ) -> None:
        """Create a key and print it, alone, on stdout (it is shown only once)."""
        settings = settings_of(ctx)
        from jobtrack.store import migrate  # alembic: only when a key is made

        migrate.upgrade(settings.database_url)
        tenant = tenant.strip()
        if not tenant or len(tenant) > 100:
            console.print("[red]error:[/red] --tenant must be 1 to 100 characters")
            raise typer.Exit(2)

        async def go() -> str:
            db = Database(settings.database_url)
            try:
                async with db.write() as conn:
                    raw, _ = await store_keys.create_key(
                        conn, tenant=tenant, admin=admin, label=label, now=datetime.now(UTC)
                    )
            finally:
                await db.dispose()
            return raw

        out.print(run(go()), soft_wrap=True, highlight=False)

    @group.command("ls")
    def list_keys(ctx: typer.Context) -> None:
        """List keys (prefix, tenant, admin, revoked); never the keys themselves."""
        settings = settings_of(ctx)

        async def go() -> list[dict[str, object]]:
            db = Database(settings.database_url)
            try:
                async with db.read() as conn:
                    return await store_keys.list_keys(conn)
            finally:
                await db.dispose()

        table = Table("id", "prefix", "tenant", "admin", "label", "created", "revoked")
        for k in run(go()):
            table.add_row(*(str(k[c] if k[c] is not None else "") for c in
                            ("id", "prefix", "tenant", "admin", "label", "created_at",
                             "revoked_at")))
        print_table(table)

    @group.command("revoke")
    def revoke(ctx: typer.Context, key_id: str) -> None:
        """Revoke a key by id (API processes stop accepting it within key_cache_seconds)."""
        settings = settings_of(ctx)

        async def go() -> bool:
            db = Database(settings.database_url)
            try:
                async with db.write() as conn:
                    return await store_keys.revoke_key(conn, key_id, datetime.now(UTC))
            finally:
                await db.dispose()

        if not run(go()):
            console.print(f"[red]error:[/red] no live key with id {key_id}")
            raise typer.Exit(1)
        console.print(f"revoked {key_id}")
