#!/usr/bin/env bash
# The benchmark command in its quick mode (scripts/bench.sh --quick: every part with tiny
# counts, dev profile, reusing the test build), so it cannot rot. No thresholds: the figures of a
# quick run on a shared CI machine mean nothing; the report goes to target/, docs/performance.md
# is regenerated only by a full run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
mkdir -p target
scripts/bench.sh --quick --out target/performance-quick.md
