#!/usr/bin/env bash
# Weir's benchmark harness: one command on a machine prepared by scripts/setup.sh
# (it runs setup.sh itself first; that is fast when everything is in place).
#
#   benchmarks/run.sh [--events N] [--parallelism P] [--only LIST] [--repeat K]
#                     [--ceiling-consumers C] [--ckpt-intervals LIST] [--state-events N]
#                     [--state-users U] [--state-parallelism P] [--state-extra E]
#                     [--state-sink mysql|blackhole] [--state-under-load F] [--no-threads] [--skip-build] [--no-quiet] [--keep-state] [--update-results]
#
#   --events N             events in topic `events` for W1, W2 and ckpt (default 2000000)
#   --parallelism P        Weir's parallelism for W1, W2 and ckpt (default 2)
#   --only LIST            comma-separated parts to run: w1, w2, bench, ckpt, state (default: all five)
#                            w1, w2  throughput against the bare librdkafka ceiling
#                            bench   W1 and W2 through `weir bench` (generated data, in-process ceiling, latency, sink check)
#                            ckpt    W1 without / with periodic checkpoints, alternating pairs
#                            state   savepoints, stop and restore of a job with ~1 M keys
#   --repeat K             undisturbed pairs per workload / interval, savepoints, restores (default 3)
#                          (a pair disturbed by other processes is repeated, up to 3 extra)
#   --ceiling-consumers C  consumers (threads) of the bare librdkafka ceiling (default 1)
#   --ckpt-intervals LIST  checkpoint intervals for ckpt (default 1s,200ms)
#   --state-events N       events in topic `state-events` (default 2000000)
#   --state-users U        distinct user_id values they are drawn from (default 1300000: ~1.02 M keys)
#   --state-parallelism P  parallelism of the state job (default 1, see README.md)
#   --state-extra E        events produced after the stop, read by each restore (default 10000)
#   --state-sink S         mysql (default): the state job upserts into InnoDB and the whole table is checked;
#                          blackhole: into a BLACKHOLE table (for 10 M keys: loading is not bounded by
#                          InnoDB), restored runs into InnoDB, checked against the generator
#   --state-under-load F   one savepoint once this fraction of the state input is in (default 0.6; 0: none)
#   --no-threads           don't sample per-thread CPU from /proc during the runs
#   --skip-build           use the release binary already built (while the tree does not compile)
#   --no-quiet             don't wait for an idle machine, don't retry runs disturbed by other processes
#   --keep-state           keep the snapshot directories (benchmarks/out/<timestamp>/state*) and topic state-events
#   --update-results       also rewrite benchmarks/RESULTS.md from this run
#
# Steps: setup.sh → release build of weir → build the bare librdkafka consumer →
# start the servers (scripts/servers.sh; stopped again at the end only if this
# script started them) → topic `events` (4 partitions, N events, seed 42; kept
# when it already holds exactly that) → W1, W2: K times a fresh MySQL table, a
# ceiling run, `weir run --until-idle 1` under /usr/bin/time -v → ckpt: per
# interval, K pairs of W1 without and with `checkpoint: { interval }` → W1/W2
# and ckpt tables against benchmarks/reference.py → state: `bench.py state`
# (savepoints, stop, restores of benchmarks/state.yaml, its own check) → table on
# stdout and benchmarks/out/results-<timestamp>.md (raw files in benchmarks/out/<timestamp>/).
# Exits non-zero if a run fails or a result is wrong (not when a target is missed).
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
EVENTS=2000000
PAR=2
ONLY="w1,w2,bench,ckpt,state"
CEIL_CONSUMERS=1
CKPT_INTERVALS="1s,200ms"
STATE_EVENTS=2000000
STATE_USERS=1300000
STATE_SINK=mysql
STATE_UNDER_LOAD=0.6
STATE_PAR=1
STATE_EXTRA=10000
KEEP_STATE=0
REPEAT=3
THREADS=1
BUILD=1
QUIET=1
UPDATE=0
ARGS="$*"
usage() { sed -n '4,32p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --events) EVENTS="${2:?}"; shift 2 ;;
    --parallelism) PAR="${2:?}"; shift 2 ;;
    --only) ONLY="${2:?}"; shift 2 ;;
    --ceiling-consumers) CEIL_CONSUMERS="${2:?}"; shift 2 ;;
    --repeat) REPEAT="${2:?}"; shift 2 ;;
    --ckpt-intervals) CKPT_INTERVALS="${2:?}"; shift 2 ;;
    --state-events) STATE_EVENTS="${2:?}"; shift 2 ;;
    --state-users) STATE_USERS="${2:?}"; shift 2 ;;
    --state-parallelism) STATE_PAR="${2:?}"; shift 2 ;;
    --state-extra) STATE_EXTRA="${2:?}"; shift 2 ;;
    --state-sink) STATE_SINK="${2:?}"; shift 2 ;;
    --state-under-load) STATE_UNDER_LOAD="${2:?}"; shift 2 ;;
    --keep-state) KEEP_STATE=1; shift ;;
    --no-threads) THREADS=0; shift ;;
    --skip-build) BUILD=0; shift ;;
    --no-quiet) QUIET=0; shift ;;
    --update-results) UPDATE=1; shift ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
