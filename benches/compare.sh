#!/usr/bin/env bash
# The comparison, end to end: the loopback floor, ringkv (client-driven and proxy mode),
# Redis and etcd, the same YCSB workloads in one run on this machine, then
# docs/benchmarks.md regenerated from the figures. Everything listens on 127.0.0.1 and every
# process started here is stopped on exit.
#
# Knobs (environment): DURATION (seconds per timed run, default 10), RECORDS (records per
# store, default 50000), MEMORY_RECORDS (records loaded for the memory figure, default
# 1000000; 0 skips it), OUT (results directory, default .bench).
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$ROOT"
# --peers: also Debian's redis-server, redis-tools and etcd-server, when missing.
"$ROOT/scripts/bootstrap.sh" --peers

DURATION="${DURATION:-10}"
RECORDS="${RECORDS:-50000}"
MEMORY_RECORDS="${MEMORY_RECORDS:-1000000}"
OUT="${OUT:-$ROOT/.bench}"
SPIN_LIMIT=3600

build_all
BENCH="$CARGO_TARGET_DIR/debug/ringkv-bench"
WORKLOADS="$ROOT/crates/ringkv-bench/workloads"

rm -rf "$OUT"
mkdir -p "$OUT/results"
RES="$OUT/results"

# Processes started here, stopped on exit whatever happens.
bg_pids=()
spinners=()
stop_spinners() {
  for pid in "${spinners[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${spinners[@]}"; do wait "$pid" 2>/dev/null || true; done
  spinners=()
}
stop_all() {
  stop_spinners
  stop_pids "${bg_pids[@]}"
  bg_pids=()
}
trap stop_all EXIT INT TERM

# Single-connection runs keep both CPUs awake with two idle-priority spinners: otherwise each
# wake-up from idle (~45 µs here) lands in the latency being measured.
start_spinners() {
  for _ in 1 2; do
    timeout "$SPIN_LIMIT" nice -n 19 sh -c 'while :; do :; done' &
    spinners+=($!)
  done
}

# bench NAME ARGS...: one ringkv-bench invocation, its report in $RES/NAME.json and its output
# in $OUT/NAME.txt. A failed run is reported and left out of the table; the others go on.
bench() {
  local name="$1"; shift
  echo "== $name"
  if "$BENCH" "$@" --json "$RES/$name.json" >"$OUT/$name.txt" 2>&1; then
    grep -E 'Throughput|50thPercentile|99thPercentile|PerOperation' "$OUT/$name.txt" || true
  else
    echo "compare: $name failed (see $OUT/$name.txt)" >&2
    tail -3 "$OUT/$name.txt" >&2
    rm -f "$RES/$name.json"
  fi
}

# run_workload NAME THREADS WORKLOAD ARGS...: a timed YCSB run.
run_workload() {
  local name="$1" threads="$2" workload="$3"; shift 3
  local single=0
  [ "$threads" -eq 1 ] && single=1 && start_spinners
  bench "$name" run -P "$WORKLOADS/$workload" -p "recordcount=$RECORDS" \
    -p operationcount=0 --threads "$threads" --duration "$DURATION" --status-interval 0 "$@"
  [ "$single" -eq 1 ] && stop_spinners
  return 0
}

echo "== machine"
{
  echo "date=$(date -u +%Y-%m-%dT%H:%MZ)"
  echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "cores=$(nproc)"
  echo "memory=$(free -g | awk '/Mem:/ {print $2}') GiB"
  echo "kernel=$(uname -r)"
  echo "commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "redis=$(redis-server --version | awk '{print $3}' | sed 's/v=//')"
  echo "etcd=$(etcd --version 2>/dev/null | awk '/etcd Version/ {print $3}')"
  echo "duration=$DURATION"
  echo "records=$RECORDS"
} | tee "$OUT/machine.txt"

# --- The floor -----------------------------------------------------------------------------
for mode in ping-pong fan-out fan-out-r proxy fsync; do
  start_spinners
  bench "floor-$mode-1" floor --mode "$mode" --threads 1 --duration "$DURATION" --fsync-dir "$OUT"
  stop_spinners
done
for mode in fan-out fan-out-r fsync; do
  bench "floor-$mode-16" floor --mode "$mode" --threads 16 --duration "$DURATION" --fsync-dir "$OUT"
done

