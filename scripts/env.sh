# Sourced by the other scripts: one fixed cargo target directory outside the clone, so that
# RocksDB's C++ build (15+ minutes) happens once per machine and is shared by every clone,
# the tests, the demo and the benchmarks.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ringkv/target}"
mkdir -p "$CARGO_TARGET_DIR"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT

# Cargo names a workspace crate's artifacts the same in every checkout, and judges them fresh
# by the source files of the checkout that built them last: after another clone (CI's, a
# second work tree) built into this directory, cargo would link that clone's build of our
# crates here. So when the checkout changes, forget our crates' fingerprints (not the
# dependencies': RocksDB stays built); they recompile in a minute or two.
checkout_marker="$CARGO_TARGET_DIR/.ringkv-checkout"
if [ "$(cat "$checkout_marker" 2>/dev/null)" != "$ROOT" ]; then
  rm -rf "$CARGO_TARGET_DIR"/*/.fingerprint/ringkv-*
  printf '%s\n' "$ROOT" >"$checkout_marker"
fi

# build_all: every binary, example, test and benchmark of the workspace, with the same
# features as the test command. Building a single package (`cargo build -p ...`) resolves the
# dependencies' features differently and would compile RocksDB a second time.
build_all() {
  cargo build -q --workspace --all-targets
}

# stop_pids PID...: SIGTERM each process, wait up to 10 s for it to exit, then SIGKILL it.
stop_pids() {
  local pid
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
