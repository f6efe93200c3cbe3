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
build_all

rm -rf "$DEMO_DIR"
mkdir -p "$DEMO_DIR"
addrs=()
for i in 0 1 2; do addrs+=("127.0.0.1:$((BASE_PORT + i))"); done

seeds_of_cluster=$(IFS=,; echo "${addrs[*]}")
source "$ROOT/scripts/local-cluster.sh"

for i in 0 1 2; do
  start_node "$i" "$DEMO_DIR" demo
  echo "started ringkvd node$i on ${addrs[$i]} (pid ${pids[-1]}, log .demo/node$i.log)"
done

# Gossip makes the nodes known to each other; `cluster init` makes them one cluster.
echo "$ ringkv cluster init"
found_cluster

"$CARGO_TARGET_DIR/debug/examples/walkthrough" "${addrs[@]}"

echo
echo "stopping the cluster (SIGTERM: drain, flush, exit)..."
stop_cluster
trap - EXIT INT TERM
echo "cluster stopped; data and logs are in .demo/"
