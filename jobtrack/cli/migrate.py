"""``jobtrack migrate``: apply pending schema migrations."""

import typer

from jobtrack.cli.common import console, settings_of


def register(app: typer.Typer) -> None:
    @app.command("migrate")
    def migrate_command(ctx: typer.Context) -> None:
        """Apply pending database migrations (Alembic) up to the latest."""
        from jobtrack.store import migrate

        settings = settings_of(ctx)
        migrate.upgrade(settings.database_url)
        console.print(f"database at revision {migrate.current(settings.database_url)}")
