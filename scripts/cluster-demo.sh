#!/usr/bin/env bash
# Growing and shrinking a local cluster with `ringkv cluster ...`, as the README shows it:
# three nodes with some data, a fourth joins (plan, commit, watch the handoff), then one of
# the first three leaves; `ringkv status` before and after. Data and logs go under
# ./.cluster-demo (wiped first); every node is stopped at the end.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
"$ROOT/scripts/bootstrap.sh"

BASE_PORT="${RINGKV_DEMO_PORT:-7501}"
DIR="$ROOT/.cluster-demo"
build_all

rm -rf "$DIR"
mkdir -p "$DIR"
addrs=()
for i in 0 1 2 3; do addrs+=("127.0.0.1:$((BASE_PORT + i))"); done
seeds_of_cluster=$(IFS=,; echo "${addrs[*]:0:3}")
source "$ROOT/scripts/local-cluster.sh"

# Shown as a transcript: the command, then what it printed.
ringkv() {
  echo "\$ ringkv $*"
  "$CARGO_TARGET_DIR/debug/ringkv" --seeds "$seeds_of_cluster" "$@"
  echo
}

for i in 0 1 2; do start_node "$i" "$DIR" cluster-demo; done
found_cluster >/dev/null
"$CARGO_TARGET_DIR/debug/examples/sdk_load" "$seeds_of_cluster" put 20000 32 1024 >/dev/null
sleep 1
ringkv status

start_node 3 "$DIR" cluster-demo
sleep 1
ringkv cluster join "${addrs[3]}"
ringkv cluster plan
ringkv cluster commit
ringkv handoff --watch
ringkv status

ringkv cluster leave "${addrs[0]}"
ringkv cluster plan
ringkv cluster commit
ringkv handoff --watch
ringkv status

stop_cluster
trap - EXIT INT TERM
echo "cluster stopped; data and logs are in .cluster-demo/"
