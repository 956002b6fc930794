"""The README's first command: ``jobtrack demo`` runs a real flow to completion."""

import sqlite3
import subprocess
import sys
from pathlib import Path

from jobtrack.domain.status import FlowStatus, JobStatus, PhaseStatus


def test_demo_runs_a_flow_with_real_workers(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    proc = subprocess.run(
        [sys.executable, "-m", "jobtrack", "--database-url", f"sqlite:///{db}", "demo",
         "--fast", "--documents", "3"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "flow completed" in proc.stderr
    with sqlite3.connect(db) as conn:
        flows = conn.execute("SELECT status, total, completed FROM flows").fetchall()
        statuses = conn.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall()
        pauses = conn.execute(
            "SELECT count(*) FROM events WHERE actor = 'demo' AND data LIKE ?",
            (f'%"{PhaseStatus.PAUSED.value}"%',),
        ).fetchone()
        workers = conn.execute(
            "SELECT count(DISTINCT actor) FROM events WHERE actor LIKE 'worker:%'"
        ).fetchone()
    assert flows == [(FlowStatus.COMPLETED.value, 4, 4)]
    assert statuses == [(JobStatus.COMPLETED.value, 4)]
    assert pauses == (1,), "the demo pauses one embedding phase, then resumes it"
    assert workers is not None and workers[0] >= 1