# --- ringkv ----------------------------------------------------------------------------------
# start_ringkv DURABILITY: a fresh 3-node cluster on 127.0.0.1:7611-7613.
ringkv_pids=()
start_ringkv() {
  local durability="$1" dir="$OUT/ringkv-$1"
  rm -rf "$dir"; mkdir -p "$dir"
  local seeds="127.0.0.1:7611,127.0.0.1:7612,127.0.0.1:7613"
  ringkv_pids=()
  for i in 1 2 3; do
    RUST_LOG=warn "$CARGO_TARGET_DIR/debug/ringkvd" --listen "127.0.0.1:761$i" \
      --data-dir "$dir/node$i" --seeds "$seeds" --cluster-name bench \
      --admin-listen "127.0.0.1:962$i" \
      --durability "$durability" >"$dir/node$i.log" 2>&1 &
    bg_pids+=($!); ringkv_pids+=($!)
  done
  for attempt in $(seq 1 100); do
    "$CARGO_TARGET_DIR/debug/ringkv" --seeds "$seeds" cluster init >/dev/null 2>&1 && break
    [ "$attempt" -lt 100 ] || { echo "compare: the ringkv cluster did not form" >&2; exit 1; }
    sleep 0.2
  done
  RINGKV_HOSTS="$seeds"
  RINGKV_PIDS=$(IFS=,; echo "${ringkv_pids[*]}")
}
# group_commit: the three nodes' log syncs and durable writes so far, "syncs writes".
group_commit() {
  local syncs=0 writes=0 i metrics s w
  for i in 1 2 3; do
    metrics=$(curl -fsS "http://127.0.0.1:962$i/metrics" || true)
    s=$(awk '/^ringkv_log_syncs_total / {print $2; exit}' <<<"$metrics")
    w=$(awk '/^ringkv_durable_writes_total / {print $2; exit}' <<<"$metrics")
    syncs=$((syncs + ${s:-0})); writes=$((writes + ${w:-0}))
  done
  echo "$syncs $writes"
}
stop_ringkv() {
  stop_pids "${ringkv_pids[@]}"
  ringkv_pids=()
}

start_ringkv os
RK=(--db ringkv --hosts "$RINGKV_HOSTS" --server-pids "$RINGKV_PIDS")
PX=(--db ringkv-proxy --hosts "$RINGKV_HOSTS" --server-pids "$RINGKV_PIDS")
bench ringkv-load-16 load -P "$WORKLOADS/workloada" -p "recordcount=$RECORDS" --threads 16 \
  --status-interval 0 "${RK[@]}"
for w in a b c d f; do
  run_workload "ringkv-$w-16" 16 "workload$w" "${RK[@]}"
done
run_workload ringkv-c-1 1 workloadc "${RK[@]}"
run_workload ringkv-proxy-c-1 1 workloadc "${PX[@]}"
run_workload ringkv-proxy-c-16 16 workloadc "${PX[@]}"
run_workload ringkv-r1-c-16 16 workloadc "${RK[@]}" --r 1
# Batched reads: get_many of 16 keys, one frame per node per batch; keys/s.
run_workload ringkv-batch16-c-16 16 workloadc "${RK[@]}" -p batchsize=16
run_workload ringkv-update-1 1 workloada "${RK[@]}" -p readproportion=0 -p updateproportion=1
# Durability per call on the same nodes: each update waits for two replicas' log syncs.
run_workload ringkv-dw2-update-16 16 workloada "${RK[@]}" -p readproportion=0 \
  -p updateproportion=1 --dw 2
# Web sessions: Zipfian users, create with a time to live, read with a touch, update, logout.
bench ringkv-sessions-16 sessions --hosts "$RINGKV_HOSTS" --threads 16 --duration "$DURATION" \
  --users 100000
stop_ringkv

# Durable writes: the same cluster with every acknowledged write synced.
start_ringkv fsync
RK=(--db ringkv --hosts "$RINGKV_HOSTS" --server-pids "$RINGKV_PIDS")
bench ringkv-fsync-load-16 load -P "$WORKLOADS/workloada" -p "recordcount=$RECORDS" \
  --threads 16 --status-interval 0 "${RK[@]}"
run_workload ringkv-fsync-update-1 1 workloada "${RK[@]}" -p readproportion=0 -p updateproportion=1
read -r syncs_before writes_before < <(group_commit)
run_workload ringkv-fsync-update-16 16 workloada "${RK[@]}" -p readproportion=0 -p updateproportion=1
read -r syncs_after writes_after < <(group_commit)
echo "syncs=$((syncs_after - syncs_before)) writes=$((writes_after - writes_before))" \
  | tee "$RES/group-commit.txt"
stop_ringkv

