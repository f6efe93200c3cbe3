#!/usr/bin/env bash
# `make dist`: the release artefacts, in out/dist/:
#   ringkv-<version>-<target>.tar.gz   ringkvd, ringkv and ringkv-bench (release builds), the
#                                      example config, the systemd unit, alert rules,
#                                      dashboard, LICENSE and README
#   ringkv-<version>-cp39-abi3-<platform>.whl   the Python package (one wheel for every
#                                      CPython from 3.9), built with `maturin build --release`
#   SHA256SUMS
# then installs the wheel in a fresh virtualenv whose PATH has no cargo, and runs the Python
# tests with it against the tarball's ringkvd: what a user without Rust gets, tested.
#
# Not part of the test command: the release profile compiles RocksDB once more (15+ minutes
# on two cores, the first time). The wheel is linked with zig (`maturin --zig`, ziglang from
# PyPI) against glibc 2.17, so it installs on any Linux of the last decade (manylinux2014);
# RINGKV_DIST_ZIG=0 links it with this machine's own toolchain instead (its glibc: here
# manylinux_2_34).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
"$ROOT/scripts/bootstrap.sh"
"$ROOT/scripts/python-env.sh"
started=$SECONDS

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
target=$(rustc -vV | sed -n 's/^host: //p')
out="$ROOT/out/dist"
rm -rf "$out"
mkdir -p "$out"

echo "== release binaries (cargo build --release)"
cargo build --release --locked -p ringkv-server -p ringkv-cli -p ringkv-bench
release="$CARGO_TARGET_DIR/release"

echo "== the SDK crates package and build as crates.io would (cargo publish --dry-run)"
cargo publish --dry-run --locked -p ringkv-core -p ringkv

echo "== tarball"
name="ringkv-$version-$target"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/$name/bin" "$stage/$name/share"
install -m 0755 "$release/ringkvd" "$release/ringkv" "$release/ringkv-bench" "$stage/$name/bin/"
strip "$stage/$name/bin/"* 2>/dev/null || true
cp LICENSE README.md ringkvd.example.toml "$stage/$name/"
cp -r dist/systemd dist/prometheus dist/grafana "$stage/$name/share/"
tar -C "$stage" -czf "$out/$name.tar.gz" "$name"

echo "== wheel (maturin build --profile release)"
# --profile, not --release: python/pyproject.toml names the dev profile for `pip install`,
# and maturin lets that win over --release.
maturin_args=(build --profile release --locked -m python/Cargo.toml --out "$out")
if [ "${RINGKV_DIST_ZIG:-1}" = 1 ]; then
  .venv/bin/python -c "import ziglang" 2>/dev/null || .venv/bin/pip install -q ziglang
  maturin_args+=(--zig)
fi
PATH="$ROOT/.venv/bin:$PATH" .venv/bin/maturin "${maturin_args[@]}"
wheel=$(ls "$out"/ringkv-*.whl)

(cd "$out" && sha256sum -- *.tar.gz *.whl >SHA256SUMS)

echo "== the wheel, installed where there is no cargo, passes the Python tests"
check="$(mktemp -d)"
trap 'rm -rf "$stage" "$check"' EXIT
python3 -m venv "$check/venv"
"$check/venv/bin/pip" install -q "$wheel" "pytest>=7" "pytest-asyncio>=0.23" "hypothesis>=6" "flask>=3"
tar -C "$check" -xzf "$out/$name.tar.gz"
no_cargo_path="$check/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
if PATH="$no_cargo_path" command -v cargo >/dev/null 2>&1; then
  echo "dist: cargo is still on the test PATH ($no_cargo_path)" >&2
  exit 1
fi
# From a directory outside the source tree, so that only the installed wheel is importable.
cp -r python/tests "$check/tests"
cp python/pyproject.toml "$check/pyproject.toml"
(cd "$check" && env -i HOME="$HOME" PATH="$no_cargo_path" \
  RINGKVD_BIN="$check/$name/bin/ringkvd" RINGKV_CLI_BIN="$check/$name/bin/ringkv" \
  "$check/venv/bin/python" -m pytest -q -c pyproject.toml tests)

echo
echo "== out/dist ($((SECONDS - started)) s)"
(cd "$out" && ls -l --block-size=K -- *.tar.gz *.whl && cat SHA256SUMS)
echo "wheel platform tag: $(basename "$wheel" .whl | awk -F- '{print $NF}')"
