"""``jobtrack contract export``: the status contract for other languages."""

from pathlib import Path
from typing import Annotated

import typer

from jobtrack.cli.common import console


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="The status contract, exported for other languages.",
                        no_args_is_help=True)
    app.add_typer(group, name="contract")

    @group.command("export")
    def export(
        directory: Annotated[Path, typer.Argument(help="where the files go")] = Path("contract"),
        check: Annotated[bool, typer.Option("--check", help="only report stale files")] = False,
    ) -> None:
        """Generate TypeScript, GraphQL SDL and JSON Schema from jobtrack.domain.status."""
        from jobtrack.contract.export import check_current, write_all

        if check:
            stale = check_current(directory)
            for name in stale:
                console.print(f"{directory / name} is not current; run `jobtrack contract export`")
            raise typer.Exit(1 if stale else 0)
        for path in write_all(directory):
            console.print(f"wrote {path}")
