#!/usr/bin/env bash
# jobtrack side by side with the peer queues, in ONE run (targets P1, P2, P3; P8 optional).
#
#   bench/side_by_side.sh                                   # N=20000, 3 reps, all peers
#   NS=2000 REPS=1 PEERS="pgqueuer procrastinate" bench/side_by_side.sh     # smoke run
#   MEMORY_N=100000 bench/side_by_side.sh                   # + P8 (worker RSS, PG and SQLite)
#
# What it does:
#   1. copies the peers harness ($PEERS_DIR, required: a checkout outside this repository,
#      left read-only) to a temp dir and works there;
#   2. runs the copy's setup_venvs.sh for the peers selected (the venvs are kept between runs
#      in $PEER_VENVS; PEER_VENVS= builds them inside the temp copy instead);
#   3. runs the copy's `servers.sh start`: throwaway PostgreSQL (fresh initdb, defaults:
#      fsync=on, synchronous_commit=on) on $PEERS_PG_PORT and Redis (no persistence) on
#      $PEERS_REDIS_PORT, exactly the peers' settings;
#   4. interleaves repetitions: rep 1 of every configuration (peers, jobtrack on PG, jobtrack
#      on SQLite, the equal-work floor), then rep 2, ...; the order rotates by one each rep
#      so that no configuration always runs first or right after the same neighbour;
#   5. appends one JSON line per run to bench/results/raw/<run>.jsonl (git-ignored), keeps
#      the console log and worker logs beside it, writes bench/results/<run>.md (medians,
#      min-max, ratios: bench/peers/report.py) and prints it;
#   6. stops the servers (unless KEEP_SERVERS=1) and removes the temp copy (unless KEEP_WORK=1).
#
# Knobs (environment):
#   NS="20000"        job counts (space-separated)
#   REPS=3            repetitions
#   PEERS="..."       peer configurations, names as in the harness's run_all.sh: floor
#                     floor-analyze pgbench procrastinate procrastinate-c10 pgqueuer rq rq-simple
#                     celery saq arq arq-poll50ms   (default: all but floor-analyze and pgbench)
#   JOBTRACK="..."    jobtrack configurations: jobtrack (the defaults: concurrency 100)
#                     jobtrack-c10 jobtrack-c100 jobtrack-c1000
#                     jobtrack-sqlite jobtrack-sqlite-c100 jobtrack-sqlite-c1000
#                     equal-work-floor equal-work-floor-b10 equal-work-floor-b1000
#                     (default: all but jobtrack-c100 and jobtrack-sqlite-c100, which are
#                     the defaults again)
#   MEMORY_N=0        >0: also bench/bench_memory.py with that many jobs (PG and SQLite)
#   RQ_FORK_MAX_N=5000  the rq forking worker (~40 jobs/s) only runs for N up to this
#   PEERS_DIR, PEER_VENVS, JT_PY (jobtrack's python, default <repo>/.venv/bin/python),
#   PEERS_PG_PORT=55432, PEERS_REDIS_PORT=56379, RUN (name), KEEP_SERVERS, KEEP_WORK
set -uo pipefail

ROOT="$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
PEERS_DIR="${PEERS_DIR:-}"
NS="${NS:-20000}"
REPS="${REPS:-3}"
PEERS="${PEERS-floor procrastinate procrastinate-c10 pgqueuer rq rq-simple celery saq arq arq-poll50ms}"
JOBTRACK="${JOBTRACK-jobtrack jobtrack-c10 jobtrack-c1000 jobtrack-sqlite jobtrack-sqlite-c1000 equal-work-floor equal-work-floor-b10 equal-work-floor-b1000}"
MEMORY_N="${MEMORY_N:-0}"
RQ_FORK_MAX_N="${RQ_FORK_MAX_N:-5000}"
JT_PY="${JT_PY:-$ROOT/.venv/bin/python}"
PEER_VENVS="${PEER_VENVS-${XDG_CACHE_HOME:-$HOME/.cache}/jobtrack-bench/peer-venvs}"
RUN="${RUN:-side-by-side-$(date +%Y%m%d-%H%M%S)}"
RESULTS="$ROOT/bench/results"
OUT="$RESULTS/raw/$RUN.jsonl"
LOG="$RESULTS/raw/$RUN.log"
SUMMARY="$RESULTS/$RUN.md"
COMMAND="NS=\"$NS\" REPS=$REPS PEERS=\"$PEERS\" JOBTRACK=\"$JOBTRACK\" MEMORY_N=$MEMORY_N bench/side_by_side.sh"

