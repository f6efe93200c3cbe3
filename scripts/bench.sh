#!/usr/bin/env bash
# Criterion micro-benchmarks, built in the same cargo profile as the tests (dev, with
# dependencies and ringkv-core optimised), so RocksDB is never compiled twice.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
"$ROOT/scripts/bootstrap.sh"
cargo bench -p ringkv-benches --profile dev "$@"
