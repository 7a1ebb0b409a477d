#!/usr/bin/env bash
# The one test command: installs what the tests need (pinned) and runs every check.
# Used as-is by CI (.ci/run). Needs: the Rust toolchain, python3, and the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s ==\n' "$*"; }

step "Tools (pinned)"
if [ -x scripts/moto.sh ]; then scripts/moto.sh; fi

step "Format"
cargo fmt --all -- --check

step "Lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "Tests"
cargo test --workspace --locked --no-fail-fast 2>&1 | tee target/test-output.txt
grep -E '^test result:' target/test-output.txt | awk '{p+=$4; f+=$6} END {printf "Rust tests: %d passed, %d failed\n", p, f}'

step "ASL conformance (recorded against AWS Step Functions)"
local/asl/run-conformance.sh

step "Domain crate has no AWS or Lambda dependency"
if cargo tree -p aftersales-domain -e normal --prefix none | grep -E '^(aws-|lambda)'; then
  echo "aftersales-domain must not depend on AWS or Lambda crates" >&2
  exit 1
fi
echo "ok"

step "All checks passed"
