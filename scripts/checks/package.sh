#!/usr/bin/env bash
# Packaging: `sam build` builds all seven functions for arm64 with Cargo Lambda from this
# checkout and each bootstrap is zipped (scripts/package.sh). CI runs the --fast variant (the
# release profile's optimisation turned down to fit the time limit); the shipped sizes come from
# a plain `scripts/package.sh` (docs/deploy.md).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
scripts/package.sh --fast
