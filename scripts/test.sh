#!/usr/bin/env bash
# Run every test of sessionraft: formatting, clippy, then all tests (release build: RocksDB and
# the cluster tests need the speed). One build serves every step.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh --all

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --release --workspace --all-targets -- -D warnings
echo "== cargo build (release: binary, examples, tests — one build for every step)"
cargo build --release --workspace --all-targets
echo "== cargo test"
cargo test --release --workspace --all-targets