done
[[ "$EVENTS" =~ ^[1-9][0-9]*$ ]] || { echo "--events must be a positive integer" >&2; exit 2; }
[[ "$PAR" =~ ^[1-9][0-9]*$ ]] || { echo "--parallelism must be a positive integer" >&2; exit 2; }
[[ "$REPEAT" =~ ^[1-9][0-9]*$ ]] || { echo "--repeat must be a positive integer" >&2; exit 2; }
[[ "$CEIL_CONSUMERS" =~ ^[1-9][0-9]*$ ]] || { echo "--ceiling-consumers must be a positive integer" >&2; exit 2; }
for v in STATE_EVENTS STATE_USERS STATE_PAR STATE_EXTRA; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "--$(echo "${v,,}" | tr _ -) must be a positive integer" >&2; exit 2; }
done
PARTS=" "
for p in ${ONLY//,/ }; do
  case "$p" in w1|w2|bench|ckpt|state) PARTS="$PARTS$p " ;; *) echo "--only takes a comma-separated list of w1, w2, bench, ckpt, state" >&2; exit 2 ;; esac
done
[ "$PARTS" != " " ] || { echo "--only: nothing to run" >&2; exit 2; }
has() { [[ "$PARTS" == *" $1 "* ]]; }
WORKLOADS=""
for w in w1 w2; do if has "$w"; then WORKLOADS="$WORKLOADS $w"; fi; done
WORKLOADS="${WORKLOADS# }"
INTERVALS=""
if has ckpt; then
  for iv in ${CKPT_INTERVALS//,/ }; do
    [[ "$iv" =~ ^[1-9][0-9]*(ms|s)$ ]] || { echo "--ckpt-intervals: '$iv' is not like 1s or 200ms" >&2; exit 2; }
    INTERVALS="$INTERVALS $iv"
  done
  INTERVALS="${INTERVALS# }"
fi

KAFKA_PORT="${WEIR_KAFKA_PORT:-19092}"
MYSQL_PORT="${WEIR_MYSQL_PORT:-13306}"
RUN="${WEIR_RUN_DIR:-$ROOT/.run}"
BOOT="127.0.0.1:$KAFKA_PORT"
TOPIC=events
PARTITIONS=4
SEED=42
DB=weir_bench
declare -A TABLE=([w1]=w1_user_spend [w2]=w2_big_spend)
declare -A DDL=(
  [w1]="user_id BIGINT NOT NULL, window_start BIGINT NOT NULL, window_end BIGINT, cnt BIGINT, total BIGINT, PRIMARY KEY (user_id, window_start)"
  [w2]="user_id BIGINT, amount BIGINT, ts BIGINT")
OUT="$BENCH/out"
TS="$(date -u +%Y%m%dT%H%M%SZ)"
RD="$OUT/$TS"
PY="$ROOT/.deps/venv/bin/python"
mkdir -p "$RD"

log() { printf '\033[1m[bench]\033[0m %s\n' "$*"; }
json() { "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d[sys.argv[2]])' "$@"; }

# 1. Machine setup (idempotent) and builds ------------------------------------
bash "$ROOT/scripts/setup.sh"
if [ ! -x /usr/bin/time ]; then
  log "installing GNU time (for peak RSS)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends time >/dev/null
fi
if [ "$BUILD" = 1 ]; then
  log "building weir (release)"
  if ! (cd "$ROOT" && swift build -c release --product weir) > "$RD/build.log" 2>&1; then
    tail -n 30 "$RD/build.log" >&2; echo "release build failed (log: $RD/build.log)" >&2; exit 1
  fi
  tail -n 1 "$RD/build.log"
else
  log "--skip-build: using the existing release binary"
fi
WEIR="$(cd "$ROOT" && swift build -c release --show-bin-path)/weir"
[ -x "$WEIR" ] || { echo "no weir binary at $WEIR" >&2; exit 1; }
BARE="$OUT/bare_consume"
if [ ! -x "$BARE" ] || [ "$BENCH/bare_consume.c" -nt "$BARE" ]; then
  log "building the bare librdkafka consumer"
  gcc -O2 -Wall -o "$BARE" "$BENCH/bare_consume.c" $(pkg-config --cflags --libs rdkafka) -lpthread
fi

# 2. Servers -----------------------------------------------------------------
alive() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }
STARTED=""
for s in tansu mariadb; do alive "$s" || STARTED="$STARTED $s"; done
SAMPLER=""
cleanup() {
  [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null || true
  if [ "$STARTED" = " tansu mariadb" ]; then
    log "stopping the servers this run started"
    bash "$ROOT/scripts/servers.sh" stop || true
  else
    for s in $STARTED; do   # only one was down: stop just that one (as servers.sh stop does)
      if alive "$s"; then
        pid="$(cat "$RUN/$s.pid")"; kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$RUN/$s.pid"; log "$s stopped"
      fi
    done
  fi
}
trap cleanup EXIT
bash "$ROOT/scripts/servers.sh" start

# 3. The topic ---------------------------------------------------------------
# Tansu keeps topics in memory: the marker names the broker process (pid and
# start time), so a restarted broker never passes for a loaded one.
TANSU_PID="$(cat "$RUN/tansu.pid")"
if [ -n "$WORKLOADS$INTERVALS" ]; then
  BROKER_ID="$TANSU_PID-$(awk '{print $22}' "/proc/$TANSU_PID/stat")"
  MARKER="$OUT/topic-$TOPIC-$KAFKA_PORT.json"
  WANT="{\"topic\": \"$TOPIC\", \"partitions\": $PARTITIONS, \"events\": $EVENTS, \"seed\": $SEED, \"broker\": \"$BROKER_ID\"}"
  "$PY" "$BENCH/bench.py" topic-state --bootstrap "$BOOT" --topic "$TOPIC" > "$RD/topic-state.json"
  if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$WANT" ] \
     && [ "$(json "$RD/topic-state.json" partitions)" = "$PARTITIONS" ] \
     && [ "$(json "$RD/topic-state.json" messages)" = "$EVENTS" ]; then
    log "topic $TOPIC already holds $EVENTS events (seed $SEED): not reloading"
  else
    rm -f "$MARKER"
    "$PY" "$BENCH/bench.py" delete-topic --bootstrap "$BOOT" --topic "$TOPIC"
    log "loading $EVENTS events (seed $SEED) into $TOPIC ($PARTITIONS partitions)"
    "$WEIR" produce --bootstrap "$BOOT" --topic "$TOPIC" --partitions "$PARTITIONS" --count "$EVENTS" --seed "$SEED"
    "$PY" "$BENCH/bench.py" topic-state --bootstrap "$BOOT" --topic "$TOPIC" > "$RD/topic-state.json"
    got="$(json "$RD/topic-state.json" messages)"
    [ "$got" = "$EVENTS" ] || { echo "topic $TOPIC holds $got messages after loading $EVENTS" >&2; exit 1; }
    echo "$WANT" > "$MARKER"
  fi
fi

# 4. Measured runs ------------------------------------------------------------
SQL=(mariadb --no-defaults -uroot -h127.0.0.1 -P"$MYSQL_PORT")
"${SQL[@]}" -e "CREATE DATABASE IF NOT EXISTS $DB"
ivjson="$(for iv in $INTERVALS; do printf '"%s", ' "$iv"; done)"
cat > "$RD/meta.json" <<EOF
{"timestamp": "$TS", "events": $EVENTS, "parallelism": $PAR, "topic": "$TOPIC", "partitions": $PARTITIONS,
 "seed": $SEED, "ceilingConsumers": $CEIL_CONSUMERS, "repeat": $REPEAT, "quiet": $QUIET, "workloads": "$WORKLOADS",
 "parts": "$(echo $PARTS)", "ckptIntervals": [${ivjson%, }],
 "state": {"events": $STATE_EVENTS, "users": $STATE_USERS, "parallelism": $STATE_PAR, "extra": $STATE_EXTRA,
           "sink": "$STATE_SINK", "underLoad": $STATE_UNDER_LOAD},
 "command": "benchmarks/run.sh${ARGS:+ $ARGS}", "built": $BUILD,
 "weirBinary": "$(stat -c %y "$WEIR" | cut -d. -f1)", "gitHead": "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)",
 "gitDirty": "$(git -C "$ROOT" status --porcelain -- Sources connectors Package.swift 2>/dev/null | wc -l | tr -d ' ') changed files under Sources/, connectors/"}
EOF
"$PY" "$BENCH/bench.py" machine --mysql-port "$MYSQL_PORT" --out "$RD/machine.json"

CLK_TCK="$(getconf CLK_TCK)"
MARIADB_PID="$(cat "$RUN/mariadb.pid")"
busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }   # user nice system irq softirq steal
pid_ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
snapshot() { echo "$(busy_ticks) $(pid_ticks "$TANSU_PID") $(pid_ticks "$MARIADB_PID") $(date +%s.%N)"; }
# Machine-wide CPU during a measured run, to tell a quiet machine from a busy one:
# {"wallSeconds", "busyCpuSeconds" (all CPUs, all processes), "tansuCpuSeconds", "mariadbCpuSeconds"}.
load_json() { # before after file
  read -r b0 t0 m0 w0 <<<"$1"; read -r b1 t1 m1 w1 <<<"$2"
  awk -v b="$((b1 - b0))" -v t="$((t1 - t0))" -v m="$((m1 - m0))" -v w0="$w0" -v w1="$w1" -v hz="$CLK_TCK" \
    'BEGIN { printf "{\"wallSeconds\": %.3f, \"busyCpuSeconds\": %.2f, \"tansuCpuSeconds\": %.2f, \"mariadbCpuSeconds\": %.2f}\n", w1 - w0, b / hz, t / hz, m / hz }' > "$3"
}

# Other processes on the machine (a compiler, tests) distort every figure: wait
# until the machine has been idle for 2 s (at most 10 minutes), pair by pair.
wait_quiet() {
  local waited=0 b0 b1
  while [ "$waited" -lt 600 ]; do
    b0="$(busy_ticks)"; sleep 2; b1="$(busy_ticks)"
    # < 10 % of one core busy (Tansu and MariaDB idle at about 1 %)
    if [ $(( (b1 - b0) * 100 )) -lt $(( 2 * CLK_TCK * 10 )) ]; then
      [ "$waited" -gt 0 ] && log "machine idle after waiting ${waited} s"
      return 0
    fi
    [ "$waited" = 0 ] && log "waiting for the machine to be idle (other processes are using the CPU)"
    waited=$((waited + 2))
  done
  log "the machine did not become idle within 10 minutes: measuring anyway"
}

# render SRC DEST PARALLELISM [sed expressions…]: a committed spec with the
# parallelism and the ports substituted.
render() {
  local src="$1" dest="$2" par="$3"; shift 3
  sed -e "s/^parallelism: .*/parallelism: $par/" \
      -e "s/127\.0\.0\.1:19092/127.0.0.1:$KAFKA_PORT/" \
      -e "s/127\.0\.0\.1:13306/127.0.0.1:$MYSQL_PORT/" "$@" "$src" > "$dest"
}
fresh_table() { "${SQL[@]}" "$DB" -e "DROP TABLE IF EXISTS $1; CREATE TABLE $1 ($2) ENGINE=InnoDB"; }

# weir_run TAG SPEC: one measured `weir run SPEC --until-idle 1` under /usr/bin/time -v,
# with its own state directory, events file and (unless --no-threads) per-thread CPU
# samples. Fails (and shows the log) when weir does; prints its summary.
weir_run() {
  local tag="$1" spec="$2" rc before
  set +e
  before="$(snapshot)"
  /usr/bin/time -v -o "$RD/$tag-time.txt" \
    "$WEIR" run "$spec" --until-idle 1 --plain --stats "$RD/$tag-stats.json" \
      --events "$RD/$tag-events.jsonl" --state-dir "$RD/state/$tag" 2> "$RD/$tag.log" &
  TPID=$!
  if [ "$THREADS" = 1 ]; then
    "$PY" "$BENCH/bench.py" sample --parent "$TPID" --out "$RD/$tag-threads.json" \
      --also "tansu=$RUN/tansu.pid" --also "mariadb=$RUN/mariadb.pid" &
    SAMPLER=$!
  fi
  wait "$TPID"; rc=$?
  load_json "$before" "$(snapshot)" "$RD/$tag-load.json"
  [ -n "$SAMPLER" ] && { wait "$SAMPLER"; SAMPLER=""; }
  set -e
  if [ "$rc" -ne 0 ] || [ ! -f "$RD/$tag-stats.json" ]; then
    sed 's/^/    /' "$RD/$tag.log" | tail -n 20
    echo "weir run $tag failed (exit $rc): see $RD/$tag.log" >&2
    return 1
  fi
  grep 'finished:' "$RD/$tag.log" | sed 's/^/    /'
  "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print("    %.0f events/s (%d records in %.3f s of processing), %d snapshots" % (d["recordsIn"] / d["processingSeconds"], d["recordsIn"], d["processingSeconds"], d.get("checkpoints", 0)))' "$RD/$tag-stats.json"
}

FAILED=0
# 4a. W1, W2: ceiling + workload pairs.
for w in $WORKLOADS; do
  t="${TABLE[$w]}"
  render "$BENCH/$w.yaml" "$RD/$w.yaml" "$PAR"
  clean=0
  r=0
  while [ "$clean" -lt "$REPEAT" ] && [ "$r" -lt $((REPEAT + (QUIET ? 3 : 0))) ]; do
    r=$((r + 1))
    tag="$w-$r"
    [ "$QUIET" = 1 ] && wait_quiet
    # A fresh table for every run: what the last run wrote is what gets verified.
    fresh_table "$t" "${DDL[$w]}"

    before="$(snapshot)"
    /usr/bin/time -f '{"userSeconds": %U, "systemSeconds": %S, "maxRssKB": %M}' -o "$RD/ceiling-$tag-time.json" \
      "$BARE" --bootstrap "$BOOT" --topic "$TOPIC" --consumers "$CEIL_CONSUMERS" > "$RD/ceiling-$tag.json" \
      || { echo "the bare consumer failed" >&2; exit 1; }
    load_json "$before" "$(snapshot)" "$RD/ceiling-$tag-load.json"
    log "${w^^} run $r: ceiling $(json "$RD/ceiling-$tag.json" eventsPerSecond) events/s"

    weir_run "$tag" "$RD/$w.yaml" || { FAILED=1; break; }
    if [ "$QUIET" = 0 ] || "$PY" "$BENCH/bench.py" clean --dir "$RD" --tag "$tag"; then
      clean=$((clean + 1))
    fi
  done
done

# 4a'. W1 and W2 through `weir bench`: each generates its own data (seed 42, 1,000 keys,
# $PARTITIONS partitions), reads it bare (the ceiling, in the same process), runs the job
# bounded to it into a fresh table and checks the table against its reference.
if has bench; then
  for w in w1 w2; do
    t="${TABLE[$w]}"
    render "$BENCH/$w.yaml" "$RD/$w.yaml" "$PAR"
    for r in $(seq 1 "$REPEAT"); do
      [ "$QUIET" = 1 ] && wait_quiet
      fresh_table "$t" "${DDL[$w]}"
      if "$WEIR" bench "$RD/$w.yaml" --events "$EVENTS" --partitions "$PARTITIONS" --keys 1000 --seed "$SEED" --json \
           > "$RD/wbench-$w-$r.json" 2> "$RD/wbench-$w-$r.log"; then
        "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); p=d["phases"]; print("    weir bench %s run %s: %.2f M events/s, ceiling %.2f M, ratio %.1f%% (start-up %.0f ms, reading %.0f ms at %.1f%% of the ceiling, finishing %.0f ms), check %s" % (sys.argv[2], sys.argv[3], d["eventsPerSecond"] / 1e6, d["ceiling"]["eventsPerSecond"] / 1e6, d["ratio"] * 100, p["startMillis"], p["readMillis"], d["readingEventsPerSecond"] / d["ceiling"]["eventsPerSecond"] * 100, p["finishMillis"], "/".join(c["status"] for c in d["checks"])))' "$RD/wbench-$w-$r.json" "${w^^}" "$r"
      else
        tail -n 20 "$RD/wbench-$w-$r.log" >&2
        echo "weir bench $w run $r failed: see $RD/wbench-$w-$r.json and .log" >&2
        FAILED=1
      fi
    done
  done
fi

# 4b. Checkpoint overhead: W1 without / with `checkpoint: { interval }`, as
# alternating pairs; each variant writes its own table (verified below).
if [ -n "$INTERVALS" ]; then
  render "$BENCH/w1.yaml" "$RD/ckpt-off.yaml" "$PAR" -e "s/^name: .*/name: bench-w1-nockpt/" \
    -e "s/table: w1_user_spend/table: w1_nockpt/"
fi
for iv in $INTERVALS; do
  render "$BENCH/w1.yaml" "$RD/ckpt-$iv.yaml" "$PAR" -e "s/^name: .*/name: bench-w1-ckpt/" \
    -e "s/table: w1_user_spend/table: w1_ckpt_$iv/" \
    -e "s/^maxParallelism: \(.*\)/maxParallelism: \1\ncheckpoint: { interval: $iv }/"
  clean=0
  r=0
  while [ "$clean" -lt "$REPEAT" ] && [ "$r" -lt $((REPEAT + (QUIET ? 3 : 0))) ]; do
    r=$((r + 1))
    [ "$QUIET" = 1 ] && wait_quiet
    log "W1 without / with checkpoints every $iv: pair $r"
    fresh_table w1_nockpt "${DDL[w1]}"
    weir_run "ckpt-$iv-off-$r" "$RD/ckpt-off.yaml" || { FAILED=1; break; }
    fresh_table "w1_ckpt_$iv" "${DDL[w1]}"
    weir_run "ckpt-$iv-on-$r" "$RD/ckpt-$iv.yaml" || { FAILED=1; break; }
    if [ "$QUIET" = 0 ] || "$PY" "$BENCH/bench.py" clean --dir "$RD" --tag "ckpt-$iv-off-$r" --tag "ckpt-$iv-on-$r"; then
      clean=$((clean + 1))
    fi
  done
done

# 5. Correctness of W1, W2 and the checkpoint runs ---------------------------
if [ -n "$WORKLOADS$INTERVALS" ]; then
  log "verifying MySQL against benchmarks/reference.py (reads the topic with confluent-kafka)"
  VARGS=()
  for w in $WORKLOADS; do VARGS+=(--check "$w=$w:${TABLE[$w]}"); done
  [ -n "$INTERVALS" ] && VARGS+=(--check "ckpt-off=w1:w1_nockpt")
  for iv in $INTERVALS; do VARGS+=(--check "ckpt-$iv=w1:w1_ckpt_$iv"); done
  "$PY" "$BENCH/bench.py" verify --bootstrap "$BOOT" --topic "$TOPIC" --mysql-port "$MYSQL_PORT" \
    --database "$DB" "${VARGS[@]}" --out "$RD/verify.json" || FAILED=1
fi

# 4c. Snapshots of ~1 M keys, stop, restores (benchmarks/state.yaml), driven by
# bench.py, which reloads topic state-events and checks its own table.
if has state; then
  log "state: $STATE_EVENTS events over $STATE_USERS user_ids, parallelism $STATE_PAR"
  render "$BENCH/state.yaml" "$RD/state.yaml" "$STATE_PAR"
  SARGS=()
  [ "$QUIET" = 1 ] || SARGS+=(--no-quiet)
  [ "$KEEP_STATE" = 1 ] && SARGS+=(--keep-state)
  "$PY" "$BENCH/bench.py" state --weir "$WEIR" --spec "$RD/state.yaml" --dir "$RD" --bootstrap "$BOOT" \
    --topic state-events --mysql-port "$MYSQL_PORT" --database "$DB" --table state_user_totals --run-dir "$RUN" \
    --events "$STATE_EVENTS" --users "$STATE_USERS" --extra "$STATE_EXTRA" --repeat "$REPEAT" \
    --parallelism "$STATE_PAR" --sink "$STATE_SINK" --under-load "$STATE_UNDER_LOAD" "${SARGS[@]}" || FAILED=1
fi
# The W1/W2/ckpt runs' snapshot directories (the state job's own are removed by bench.py).
[ "$KEEP_STATE" = 1 ] || rm -rf "${RD:?}/state"

# 6. Report ------------------------------------------------------------------
echo
"$PY" "$BENCH/bench.py" report --dir "$RD" --out "$OUT/results-$TS.md"
log "wrote benchmarks/out/results-$TS.md (raw files in benchmarks/out/$TS/)"
if [ "$UPDATE" = 1 ]; then
  "$PY" "$BENCH/bench.py" update-results "$OUT/results-$TS.md"
fi
[ "$FAILED" = 0 ] || { log "FAILED: a run failed or a result is wrong"; exit 1; }
