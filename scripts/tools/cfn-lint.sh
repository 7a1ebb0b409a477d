#!/usr/bin/env bash
# Installs the template checkers into .tools/infra-venv at the repository root: cfn-lint and the
# AWS SAM CLI (`sam validate --lint`), both pinned. Idempotent: does nothing when those exact
# versions are already installed there. scripts/checks/cfn-lint.sh runs them; scripts/package.sh
# uses the same venv for `sam build`.
set -euo pipefail

CFN_LINT_VERSION="1.58.0"
SAM_CLI_VERSION="1.170.0"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/.tools/infra-venv"
python="${PYTHON:-python3}"

installed_versions() {
    [ -x "$venv/bin/python" ] && [ -x "$venv/bin/cfn-lint" ] && [ -x "$venv/bin/sam" ] || return 1
    "$venv/bin/python" - <<'PY' 2>/dev/null
import importlib.metadata as m
print(m.version("cfn-lint"), m.version("aws-sam-cli"))
PY
}

wanted="$CFN_LINT_VERSION $SAM_CLI_VERSION"
if [ "$(installed_versions || true)" = "$wanted" ]; then
    echo "cfn-lint $CFN_LINT_VERSION and aws-sam-cli $SAM_CLI_VERSION already installed in $venv"
    exit 0
fi

mkdir -p "$root/.tools"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --constraint "$root/scripts/tools/pip/infra.txt" \
    "cfn-lint==$CFN_LINT_VERSION" "aws-sam-cli==$SAM_CLI_VERSION"

actual="$(installed_versions || true)"
if [ "$actual" != "$wanted" ]; then
    echo "install failed: expected cfn-lint/aws-sam-cli '$wanted' in $venv, found '${actual:-nothing}'" >&2
    exit 1
fi
echo "cfn-lint $CFN_LINT_VERSION and aws-sam-cli $SAM_CLI_VERSION installed in $venv"
