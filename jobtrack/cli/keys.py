"""``jobtrack keys``: create, list and revoke API keys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from jobtrack.cli.common import (
    console,
    narrow_layout,
    open_database,
    out,
    print_table,
    read,
    run,
    url_of,
)
from jobtrack.cli.flows import narrow_table, stacked


def _day(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if isinstance(value, datetime) else ""


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
        url = url_of(ctx)
        tenant = tenant.strip()
        if not tenant or len(tenant) > 100:
            console.print("[red]error:[/red] --tenant must be 1 to 100 characters")
            raise typer.Exit(2)

        async def go() -> str:
            from jobtrack.store import keys as store_keys

            db = await open_database(url, create=True)
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
        from jobtrack.store.keys import list_keys as store_list_keys

        keys = read(url_of(ctx), store_list_keys)
        if narrow_layout():
            narrow = narrow_table("id", "prefix", "tenant", "created", "revoked")
            for k in keys:
                tenant = f"{k['tenant']} (admin)" if k["admin"] else str(k["tenant"])
                narrow.add_row(str(k["id"]), str(k["prefix"]),
                               stacked(tenant, str(k["label"] or "")),
                               _day(k["created_at"]), _day(k["revoked_at"]))
            out.print(narrow)
            return
        table = Table("id", "prefix", "tenant", "admin", "label", "created", "revoked")
        for k in keys:
            table.add_row(*(str(k[c] if k[c] is not None else "") for c in
                            ("id", "prefix", "tenant", "admin", "label", "created_at",
                             "revoked_at")))
        print_table(table)

    @group.command("revoke")
    def revoke(ctx: typer.Context, key_id: str) -> None:
        """Revoke a key by id (API processes stop accepting it within key_cache_seconds)."""
        url = url_of(ctx)

        async def go() -> bool:
            from jobtrack.store import keys as store_keys

            db = await open_database(url, create=True)
            try:
                async with db.write() as conn:
                    return await store_keys.revoke_key(conn, key_id, datetime.now(UTC))
            finally:
                await db.dispose()

        if not run(go()):
            console.print(f"[red]error:[/red] no live key with id {key_id}")
            raise typer.Exit(1)
        console.print(f"revoked {key_id}")
