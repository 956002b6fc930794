"""Alembic environment: runs on the connection jobtrack.store.migrate hands over (which
holds the migration lock), else against the configured URL."""

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from jobtrack.store.tables import metadata

config = context.config


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run() -> None:
    given = config.attributes.get("connection")
    if isinstance(given, Connection):
        _migrate(given)
        return
    url = config.get_main_option("sqlalchemy.url")
    assert url, "jobtrack.store.migrate sets sqlalchemy.url"
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        _migrate(connection)
    engine.dispose()


run()
