#!/usr/bin/env bash
# Every check CI runs: formatting, clippy with warnings as errors, every Rust test (unit,
# property, end-to-end with real ringkvd processes) and the Python tests. Ends with the
# totals on one line.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
"$ROOT/scripts/bootstrap.sh"

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets -q -- -D warnings
echo "== cargo test"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# Build first so that the end-to-end tests find ringkvd next to them.
cargo build --workspace --all-targets -q
status=0
cargo test --workspace --no-fail-fast 2>&1 | tee "$log" || status=$?

passed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')

if [ -f python/pyproject.toml ] && [ -d python/tests ]; then
  echo "== python tests"
  "$ROOT/scripts/python-env.sh"
  py_log="$(mktemp)"
  (cd python && "$ROOT/.venv/bin/python" -m pytest -q tests) 2>&1 | tee "$py_log" || status=$?
  passed=$((passed + $(grep -Eo '[0-9]+ passed' "$py_log" | tail -1 | awk '{print $1+0}')))
  failed=$((failed + $(grep -Eo '[0-9]+ failed' "$py_log" | tail -1 | awk '{print $1+0}')))
  rm -f "$py_log"
fi

echo
echo "all tests: $passed passed, $failed failed"
exit "$status"
