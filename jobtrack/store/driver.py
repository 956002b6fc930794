"""A SELECT run on the driver connection of :meth:`Database.driver_read
<jobtrack.store.engine.Database.driver_read>` (the status read of the API's hot path).
Its own module, free of SQLAlchemy's async layer, so that the store's read modules that
declare such statements load nothing of it (the CLI listings import them)."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobtrack.store.engine import Database


class DriverStatement:
    """A SELECT compiled once for PostgreSQL, run on the driver connection of
    :meth:`Database.driver_read`, its rows decoded by the same result processors
    SQLAlchemy would apply (UUIDs as strings, timestamps in UTC): each row a dict keyed
    by the statement's column labels."""

    def __init__(self, statement: Any) -> None:
        self._statement = statement
        self._sql: str | None = None
        #: per column: its label and SQLAlchemy's result processor (None: as the driver
        #: gives it); built at the first answer, whose column types they depend on
        self._decoders: list[tuple[str, Any]] | None = None

    async def rows(self, db: "Database", params: dict[str, Any]) -> list[dict[str, Any]]:
        dialect = db.engine.dialect
        if self._sql is None:
            self._sql = str(self._statement.compile(dialect=dialect))
        async with db.driver_read() as conn:
            if db.record_driver_statements:
                db.driver_statements.append(self._sql)
            cursor = await conn.execute(self._sql, params)
            raw = await cursor.fetchall()
            decoders = self._decoders
            if decoders is None:
                decoders = self._decoders = [
                    (column.name, column.type.dialect_impl(dialect).result_processor(
                        dialect, described.type_code))
                    for column, described in zip(self._statement.selected_columns,
                                                 cursor.description, strict=True)]
        return [{name: value if decode is None else decode(value)
                 for (name, decode), value in zip(decoders, row, strict=True)} for row in raw]
