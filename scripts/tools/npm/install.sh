#!/usr/bin/env bash
# Installs one npm tool with every package under it pinned by a committed lockfile:
#   scripts/tools/npm/install.sh NAME VERSION DEST
# copies scripts/tools/npm/NAME/{package.json,package-lock.json} to DEST and runs `npm ci` there,
# then checks that the package NAME is at VERSION (the lockfile and the caller agree).
# Idempotent: does nothing when DEST holds the same lockfile and NAME is at VERSION.
# Without a lockfile npm resolves the newest transitive versions at each install, so a clean
# checkout could install something never tested, or fail when the registry lists a dependant
# before its dependency (seen: "No matching version found for @aws-sdk/credential-provider-env").
set -euo pipefail
[ $# = 3 ] || { echo "usage: $0 NAME VERSION DEST" >&2; exit 2; }
name="$1" version="$2" dest="$3"
case "$dest" in /*) ;; *) dest="$PWD/$dest" ;; esac
src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$name"
[ -f "$src/package-lock.json" ] || { echo "no lockfile for $name in $src" >&2; exit 1; }

installed() {
  cmp -s "$src/package-lock.json" "$dest/package-lock.json" &&
    [ "$(node -p "require(process.argv[1]).version" "$dest/node_modules/$name/package.json" 2>/dev/null)" = "$version" ]
}

if installed; then
  echo "$name $version already installed in $dest"
  exit 0
fi
rm -rf "$dest"
mkdir -p "$dest"
cp "$src/package.json" "$src/package-lock.json" "$dest/"
npm ci --prefix "$dest" --no-audit --no-fund --loglevel=error
installed || { echo "$name $version install failed in $dest" >&2; exit 1; }
echo "$name $version installed in $dest"
