#!/usr/bin/env bash
# Installs the moto AWS API emulator (server mode) into .tools/moto-venv at the repository root.
# Idempotent: does nothing when that exact version is already installed there.
# The Rust tests under functions/service start .tools/moto-venv/bin/moto_server themselves.
set -euo pipefail

MOTO_VERSION="5.2.5"
MOTO_EXTRAS="server"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.tools/moto-venv"
python="${PYTHON:-python3}"

installed_version() {
    [ -x "$venv/bin/python" ] && [ -x "$venv/bin/moto_server" ] || return 1
    "$venv/bin/python" - <<'PY' 2>/dev/null
import importlib.metadata as m
import flask, flask_cors  # the [server] extra
print(m.version("moto"))
PY
}

if [ "$(installed_version || true)" = "$MOTO_VERSION" ]; then
    echo "moto $MOTO_VERSION already installed in $venv"
    exit 0
fi

mkdir -p "$root/.tools"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --constraint "$root/scripts/tools/pip/moto.txt" \
    "moto[$MOTO_EXTRAS]==$MOTO_VERSION"

actual="$(installed_version || true)"
if [ "$actual" != "$MOTO_VERSION" ]; then
    echo "moto install failed: expected $MOTO_VERSION in $venv, found '${actual:-nothing}'" >&2
    exit 1
fi
echo "moto $MOTO_VERSION installed in $venv"
