#!/usr/bin/env bash
# The SAM template passes cfn-lint with no error and no warning, and `sam validate --lint`.
# Offline: sam needs some credentials and a region to start, never an AWS account.
# Tools come from scripts/tools/cfn-lint.sh (.tools/infra-venv).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
venv=".tools/infra-venv"
template="infra/template.yaml"

echo "cfn-lint $("$venv/bin/cfn-lint" --version | awk '{print $2}'): $template"
# Fails on any error or warning; informational findings are printed but pass.
"$venv/bin/cfn-lint" --non-zero-exit-code warning --format parseable -- "$template"

echo "sam validate --lint ($("$venv/bin/sam" --version))"
env -u AWS_PROFILE -u AWS_SESSION_TOKEN AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x \
    AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 SAM_CLI_TELEMETRY=0 \
    "$venv/bin/sam" validate --lint --template-file "$template"
