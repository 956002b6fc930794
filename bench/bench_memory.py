"""P8: memory of one worker process while it drains 100,000 no-op jobs.

Per backend (a SQLite file; PostgreSQL when ``--database-url`` names a server: a scratch
database ``jtmem_<random>`` is created on it and dropped afterwards):

1. migrate, enqueue N no-op jobs (``App.enqueue_many``, ``bench/noop_app.py``);
2. spawn ONE worker process (``jobtrack worker noop_app:app --no-migrate``);
3. every ``--interval`` seconds sample its resident set (``VmRSS`` of ``/proc/PID/status``)
   and the number of completed jobs, until all N are completed (one last sample then);
4. report the RSS after warm-up (first sample with at least ``--warmup`` jobs done), at the
   end, the highest after warm-up, growth (end - warm-up) in MiB and %, the least-squares
   slope in MiB per 10,000 jobs after warm-up, and the verdict: flat when the growth is
   under ``--flat-pct`` % (default 5);
5. verify N jobs completed, stop the worker (SIGTERM).

    .venv/bin/python bench/bench_memory.py --n 100000 \\
        --database-url postgresql://postgres@127.0.0.1:5432/postgres
"""

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from scratch import scratch  # bench/: the script's own folder
from sqlalchemy.engine import make_url

from jobtrack.queue.app import App
from jobtrack.settings import Settings

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
MIB = 1024 * 1024


def completed_counter(url: str) -> tuple[Callable[[], int], Callable[[], None]]:
    """A cheap 'how many jobs are completed' probe, and how to close it."""
    sql = "SELECT count(*) FROM jobs WHERE status = 'completed'"
    if make_url(url).get_backend_name() == "sqlite":
        lite = sqlite3.connect(make_url(url).database or "", timeout=30, isolation_level=None)
        return (lambda: int(lite.execute(sql).fetchone()[0])), lite.close
    pg = psycopg.connect(url, autocommit=True)
    return (lambda: int(pg.execute(sql).fetchone()[0])), pg.close  # type: ignore[index]


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process, in KiB."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                fields[key] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


async def enqueue(url: str, n: int) -> float:
    from noop_app import app as bench_app

    app = App(url, tenant="bench")
    app.tasks = bench_app.tasks
    async with app:
        t0 = time.perf_counter()
        for start in range(0, n, 10_000):
            await app.enqueue_many("noop", ({"i": i} for i in range(start, min(n, start + 10_000))))
        return time.perf_counter() - t0


def slope_mib_per_10k(samples: list[tuple[float, int, int]]) -> float | None:
    """Least-squares slope of RSS over jobs done, in MiB per 10,000 jobs."""
    if len(samples) < 3 or len({s[1] for s in samples}) < 2:
        return None
    xs = [s[1] for s in samples]
    ys = [s[2] / 1024 for s in samples]
    fit = statistics.linear_regression(xs, ys)
    return round(fit.slope * 10_000, 3)


def sample(proc: "subprocess.Popen[bytes]", count: Callable[[], int],
           a: argparse.Namespace) -> tuple[list[tuple[float, int, int]], int, str | None]:
    """(seconds since spawn, jobs done, RSS KiB) every interval until all jobs are done."""
    t0 = time.monotonic()
    samples: list[tuple[float, int, int]] = []
    hwm = 0
    deadline = t0 + a.timeout
    while True:
        done = count()
        try:
            rss, hwm = rss_kib(proc.pid)
        except (OSError, KeyError):  # gone (or a zombie without VmRSS)
            return samples, hwm, f"worker exited (rc={proc.poll()}) with {done}/{a.n} done"
        samples.append((round(time.monotonic() - t0, 2), done, rss))
        if done >= a.n:
            return samples, hwm, None
        if proc.poll() is not None:
            return samples, hwm, f"worker exited (rc={proc.returncode}) with {done}/{a.n} done"
        if time.monotonic() > deadline:
            return samples, hwm, f"timeout: {done}/{a.n} done after {a.timeout} s"
        time.sleep(a.interval)


