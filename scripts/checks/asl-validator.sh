#!/usr/bin/env bash
# Validates every workflows/*.asl.json with asl-validator (installed, pinned, by
# scripts/tools/asl-validator.sh). The files are checked as committed: the `${...}` substitutions
# the SAM template fills sit inside strings (Parameters.FunctionName), which asl-validator accepts.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
validator="$root/.tools/node/node_modules/.bin/asl-validator"
if [ ! -x "$validator" ]; then
    "$root/scripts/tools/asl-validator.sh"
fi
echo "asl-validator $("$validator" --version)"

shopt -s nullglob
files=("$root"/workflows/*.asl.json)
if [ ${#files[@]} -eq 0 ]; then
    echo "no workflows/*.asl.json to validate" >&2
    exit 1
fi
failed=0
for file in "${files[@]}"; do
    if ! "$validator" --json-path "$file"; then
        failed=1
    fi
done
if [ "$failed" -ne 0 ]; then
    echo "asl-validator: some workflow definitions are invalid" >&2
    exit 1
fi
echo "asl-validator: ${#files[@]} workflow definition(s) valid"
