# Sourced by the other scripts: one fixed cargo target directory outside the clone, so that
# RocksDB's C++ build (15+ minutes) happens once per machine and is shared by every clone,
# the tests, the demo and the benchmarks.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ringkv/target}"
mkdir -p "$CARGO_TARGET_DIR"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT
