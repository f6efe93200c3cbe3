#!/usr/bin/env bash
# Runs every fuzz target for a fixed time (seconds, default 60 each) with cargo-fuzz, on the
# corpus kept in crates/ringkv-fuzz/corpus/, then minimises each corpus. A crash leaves its
# reproducer in crates/ringkv-fuzz/artifacts/<target>/: commit it with the fix, and the test
# suite replays it from then on (crates/ringkv-server/tests/fuzz_corpus.rs).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Coverage instrumentation only (`-s none`): no sanitizer, so stable Rust is enough.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
"$ROOT/scripts/bootstrap.sh"
seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(frame_decoder request_handlers sibling_decoder stamp_merge)

if ! command -v cargo-fuzz >/dev/null; then
  cargo install --locked cargo-fuzz
fi
fuzz_dir="crates/ringkv-fuzz"
fuzz_target_dir="$CARGO_TARGET_DIR/fuzz"
# --workspace, as every build here: another feature set would rebuild RocksDB.
cargo test -q --workspace --test fuzz_corpus -- --ignored write_seeds >/dev/null

for target in "${targets[@]}"; do
  corpus="$fuzz_dir/corpus/$target"
  mkdir -p "$corpus" "$fuzz_dir/artifacts/$target"
  echo "== fuzzing $target for ${seconds}s"
  log="$(mktemp)"
  status=0
  cargo fuzz run --fuzz-dir "$fuzz_dir" --target-dir "$fuzz_target_dir" -s none \
    "$target" "$corpus" -- -max_total_time="$seconds" -print_final_stats=1 \
    >"$log" 2>&1 || status=$?
  execs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo '?')
  echo "$target: $execs executions, status $status"
  if [ "$status" -ne 0 ]; then
    tail -40 "$log"
    rm -f "$log"
    exit "$status"
  fi
  rm -f "$log"
  # Keep the corpus small: only the inputs that add coverage.
  cargo fuzz cmin --fuzz-dir "$fuzz_dir" --target-dir "$fuzz_target_dir" -s none \
    "$target" "$corpus" >/dev/null 2>&1
  echo "$target: $(ls "$corpus" | wc -l) corpus inputs after minimisation"
done