die() { echo "side_by_side: $*" >&2; exit 1; }
[[ -f "$PEERS_DIR/run_all.sh" && -f "$PEERS_DIR/bench/common.py" ]] || die "no peers harness at $PEERS_DIR (set PEERS_DIR)"
[[ -x "$JT_PY" ]] || die "jobtrack's python not found at $JT_PY (set JT_PY)"
mkdir -p "$RESULTS/raw"

# --- 1. a private copy of the harness --------------------------------------------------
WORK="$(mktemp -d -t jobtrack-sbs.XXXXXX)"
P="$WORK/peers"
cp -r "$PEERS_DIR" "$P" && chmod -R u+w "$P" || die "cannot copy $PEERS_DIR"
rm -rf "$P/.venvs" "$P/.run"
source "$P/config.sh"   # exports PEERS_PG_* / PEERS_REDIS_* (ports overridable)
export PEERS_BENCH_DIR="$P/bench"

cleanup() {
  cd / || true   # servers.sh runs postgres' tools as the postgres user: not from our temp dir
  if [[ -z "${KEEP_SERVERS:-}" ]]; then "$P/servers.sh" stop; else echo "servers left running (KEEP_SERVERS=1): $P/servers.sh stop"; fi
  if [[ -d "$P/.run/logs" ]]; then mkdir -p "$RESULTS/raw/$RUN-logs" && cp -r "$P/.run/logs/." "$RESULTS/raw/$RUN-logs/"; fi
  if [[ -z "${KEEP_WORK:-}" && -z "${KEEP_SERVERS:-}" ]]; then rm -rf "$WORK"; else echo "harness copy kept: $P"; fi
}

# --- 2. venvs of the peers selected ----------------------------------------------------
venvs=()
for peer in $PEERS; do
  case "$peer" in
    floor|floor-analyze) v=floor ;; procrastinate*) v=procrastinate ;; pgqueuer) v=pgqueuer ;;
    rq|rq-simple) v=rq ;; celery) v=celery ;; saq) v=saq ;; arq|arq-poll50ms) v=arq ;;
    pgbench) continue ;; *) die "unknown peer '$peer'" ;;
  esac
  [[ " ${venvs[*]-} " == *" $v "* ]] || venvs+=("$v")
done
if (( ${#venvs[@]} )); then
  if [[ -n "$PEER_VENVS" ]]; then   # venvs built where they stay (console scripts keep absolute paths)
    mkdir -p "$PEER_VENVS" && cp "$P/setup_venvs.sh" "$P/requirements.txt" "$PEER_VENVS/"
    (cd "$PEER_VENVS" && ./setup_venvs.sh "${venvs[@]}") || { rm -rf "$WORK"; die "venv setup failed"; }
    mkdir -p "$PEER_VENVS/.venvs" && ln -s "$PEER_VENVS/.venvs" "$P/.venvs"
  else
    (cd "$P" && ./setup_venvs.sh "${venvs[@]}") || { rm -rf "$WORK"; die "venv setup failed"; }
  fi
fi
V="$P/.venvs"

# --- 3. servers (the harness's own script and settings) --------------------------------
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in "$PEERS_PG_PORT" "$PEERS_REDIS_PORT"; do
  port_busy "$port" && { rm -rf "$WORK"; die "port $port is in use (another benchmark running?): set PEERS_PG_PORT / PEERS_REDIS_PORT"; }
done
"$P/servers.sh" start || { rm -rf "$WORK"; die "server start failed"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 4. interleaved repetitions --------------------------------------------------------
run() {  # label cmd...
  local label="$1"; shift
  local t0=$SECONDS st
  echo "### $label" >>"$LOG"
  if "$@" >>"$LOG" 2>&1; then st=ok; else st=FAILED; fi
  echo "[$(date +%H:%M:%S)] $label: $st ($((SECONDS - t0)) s)"
}

one() {  # config n rep
  local cfg="$1" n="$2" rep="$3"
  local common=(--n "$n" --rep "$rep" --out "$OUT")
  local jt=("$JT_PY" "$ROOT/bench/peers/p_jobtrack.py" "${common[@]}")
  local fl=("$JT_PY" "$ROOT/bench/floor_equal_work.py" "${common[@]}")
  local label="$cfg N=$n rep $rep"
  case "$cfg" in
    floor)             run "$label" "$V/floor/bin/python" bench/floor_sql.py "${common[@]}" ;;
    floor-analyze)     run "$label" "$V/floor/bin/python" bench/floor_sql.py "${common[@]}" --analyze ;;
    procrastinate)     run "$label" "$V/procrastinate/bin/python" bench/p_procrastinate.py "${common[@]}" ;;
    procrastinate-c10) run "$label" "$V/procrastinate/bin/python" bench/p_procrastinate.py "${common[@]}" --concurrency 10 --variant c10 ;;
    pgqueuer)          run "$label" "$V/pgqueuer/bin/python" bench/p_pgqueuer.py "${common[@]}" ;;
    rq)                if (( n <= RQ_FORK_MAX_N )); then run "$label" "$V/rq/bin/python" bench/p_rq.py "${common[@]}"
                       else echo "[skip] rq (fork worker) N=$n > RQ_FORK_MAX_N=$RQ_FORK_MAX_N"; fi ;;
    rq-simple)         run "$label" "$V/rq/bin/python" bench/p_rq.py "${common[@]}" --variant simple ;;
    celery)            run "$label" "$V/celery/bin/python" bench/p_celery.py "${common[@]}" ;;
    saq)               run "$label" "$V/saq/bin/python" bench/p_saq.py "${common[@]}" ;;
    arq)               run "$label" "$V/arq/bin/python" bench/p_arq.py "${common[@]}" ;;
    arq-poll50ms)      run "$label" "$V/arq/bin/python" bench/p_arq.py "${common[@]}" --variant poll50ms ;;
    jobtrack)          run "$label" "${jt[@]}" ;;
    jobtrack-c10)      run "$label" "${jt[@]}" --concurrency 10 --variant c10 ;;
    jobtrack-c100)     run "$label" "${jt[@]}" --concurrency 100 --variant c100 ;;
    jobtrack-c1000)    run "$label" "${jt[@]}" --concurrency 1000 --variant c1000 ;;
    jobtrack-sqlite)   run "$label" "${jt[@]}" --backend sqlite --variant sqlite ;;
    jobtrack-sqlite-c100) run "$label" "${jt[@]}" --backend sqlite --concurrency 100 --variant sqlite-c100 ;;
    jobtrack-sqlite-c1000) run "$label" "${jt[@]}" --backend sqlite --concurrency 1000 --variant sqlite-c1000 ;;
    equal-work-floor)  run "$label" "${fl[@]}" ;;
    equal-work-floor-b10) run "$label" "${fl[@]}" --batch 10 ;;
    equal-work-floor-b1000) run "$label" "${fl[@]}" --batch 1000 ;;
    *) echo "unknown configuration $cfg" >&2 ;;
  esac
}

