#!/usr/bin/env bash
# The main job: build, start a local three-node cluster on loopback, run the walkthrough
# through the Rust SDK, and stop the cluster cleanly. Data goes under ./.demo (wiped first).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
"$ROOT/scripts/bootstrap.sh"

BASE_PORT="${RINGKV_DEMO_PORT:-7401}"
DEMO_DIR="$ROOT/.demo"
echo "building (the first build compiles RocksDB: 15+ minutes on two cores)..."
cargo build -q -p ringkv-server --bin ringkvd
cargo build -q -p ringkv-cli --bin ringkv
cargo build -q -p ringkv-examples --example walkthrough

rm -rf "$DEMO_DIR"
mkdir -p "$DEMO_DIR"
addrs=()
for i in 0 1 2; do addrs+=("127.0.0.1:$((BASE_PORT + i))"); done

pids=()
stop_cluster() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  pids=()
}
trap stop_cluster EXIT INT TERM

for i in 0 1 2; do
  seeds=$(IFS=,; echo "${addrs[*]}")
  RUST_LOG="${RUST_LOG:-info}" "$CARGO_TARGET_DIR/debug/ringkvd" \
    --listen "${addrs[$i]}" --data-dir "$DEMO_DIR/node$i" --seeds "$seeds" \
    --cluster-name demo >"$DEMO_DIR/node$i.log" 2>&1 &
  pids+=($!)
  echo "started ringkvd node$i on ${addrs[$i]} (pid $!, log .demo/node$i.log)"
done

# Gossip makes the nodes known to each other; `cluster init` makes them one cluster (retried
# while the nodes are still opening their stores).
seeds=$(IFS=,; echo "${addrs[*]}")
for attempt in $(seq 1 100); do
  if out=$("$CARGO_TARGET_DIR/debug/ringkv" --seeds "$seeds" cluster init 2>&1); then
    echo "$ ringkv cluster init"; echo "$out"; break
  fi
  [ "$attempt" -lt 100 ] || { echo "$out" >&2; exit 1; }
  sleep 0.2
done

"$CARGO_TARGET_DIR/debug/examples/walkthrough" "${addrs[@]}"

echo
echo "stopping the cluster (SIGTERM: drain, flush, exit)..."
stop_cluster
trap - EXIT INT TERM
echo "cluster stopped; data and logs are in .demo/"
