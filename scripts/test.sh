#!/usr/bin/env bash
# Every check CI runs: formatting, clippy with warnings as errors, every Rust test (unit,
# property, end-to-end with real ringkvd processes) and the Python tests. Ends with the
# totals on one line.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
"$ROOT/scripts/bootstrap.sh"
# The Python tools first: tests/dist.rs validates the Kubernetes manifests with one of them.
"$ROOT/scripts/python-env.sh"

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets -q -- -D warnings
# The SDK without its default `tls` feature (plain TCP, no C code) builds and lints clean.
cargo clippy -p ringkv --no-default-features --all-targets -q -- -D warnings
echo "== cargo test"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# Build first so that the end-to-end tests find ringkvd next to them.
cargo build --workspace --all-targets -q
status=0
cargo test --workspace --no-fail-fast 2>&1 | tee "$log" || status=$?

passed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
# Only cargo's own result lines: a test may print an error that says "1 failed call".
failed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed; [0-9]+ failed' "$log" | awk '{s+=$6} END {print s+0}')

if [ -f python/pyproject.toml ] && [ -d python/tests ]; then
  echo "== python: mypy --strict, stubtest, pytest (pip install ./python ran first)"
  py="$ROOT/.venv/bin/python"
  (cd python && "$py" -m mypy --strict ringkv examples/quickstart.py) || status=1
  # From outside the source tree, so that the installed extension is what is checked.
  (cd "$(mktemp -d)" && "$py" -m mypy.stubtest ringkv._native) || status=1
  py_log="$(mktemp)"
  # From the repository root: run inside python/, `python -m` would put the source package
  # (which has no compiled extension) ahead of the installed one.
  "$py" -m pytest -q -c python/pyproject.toml python/tests 2>&1 | tee "$py_log" || status=1
  passed=$((passed + $(grep -Eo '[0-9]+ passed' "$py_log" | awk '{n=$1} END {print n+0}' || true)))
  # pytest's summary line ("N failed, M passed in T s"), not what a test printed.
  failed=$((failed + $(tail -n 1 "$py_log" | grep -Eo '[0-9]+ failed' | awk '{n=$1} END {print n+0}' || true)))
  rm -f "$py_log"
fi

echo
echo "all tests: $passed passed, $failed failed"
exit "$status"