cd "$P" || exit 1
read -r -a configs <<<"$PEERS $JOBTRACK"
(( ${#configs[@]} )) || die "nothing to run: PEERS and JOBTRACK are both empty"
echo "results -> $OUT"
echo "console -> $LOG"
STARTED="$(date '+%Y-%m-%d %H:%M %Z')"
for rep in $(seq "$REPS"); do
  k=${#configs[@]}
  for ((i = 0; i < k; i++)); do
    cfg="${configs[$(( (i + rep - 1) % k ))]}"
    if [[ "$cfg" == pgbench ]]; then run "pgbench rep $rep" bench/pgbench.sh "$rep" "$OUT" 4 1; continue; fi
    for n in $NS; do one "$cfg" "$n" "$rep"; done
  done
done
if (( MEMORY_N > 0 )); then
  run "bench_memory N=$MEMORY_N" "$JT_PY" "$ROOT/bench/bench_memory.py" --n "$MEMORY_N" \
    --database-url "$PEERS_PG_DSN_BASE/postgres" --out "$OUT"
fi

# --- 5. the summary --------------------------------------------------------------------
pg_version="$(psql -Atd "$PEERS_PG_DSN_BASE/postgres" -c 'SHOW server_version' 2>/dev/null || echo '?')"
pg_settings="$(psql -Atd "$PEERS_PG_DSN_BASE/postgres" -c "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name) FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'wal_sync_method', 'shared_buffers')" 2>/dev/null || echo '?')"
{
  echo "# Side-by-side run $RUN"
  echo
  echo "- date: $STARTED to $(date '+%H:%M %Z')"
  echo "- machine: $(nproc) cores (nproc), $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load average at end $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- PostgreSQL $pg_version (harness cluster, fresh initdb: $pg_settings); $(redis-server --version | awk '{print $1, $3}'); Python $("$JT_PY" -c 'import platform; print(platform.python_version())')"
  echo "- jobtrack $(git -C "$ROOT" describe --always --dirty)"
  echo "- command: \`$COMMAND\`"
  echo "- raw results: \`bench/results/raw/$RUN.jsonl\` (tables: \`.venv/bin/python bench/peers/report.py bench/results/raw/$RUN.jsonl\`)"
  echo
  "$JT_PY" "$ROOT/bench/peers/report.py" "$OUT"
} >"$SUMMARY"
echo
cat "$SUMMARY"
echo
echo "summary -> $SUMMARY"
