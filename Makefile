# Shortcuts for the scripts in scripts/ (which are what the README and CI run).
SHELL := /bin/bash
.PHONY: help demo cluster-demo scale test nemesis bench bench-python compare build fmt clippy clean-demo fuzz dist

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

demo: ## Start a local 3-node cluster, run the walkthrough, stop the cluster
	./scripts/demo.sh

cluster-demo: ## Grow a local cluster from 3 nodes to 4 and back with `ringkv cluster ...`
	./scripts/cluster-demo.sh

scale: ## Print the scale figures: a 10,000-node ring, a 1,000-node gossip simulation
	. scripts/env.sh && build_all && "$$CARGO_TARGET_DIR/debug/examples/scale"

test: ## Everything CI runs: fmt, clippy -D warnings, all Rust and Python tests
	./scripts/test.sh

SECONDS ?= 600
SEED ?=
nemesis: ## Randomized faults on a real 5-node cluster for SECONDS (default 600); SEED=S replays a schedule
	. scripts/env.sh && build_all && RINGKV_NEMESIS_SECONDS=$(SECONDS) $(if $(SEED),RINGKV_NEMESIS_SEED=$(SEED)) \
	  cargo test --workspace --test nemesis -- --nocapture

FUZZ_SECONDS ?= 60
fuzz: ## Fuzz every target for FUZZ_SECONDS each (default 60), minimise the corpus; crashes go to crates/ringkv-fuzz/artifacts/
	./scripts/fuzz.sh $(FUZZ_SECONDS)

compare: ## The benchmark comparison (floor, ringkv, proxy mode, redis, etcd) -> docs/benchmarks.md
	./benches/compare.sh

bench: ## Criterion micro-benchmarks of the core (same cargo profile as the tests)
	./scripts/bench.sh

dist: ## Release artefacts in out/dist: binaries tarball, abi3 wheel (tested without cargo), SHA256SUMS
	./scripts/dist.sh

build: ## Build every crate, test and example
	. scripts/env.sh && cargo build --workspace --all-targets

fmt: ## Format the code
	cargo fmt --all

clippy: ## Lint with warnings as errors
	. scripts/env.sh && cargo clippy --workspace --all-targets -- -D warnings

clean-demo: ## Remove the demo clusters' data
	rm -rf .demo .cluster-demo

bench-python: ## Python clients vs the Rust SDK, side by side, against a local cluster
	. scripts/env.sh && build_all && ./scripts/python-env.sh && .venv/bin/python python/benches/bench.py
