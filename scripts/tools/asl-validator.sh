#!/usr/bin/env bash
# Installs asl-validator (the Amazon States Language validator from npm) at a pinned version into
# .tools/node at the repository root. Idempotent: does nothing when that exact version is there.
# scripts/checks/asl-validator.sh runs it on every workflows/*.asl.json.
set -euo pipefail

ASL_VALIDATOR_VERSION="4.0.0"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
prefix="$root/.tools/node"

installed_version() {
    local pkg="$prefix/node_modules/asl-validator/package.json"
    [ -f "$pkg" ] && [ -x "$prefix/node_modules/.bin/asl-validator" ] || return 1
    node -p "require(process.argv[1]).version" "$pkg" 2>/dev/null
}

if [ "$(installed_version || true)" = "$ASL_VALIDATOR_VERSION" ]; then
    echo "asl-validator $ASL_VALIDATOR_VERSION already installed in $prefix"
    exit 0
fi

mkdir -p "$prefix"
npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error --save-exact \
    "asl-validator@$ASL_VALIDATOR_VERSION"

actual="$(installed_version || true)"
if [ "$actual" != "$ASL_VALIDATOR_VERSION" ]; then
    echo "asl-validator install failed: expected $ASL_VALIDATOR_VERSION in $prefix, found '${actual:-nothing}'" >&2
    exit 1
fi
echo "asl-validator $ASL_VALIDATOR_VERSION installed in $prefix"
