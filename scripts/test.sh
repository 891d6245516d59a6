#!/usr/bin/env bash
# Run every test of sessionraft: formatting, clippy, then all tests (release build: RocksDB and
# the cluster tests need the speed). One build serves every step.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh --all

# A from-scratch `.ci/run` (release build, every test) took at most 1.5 GB of disk in all:
# target/ and the tests' data dirs under /tmp. Say so up front when the disk is short, rather than leaving a
# linker killed by SIGBUS (its output file mmapped on a full disk) to explain it.
target_dir="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target_dir"
for dir in "$target_dir" "${TMPDIR:-/tmp}"; do
    free_kb=$(df -Pk "$dir" | awk 'NR == 2 { print $4 }')
    echo "== free disk under $dir: $((free_kb / 1024)) MiB"
    if (( free_kb < 4 * 1024 * 1024 )); then
        echo "warning: less than 4 GiB free under $dir: the build or the tests may fail for want of disk" >&2
    fi
done

echo "== python: the operator programs' own tests (scripts/pylib)"
python3 -m unittest discover -s scripts/pylib -t scripts/pylib -p 'test_*.py'
echo "== no circular imports between the files of a crate (ARCHITECTURE.md)"
python3 scripts/pylib/import_cycles.py raft web node
echo "== ARCHITECTURE.md's crate maps name every module, and only modules that exist"
python3 scripts/pylib/crate_map.py
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --release --workspace --all-targets -- -D warnings
echo "== the previous release's binary (RELEASES), for tests/it/solo/upgrade.rs"
# Before this tree's build: cargo copies every built binary to target/release/sessionraft, and the
# tests run that one as this tree's.
SESSIONRAFT_PREVIOUS_BIN=$(scripts/previous-release.sh)
export SESSIONRAFT_PREVIOUS_BIN
echo "== cargo build (release: binary, examples, tests — one build for every step)"
cargo build --release --workspace --all-targets
echo "== cargo test (all but the solo tests, on parallel threads)"
# The integration tests are one binary per crate (tests/it, raft/tests/it); the tests that change
# what the whole machine shares (namespaces, iptables, mounts) or bound a failover window are
# under solo::, run next, one at a time, with nothing else on the machine.
cargo test --release --workspace --all-targets -- --skip solo::
echo "== cargo test: the solo tests (chaos, hosts, partition, upgrade), one thread"
cargo test --release --test it solo:: -- --test-threads=1
echo "== doctests (the embedding example in sessionraft-web's crate docs runs a one-node cluster)"
cargo test --release --workspace --doc
echo "== cargo doc (no warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --release --workspace --no-deps
