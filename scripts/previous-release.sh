#!/usr/bin/env bash
# Build the previous release's `sessionraft` binary (the newest line of RELEASES) from git history,
# for tests/it/solo/upgrade.rs and for operators who want to rehearse an upgrade.
#
#   scripts/previous-release.sh            build it (once: a built binary is reused) and print its path
#   scripts/previous-release.sh --path     print where it is (or would be), build nothing
#
# It lands in $CARGO_TARGET_DIR/previous-release/<version>-<commit>/sessionraft (target/ by default).
# The release is built in a git worktree with the *same* target directory and the release profile, so
# every dependency the two trees share (RocksDB above all) is compiled once. Cargo copies a built binary
# to target/release/sessionraft, so the old build goes first and this tree's build must come after it:
# scripts/test.sh does that; after running this by hand, run `cargo build --release --workspace` again.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

line=$(grep -v '^[[:space:]]*\(#\|$\)' RELEASES | tail -n 1)
version=$(awk '{ print $1 }' <<<"$line")
commit=$(awk '{ print $2 }' <<<"$line")
if [[ -z "$version" || ! "$commit" =~ ^[0-9a-f]{40}$ ]]; then
    echo "previous-release: RELEASES must end with a line '<version> <40-hex commit>', found: '$line'" >&2
    exit 2
fi

target_dir="${CARGO_TARGET_DIR:-$repo/target}"
case "$target_dir" in /*) ;; *) target_dir="$repo/$target_dir" ;; esac
out_dir="$target_dir/previous-release/$version-${commit:0:12}"
bin="$out_dir/sessionraft"
if [[ "${1:-}" == "--path" ]]; then
    echo "$bin"
    exit 0
fi
if [[ -x "$bin" ]] && "$bin" --version >/dev/null 2>&1; then
    echo "previous-release: $version ($commit) already built: $bin" >&2
    echo "$bin"
    exit 0
fi

if ! git cat-file -e "$commit^{commit}" 2>/dev/null; then
    # A shallow clone lacks history: fetch just that commit.
    echo "previous-release: fetching $commit" >&2
    git fetch --quiet --depth 1 origin "$commit"
fi

worktree="$target_dir/previous-release/src-${commit:0:12}"
cleanup() { git -C "$repo" worktree remove --force "$worktree" >/dev/null 2>&1 || rm -rf "$worktree"; git -C "$repo" worktree prune; }
trap cleanup EXIT
rm -rf "$worktree"
git worktree prune
git worktree add --quiet --detach "$worktree" "$commit"

echo "previous-release: building sessionraft $version ($commit) in $worktree" >&2
start=$(date +%s)
(cd "$worktree" && CARGO_TARGET_DIR="$target_dir" cargo build --release --locked -p sessionraft-node --bin sessionraft)
mkdir -p "$out_dir"
cp "$target_dir/release/sessionraft" "$bin.tmp"
mv "$bin.tmp" "$bin"
echo "previous-release: built in $(( $(date +%s) - start )) s: $("$bin" --version)" >&2
echo "$bin"