def stop(proc: "subprocess.Popen[bytes]") -> None:
    """SIGTERM (graceful), SIGKILL after 30 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def one_run(url: str, backend: str, a: argparse.Namespace) -> dict[str, Any]:
    enqueue_s = asyncio.run(enqueue(url, a.n))
    script = Path(sys.executable).parent / "jobtrack"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "jobtrack"]
    cmd += ["--database-url", url, "worker", "noop_app:app", "--no-migrate",
            "--concurrency", str(a.concurrency)]
    count, close = completed_counter(url)
    log_path = Path(tempfile.gettempdir()) / f"jtmem-worker-{backend}-{os.getpid()}.log"
    t0 = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=HERE, env={**os.environ, "PYTHONPATH": str(HERE)},
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            samples, hwm, error = sample(proc, count, a)
        finally:
            drain_s = time.monotonic() - t0
            stop(proc)
            final = count()
            close()
    after = [s for s in samples if s[1] >= a.warmup]
    warm = after[0] if after else None
    end = samples[-1]
    growth = (end[2] - warm[2]) / 1024 if warm else None
    growth_pct = 100 * (end[2] - warm[2]) / warm[2] if warm else None
    ok = error is None and final == a.n and warm is not None
    if ok:
        log_path.unlink()  # kept only when something went wrong
    return {
        "peer": "jobtrack-memory", "backend": backend, "n": a.n, "concurrency": a.concurrency,
        "warmup": a.warmup, "interval_s": a.interval, "enqueue_s": round(enqueue_s, 3),
        "drain_s": round(drain_s, 2), "drain_rate": round(a.n / drain_s, 1),
        "rss_start_mib": round(samples[0][2] / 1024, 1),
        "rss_warm_mib": round(warm[2] / 1024, 1) if warm else None,
        "rss_warm_at_jobs": warm[1] if warm else None,
        "rss_end_mib": round(end[2] / 1024, 1),
        "rss_max_after_warm_mib": round(max(s[2] for s in after) / 1024, 1) if after else None,
        "hwm_mib": round(hwm / 1024, 1),
        "growth_mib": round(growth, 2) if growth is not None else None,
        "growth_pct": round(growth_pct, 2) if growth_pct is not None else None,
        "slope_mib_per_10k_jobs": slope_mib_per_10k(after),
        "flat": bool(ok and growth_pct is not None and growth_pct < a.flat_pct),
        "flat_threshold_pct": a.flat_pct, "verified_done": final, "ok": ok, "error": error,
        "samples": samples, "worker_log": None if ok else str(log_path),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--warmup", type=int, default=10_000, help="jobs done before the baseline")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    p.add_argument("--concurrency", type=int,
                   default=Settings.model_fields["worker_concurrency"].default,
                   help="worker concurrency (default: jobtrack's default)")
    p.add_argument("--flat-pct", type=float, default=5.0)
    p.add_argument("--database-url", help="a PostgreSQL server (scratch database on it)")
    p.add_argument("--no-sqlite", action="store_true")
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--rep", type=int, default=1)
    p.add_argument("--out", help="append one JSON line per backend to this file")
    a = p.parse_args()
    backends = ([] if a.no_sqlite else ["sqlite"]) + (["postgresql"] if a.database_url else [])
    if not backends:
        p.error("nothing to measure: give --database-url or drop --no-sqlite")
    results = []
    for backend in backends:
        with scratch(backend, a.database_url, prefix="jtmem") as url:
            r = one_run(url, backend, a)
        r["rep"] = a.rep
        results.append(r)
        print(json.dumps({k: v for k, v in r.items() if k != "samples"}), flush=True)
        if a.out:
            Path(a.out).parent.mkdir(parents=True, exist_ok=True)
            with open(a.out, "a") as f:
                f.write(json.dumps(r) + "\n")
    print(f"\nworker RSS, N = {a.n:,}, concurrency {a.concurrency}, warm-up {a.warmup:,} jobs")
    print(f"{'backend':<11}{'warm MiB':>9}{'end MiB':>9}{'max MiB':>9}{'growth':>9}"
          f"{'%':>7}{'MiB/10k':>9}  verdict")
    for r in results:
        verdict = ("flat" if r["flat"] else "GROWS") if r["ok"] else f"FAILED: {r['error']}"
        print(f"{r['backend']:<11}{r['rss_warm_mib'] or 0:>9.1f}{r['rss_end_mib']:>9.1f}"
              f"{r['rss_max_after_warm_mib'] or 0:>9.1f}{r['growth_mib'] or 0:>9.2f}"
              f"{r['growth_pct'] or 0:>7.2f}{r['slope_mib_per_10k_jobs'] or 0:>9.3f}  {verdict}")
    if not all(r["ok"] for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
