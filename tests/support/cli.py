"""The ``jobtrack`` command line: in this process through Typer's runner, or as the
command line of a subprocess."""

import subprocess
import sys
from collections.abc import Mapping

from typer.testing import CliRunner

from jobtrack.cli import app as cli_app


def command(*args: str, url: str) -> list[str]:
    """``jobtrack --database-url URL ARGS...`` as a subprocess command line."""
    return [sys.executable, "-m", "jobtrack", "--database-url", url, *args]


def invoke(url: str, *args: str, columns: int = 250) -> tuple[int, str, str]:
    """Run the CLI in this process, ``columns`` wide: (exit code, stdout, stderr)."""
    result = CliRunner().invoke(cli_app, ["--database-url", url, *args],
                                env={"COLUMNS": str(columns)})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def cli_key(url: str, tenant: str, env: Mapping[str, str] | None = None, *,
            admin: bool = False) -> str:
    """A raw key from ``jobtrack keys create --tenant TENANT [--admin]`` (a subprocess)."""
    args = ["keys", "create", "--tenant", tenant, *(["--admin"] if admin else [])]
    done = subprocess.run(command(*args, url=url),
                          env=None if env is None else dict(env), capture_output=True,
                          text=True, timeout=60, check=True)
    return done.stdout.strip()
