"""Tables and ratios of a side-by-side run (``bench/side_by_side.sh``), in Markdown.

Reads the JSONL the drivers append (the peers' ``p_*.py``, ``p_jobtrack.py``,
``floor_equal_work.py``, the peers' ``floor_sql.py`` and ``pgbench.sh``, ``bench_memory.py``)
and prints, per N: every configuration as median (min-max) over its successful runs, then
the ratios the targets ask for (docs/benchmarks.md, docs/targets.md):

- P1: jobtrack (PostgreSQL) / the fastest peer, by e2e, from-spawn and steady rates;
  as ratios of medians and as the median (min-max) of per-repetition ratios (each rep's
  runs were made side by side);
- P2: jobtrack (PostgreSQL) / the equal-work floor (steady and e2e);
- P3: jobtrack on SQLite vs 5,000 jobs/s;
- P8: worker RSS growth after warm-up (when bench_memory.py ran).

    .venv/bin/python bench/peers/report.py bench/results/raw/<run>.jsonl
"""

import json
import statistics
import sys
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

PEER_STORE = {"procrastinate": "PG", "pgqueuer": "PG", "rq": "Redis", "celery": "Redis",
              "saq": "Redis", "arq": "Redis"}
P1_TARGET = 2.0  # x the fastest peer
P2_TARGET = 0.5  # x the equal-work floor
P3_TARGET = 5000.0  # jobs/s on SQLite
RATES = (("e2e", "e2e_rate"), ("from spawn", "proc_rate"), ("steady", "steady_rate"))

Row = dict[str, Any]
Key = tuple[str, str, int]


def med(vals: Iterable[float | None]) -> float | None:
    got = [v for v in vals if v is not None]
    return statistics.median(got) if got else None


def fmt(vals: Iterable[float | None], digits: int = 0) -> str:
    got = [v for v in vals if v is not None]
    if not got:
        return "-"
    f = f"{{:,.{digits}f}}"
    m = f.format(statistics.median(got))
    return m if len(got) == 1 else f"{m} ({f.format(min(got))}-{f.format(max(got))})"


def store_of(r: Row) -> str:
    return str(r.get("settings", {}).get("store") or PEER_STORE.get(r["peer"], "?"))


def kind(r: Row) -> str:
    peer = r.get("peer", "")
    if peer == "jobtrack":
        return "jobtrack"
    if peer in ("equal-work-floor", "raw-sql-floor", "pgbench", "jobtrack-memory"):
        return peer
    return "peer"