# --- Python ----------------------------------------------------------------------------------
# The Python clients (sync and asyncio) beside the Rust SDK, on a cluster of their own.
echo "== python clients vs the Rust SDK"
if "$ROOT/scripts/python-env.sh" >"$OUT/python-env.txt" 2>&1; then
  BENCH_JSON="$RES/python.json" "$ROOT/.venv/bin/python" "$ROOT/python/benches/bench.py" \
    >"$OUT/python.txt" 2>&1 || echo "compare: the Python benchmark failed (see $OUT/python.txt)" >&2
  cat "$OUT/python.txt"
else
  echo "compare: the Python environment could not be made (see $OUT/python-env.txt)" >&2
fi

# --- Redis -----------------------------------------------------------------------------------
redis-server --port 6391 --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  --dir "$OUT" >"$OUT/redis.log" 2>&1 &
bg_pids+=($!)
for _ in $(seq 1 100); do redis-cli -p 6391 ping >/dev/null 2>&1 && break; sleep 0.1; done
RD=(--db redis --hosts 127.0.0.1:6391)
bench redis-load-16 load -P "$WORKLOADS/workloada" -p "recordcount=$RECORDS" --threads 16 \
  --status-interval 0 "${RD[@]}"
run_workload redis-c-16 16 workloadc "${RD[@]}"
run_workload redis-c-1 1 workloadc "${RD[@]}"
echo "== redis-benchmark -t get -d 1000 -c 16"
redis-benchmark -p 6391 -t get -d 1000 -c 16 -n $((DURATION * 40000)) -q \
  | tr '\r' '\n' | grep -E '^GET: [0-9.]+ requests' | tail -1 | tee "$RES/redis-benchmark.txt"
echo "== redis-benchmark -t get -d 1000 -c 16 -P 16"
redis-benchmark -p 6391 -t get -d 1000 -c 16 -P 16 -n $((DURATION * 200000)) -q \
  | tr '\r' '\n' | grep -E '^GET: [0-9.]+ requests' | tail -1 | tee "$RES/redis-benchmark-p16.txt"

# --- etcd ------------------------------------------------------------------------------------
cluster="e1=http://127.0.0.1:23801,e2=http://127.0.0.1:23802,e3=http://127.0.0.1:23803"
for i in 1 2 3; do
  etcd --name "e$i" --data-dir "$OUT/etcd$i" \
    --listen-client-urls "http://127.0.0.1:2379$i" --advertise-client-urls "http://127.0.0.1:2379$i" \
    --listen-peer-urls "http://127.0.0.1:2380$i" --initial-advertise-peer-urls "http://127.0.0.1:2380$i" \
    --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token ringkv-bench \
    >"$OUT/etcd$i.log" 2>&1 &
  bg_pids+=($!)
done
ET=(--db etcd --hosts 127.0.0.1:23791,127.0.0.1:23792,127.0.0.1:23793)
for attempt in $(seq 1 100); do
  "$BENCH" load -P "$WORKLOADS/workloada" -p recordcount=1 --status-interval 0 "${ET[@]}" \
    >/dev/null 2>&1 && break
  [ "$attempt" -lt 100 ] || { echo "compare: etcd did not start" >&2; exit 1; }
  sleep 0.2
done
bench etcd-load-16 load -P "$WORKLOADS/workloada" -p "recordcount=$RECORDS" --threads 16 \
  --status-interval 0 "${ET[@]}"
run_workload etcd-c-16 16 workloadc "${ET[@]}"

stop_all

# --- Memory ----------------------------------------------------------------------------------
if [ "$MEMORY_RECORDS" -gt 0 ]; then
  start_ringkv os
  echo "== memory: $MEMORY_RECORDS records of 1 KiB"
  "$BENCH" load -P "$WORKLOADS/workloada" -p "recordcount=$MEMORY_RECORDS" --threads 16 \
    --status-interval 10 --db ringkv --hosts "$RINGKV_HOSTS" >/dev/null
  rss=$(awk '/VmRSS/ {print $2}' "/proc/${ringkv_pids[0]}/status")
  echo "records=$MEMORY_RECORDS rss_kib=$rss block_cache_mb=64" | tee "$RES/memory.txt"
  stop_ringkv
fi

# --- Micro-benchmarks --------------------------------------------------------------------------
echo "== criterion micro-benchmarks"
# Criterion prints a long name on its own line and the time on the next: keep both.
cargo bench -q -p ringkv-benches --profile dev --bench core -- --quick 2>/dev/null \
  | awk '/time:/ { if ($0 ~ /^[[:space:]]/) print prev; print } { prev = $0 }' \
  >"$RES/criterion.txt" || true

python3 "$ROOT/benches/report.py" "$OUT" "$ROOT/docs/benchmarks.md"
echo "compare: wrote docs/benchmarks.md"
