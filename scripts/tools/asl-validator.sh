#!/usr/bin/env bash
# Installs asl-validator (the Amazon States Language validator from npm) at a pinned version, its
# dependencies pinned by scripts/tools/npm/asl-validator/package-lock.json, into .tools/node at
# the repository root. Idempotent. scripts/checks/asl-validator.sh runs it on every
# workflows/*.asl.json.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
exec "$root/scripts/tools/npm/install.sh" asl-validator 4.0.0 "$root/.tools/node"