def verdict(value: float | None, target: float) -> str:
    if value is None:
        return "-"
    return "meets" if value >= target else "below"


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def rx(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def main_table(groups: dict[Key, list[Row]], fails: dict[Key, int], n: int) -> None:
    order = {"jobtrack": 0, "equal-work-floor": 1, "peer": 2}
    keys = sorted((k for k in groups if k[2] == n),
                  key=lambda k: (order[kind(groups[k][0])],
                                 -(med(r.get("e2e_rate") for r in groups[k]) or 0)))
    print("| who | store | variant | concurrency | runs ok | bulk enqueue | single enqueue | "
          "proc (from spawn) | steady | e2e | e2e seconds |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for k in keys:
        rs = groups[k]
        name = f"**{k[0]}**" if k[0] == "jobtrack" else k[0]
        conc = rs[0].get("settings", {}).get("concurrency", "")
        print(f"| {name} | {store_of(rs[0])} | {k[1]} | {conc} | {len(rs)}/{len(rs) + fails[k]} | "
              f"{fmt(r.get('enqueue_rate') for r in rs)} | "
              f"{fmt(r.get('single_enqueue_rate') for r in rs)} | "
              f"{fmt(r.get('proc_rate') for r in rs)} | {fmt(r.get('steady_rate') for r in rs)} | "
              f"{fmt(r.get('e2e_rate') for r in rs)} | {fmt((r.get('e2e_s') for r in rs), 1)} |")


def fastest(groups: dict[Key, list[Row]], n: int, field: str) -> tuple[Key | None, float | None]:
    best: tuple[Key | None, float | None] = (None, None)
    for k, rs in groups.items():
        if k[2] != n or kind(rs[0]) != "peer":
            continue
        m = med(r.get(field) for r in rs)
        if m is not None and (best[1] is None or m > best[1]):
            best = (k, m)
    return best


def paired(mine: list[Row], others: list[Row], field: str) -> list[float]:
    """Per repetition: my rate / the best other rate of the same repetition."""
    out = []
    for r in mine:
        same = [o.get(field) for o in others if o.get("rep") == r.get("rep") and o.get(field)]
        if r.get(field) and same:
            out.append(r[field] / max(same))
    return out


def p1(groups: dict[Key, list[Row]], n: int) -> None:
    peers = [r for k, rs in groups.items() if k[2] == n and kind(rs[0]) == "peer" for r in rs]
    mine = {k: rs for k, rs in groups.items()
            if k[2] == n and kind(rs[0]) == "jobtrack" and store_of(rs[0]) == "PG"}
    print(f"\n**P1** (target: at least {P1_TARGET:g}x the fastest peer, PostgreSQL, one worker "
          "process)\n")
    if not peers or not mine:
        print("(needs jobtrack PG and at least one peer in the run)")
        return
    for label, field in RATES:
        k, m = fastest(groups, n, field)
        if k is not None:
            print(f"- fastest peer by {label}: {k[0]} {k[1]}, {m:,.0f} jobs/s")
    print("\n| jobtrack variant | rate | jobtrack | fastest peer | ratio of medians | "
          "per-rep ratio (vs that rep's best peer) | target |")
    print("|---|---|---:|---:|---:|---:|---|")
    for k in sorted(mine):
        for label, field in RATES:
            fk, fm = fastest(groups, n, field)
            jm = med(r.get(field) for r in mine[k])
            r_ = ratio(jm, fm)
            per = paired(mine[k], peers, field)
            target = verdict(r_, P1_TARGET) if label == "e2e" else ""
            print(f"| {k[1]} | {label} | {jm or 0:,.0f} | {fm or 0:,.0f} ({fk[0] if fk else '-'}) "
                  f"| {rx(r_)} | {fmt(per, 2)} | {target} |")


def p2(groups: dict[Key, list[Row]], n: int) -> None:
    floors = {k: rs for k, rs in groups.items() if k[2] == n and kind(rs[0]) == "equal-work-floor"}
    mine = {k: rs for k, rs in groups.items()
            if k[2] == n and kind(rs[0]) == "jobtrack" and store_of(rs[0]) == "PG"}
    print(f"\n**P2** (target: jobtrack at least {P2_TARGET:.0%} of the equal-work floor)\n")
    if not floors or not mine:
        print("(needs jobtrack PG and equal-work-floor in the run)")
        return
    best = max(floors, key=lambda k: med(r.get("steady_rate") for r in floors[k]) or 0)
    print(f"The reference is the fastest floor variant ({best[1]}); the others are for "
          "information.\n")
    print("| jobtrack variant | floor variant | steady: jobtrack / floor | ratio | "
          "e2e: jobtrack / floor | ratio | per-rep steady ratio | target (steady) |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for k in sorted(mine):
        for fk in sorted(floors):
            js, fs = med(r.get("steady_rate") for r in mine[k]), med(
                r.get("steady_rate") for r in floors[fk])
            je, fe = med(r.get("e2e_rate") for r in mine[k]), med(
                r.get("e2e_rate") for r in floors[fk])
            per = paired(mine[k], floors[fk], "steady_rate")
            print(f"| {k[1]} | {fk[1]} | {js or 0:,.0f} / {fs or 0:,.0f} | {rx(ratio(js, fs))} | "
                  f"{je or 0:,.0f} / {fe or 0:,.0f} | {rx(ratio(je, fe))} | {fmt(per, 2)} | "
                  f"{verdict(ratio(js, fs), P2_TARGET) if fk == best else '(info)'} |")


def p3(groups: dict[Key, list[Row]], n: int) -> None:
    mine = {k: rs for k, rs in groups.items()
            if k[2] == n and kind(rs[0]) == "jobtrack" and store_of(rs[0]) == "SQLite"}
    print(f"\n**P3** (target: at least {P3_TARGET:,.0f} jobs/s on the SQLite default)\n")
    if not mine:
        print("(needs jobtrack-sqlite in the run)")
        return
    fk, fm = fastest(groups, n, "e2e_rate")
    print("| jobtrack variant | e2e | / 5,000 | from spawn | steady | e2e vs fastest peer | "
          "target (e2e) |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for k in sorted(mine):
        e = med(r.get("e2e_rate") for r in mine[k])
        vs_peer = f"{rx(ratio(e, fm))} ({fk[0]} {fk[1]})" if fk else "-"
        print(f"| {k[1]} | {e or 0:,.0f} | {rx(ratio(e, P3_TARGET))} | "
              f"{fmt(r.get('proc_rate') for r in mine[k])} | "
              f"{fmt(r.get('steady_rate') for r in mine[k])} | {vs_peer} | "
              f"{verdict(ratio(e, P3_TARGET), 1.0)} |")


def cost_table(groups: dict[Key, list[Row]], n: int) -> None:
    rows = []
    for k in sorted(groups):
        cs = [r["settings"]["db_cost_processing"] for r in groups[k]
              if k[2] == n and "db_cost_processing" in r.get("settings", {})]
        if cs:
            rows.append((f"{k[0]} {k[1]}", cs))
    if not rows:
        return
    print("\nPostgreSQL work per job while processing (pg_stat_wal / pg_stat_database deltas, "
          "incl. the harness' polling):\n")
    print("| who | WAL bytes/job | WAL records/job | WAL fsyncs/job | commits/job |")
    print("|---|---:|---:|---:|---:|")
    for name, cs in rows:
        print(f"| {name} | {fmt(c['wal_bytes_per_job'] for c in cs)} | "
              f"{fmt((c['wal_records_per_job'] for c in cs), 1)} | "
              f"{fmt((c['wal_fsyncs_per_job'] for c in cs), 3)} | "
              f"{fmt((c['xact_commits_per_job'] for c in cs), 2)} |")


def references(rows: list[Row]) -> None:
    plain = [r for r in rows if kind(r) == "raw-sql-floor" and r.get("ok")]
    bench = [r for r in rows if kind(r) == "pgbench" and r.get("ok")]
    if plain:
        print("\nThe peers' plain-table floor (floor_sql.py: 3 columns, no events), same server:\n")
        print("| variant | N | runs | cycle b100_c1 | cycle b1_c1 | cycle b1_c4 |")
        print("|---|---:|---:|---:|---:|---:|")
        by: dict[tuple[str, int], list[Row]] = defaultdict(list)
        for r in plain:
            by[(r["variant"], r["n"])].append(r)
        for (v, n), rs in sorted(by.items()):
            print(f"| {v} | {n:,} | {len(rs)} | "
                  + " | ".join(fmt(r.get(f"cycle_{c}_rate") for r in rs)
                               for c in ("b100_c1", "b1_c1", "b1_c4")) + " |")
    if bench:
        print("\npgbench simple-update (-N), commit ceiling of this server:\n")
        for v in sorted({r["variant"] for r in bench}):
            rs = [r for r in bench if r["variant"] == v]
            print(f"- {v}: {fmt(r.get('tps') for r in rs)} TPS")


def memory(rows: list[Row]) -> None:
    mem = [r for r in rows if kind(r) == "jobtrack-memory"]
    if not mem:
        return
    print("\n**P8** worker RSS (bench_memory.py; flat = growth after warm-up under the "
          "threshold)\n")
    print("| backend | N | warm-up at | RSS warm MiB | RSS end MiB | max MiB | growth MiB | "
          "growth % | MiB per 10k jobs | drain jobs/s | verdict |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in mem:
        v = ("flat" if r["flat"] else "grows") if r["ok"] else f"FAILED: {r.get('error')}"
        print(f"| {r['backend']} | {r['n']:,} | {r['rss_warm_at_jobs'] or 0:,} jobs | "
              f"{r['rss_warm_mib']} | {r['rss_end_mib']} | {r['rss_max_after_warm_mib']} | "
              f"{r['growth_mib']} | {r['growth_pct']} | {r['slope_mib_per_10k_jobs']} | "
              f"{r['drain_rate']:,.0f} | {v} (< {r['flat_threshold_pct']}%) |")


def main(paths: list[str]) -> None:
    rows: list[Row] = []
    for p in paths:
        with open(p) as fh:
            rows += [json.loads(line) for line in fh if line.strip()]
    groups: dict[Key, list[Row]] = defaultdict(list)
    fails: dict[Key, int] = defaultdict(int)
    failures = []
    for r in rows:
        if kind(r) in ("raw-sql-floor", "pgbench", "jobtrack-memory"):
            if not r.get("ok"):
                failures.append(r)
            continue
        key = (r["peer"], r["variant"], r["n"])
        if r.get("ok"):
            groups[key].append(r)
        else:
            fails[key] += 1
            failures.append(r)
    reps = sorted({r.get("rep") for r in rows if r.get("rep") is not None})
    print(f"jobs/s, median (min-max) of the successful runs; {len(reps)} repetition(s), "
          "interleaved. proc = N / (worker spawn -> last done); steady = (N-1) / (first done "
          "-> last done); e2e = N / (bulk enqueue start -> last done). Done times come from "
          "each store.\n")
    for n in sorted({k[2] for k in groups}):
        print(f"### N = {n:,}\n")
        main_table(groups, fails, n)
        p1(groups, n)
        p2(groups, n)
        p3(groups, n)
        cost_table(groups, n)
        print()
    references(rows)
    memory(rows)
    if failures:
        print("\n### Failed runs (excluded above)\n")
        for f in failures:
            err = str(f.get("error") or "")[:300].replace("\n", " ")
            print(f"- {f.get('peer')} {f.get('variant', f.get('backend'))} N={f.get('n')} "
                  f"rep {f.get('rep')}: {err}")


if __name__ == "__main__":
    main(sys.argv[1:])
