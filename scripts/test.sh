#!/usr/bin/env bash
# The one test command: installs what the tests need (pinned) and runs every check.
# Used as-is by CI (.ci/run). Needs: the Rust toolchain, python3, node/npm, and the package
# registries (crates.io, PyPI, npm).
#
# Each component adds its own pieces without editing this file:
#   scripts/tools/*.sh   install a pinned tool (idempotent), run in name order before the tests
#   scripts/checks/*.sh  an external check (validators, conformance), run in name order after them
set -euo pipefail
cd "$(dirname "$0")/.."

# One build from a clean checkout gains nothing from incremental data (GBs on disk); set
# CARGO_INCREMENTAL=1 to keep it when running this repeatedly while editing.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step() { printf '\n== %s ==\n' "$*"; }

step "Tools (pinned)"
[ -x scripts/moto.sh ] && scripts/moto.sh
for tool in scripts/tools/*.sh; do
  [ -e "$tool" ] || continue
  echo "-- $tool"
  "$tool"
done

step "Format"
cargo fmt --all -- --check

step "Lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "Tests"
mkdir -p target
cargo test --workspace --locked --no-fail-fast 2>&1 | tee target/test-output.txt
grep -E '^test result:' target/test-output.txt |
  awk '{p+=$4; f+=$6} END {printf "Rust tests: %d passed, %d failed\n", p, f}'

step "ASL conformance (recorded against AWS Step Functions)"
local/asl/run-conformance.sh

for check in scripts/checks/*.sh; do
  [ -e "$check" ] || continue
  step "Check: $(basename "$check" .sh)"
  "$check"
done

step "Domain crate has no AWS or Lambda dependency"
if cargo tree -p aftersales-domain -e normal --prefix none | grep -E '^(aws-|lambda)'; then
  echo "aftersales-domain must not depend on AWS or Lambda crates" >&2
  exit 1
fi
echo "ok"

step "All checks passed"
