# Sourced by demo.sh and cluster-demo.sh: start ringkvd nodes on loopback, found a cluster,
# and stop every node this script started (SIGTERM, then SIGKILL after 10 s) on exit.
# Expects CARGO_TARGET_DIR (env.sh) and the arrays `addrs` (every node's address) and
# `seeds_of_cluster` (comma-separated addresses the nodes gossip with).

pids=()

stop_cluster() {
  stop_pids "${pids[@]}"
  pids=()
}
trap stop_cluster EXIT INT TERM

# start_node I DIR CLUSTER_NAME: node I on ${addrs[I]}, data in DIR/nodeI, log DIR/nodeI.log.
start_node() {
  RUST_LOG="${RUST_LOG:-info}" "$CARGO_TARGET_DIR/debug/ringkvd" \
    --listen "${addrs[$1]}" --data-dir "$2/node$1" --seeds "$seeds_of_cluster" \
    --cluster-name "$3" >"$2/node$1.log" 2>&1 &
  pids+=($!)
}

# found_cluster: `ringkv cluster init` of the seeds, retried while the nodes open their stores.
# Prints what it printed.
found_cluster() {
  local out
  for attempt in $(seq 1 100); do
    if out=$("$CARGO_TARGET_DIR/debug/ringkv" --seeds "$seeds_of_cluster" cluster init 2>&1); then
      echo "$out"
      return 0
    fi
    [ "$attempt" -lt 100 ] || { echo "$out" >&2; return 1; }
    sleep 0.2
  done
}
