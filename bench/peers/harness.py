"""Where the peers harness is, and its ``common`` / ``pgcost`` modules imported from there.

The harness (``$PEERS_DIR``, outside this repository) is read-only: ``bench/side_by_side.sh``
copies it to a temp dir and points ``PEERS_BENCH_DIR`` at the copy's ``bench/``, where
worker logs go to the copy's ``.run/logs``. Run by hand without ``PEERS_BENCH_DIR``, the
drivers import from ``$PEERS_DIR/bench`` but never write there (no ``.run/``, no
``__pycache__``: root ignores the read-only bits): worker logs go to
``$TMPDIR/jobtrack-peers-logs``.
"""

import importlib
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"


def peers_bench_dir() -> Path:
    explicit = os.environ.get("PEERS_BENCH_DIR")
    if explicit:
        return Path(explicit).resolve()
    peers = os.environ.get("PEERS_DIR")
    if not peers:
        raise SystemExit("set PEERS_DIR to a checkout of the peers harness (or PEERS_BENCH_DIR)")
    return Path(peers).resolve() / "bench"


def load() -> tuple[ModuleType, ModuleType]:
    """The harness's ``common`` and ``pgcost`` modules."""
    where = peers_bench_dir()
    if not (where / "common.py").is_file():
        raise SystemExit(f"peers harness not found at {where}: set PEERS_BENCH_DIR or PEERS_DIR")
    private_copy = bool(os.environ.get("PEERS_BENCH_DIR"))
    if str(where) not in sys.path:
        sys.path.insert(0, str(where))
    saved = sys.dont_write_bytecode
    sys.dont_write_bytecode = saved or not private_copy
    try:
        common = importlib.import_module("common")
        pgcost = importlib.import_module("pgcost")
    finally:
        sys.dont_write_bytecode = saved
    if not private_copy:
        common.LOG_DIR = Path(tempfile.gettempdir()) / "jobtrack-peers-logs"
    return common, pgcost


def git_revision() -> str:
    """The repo's commit (``-dirty`` when the tree has changes): jobtrack is measured as
    it is in the working tree."""
    import subprocess

    try:
        out = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"
