#!/usr/bin/env bash
# The benchmark command: builds the seven function binaries, the bare lambda_runtime baseline
# (bench-hello), the local stack and the benchmark driver, installs the pinned comparison tools,
# then runs `aftersales-bench`, which prints the figures and rewrites docs/performance.md.
#
#   scripts/bench.sh            full run, release profile (the Lambda profile, host architecture)
#   scripts/bench.sh --quick    every part with tiny counts, dev profile (reuses the test build);
#                               for CI: checks the benchmark still runs, no thresholds
#   scripts/bench.sh --parts 3,4   only some parts (1 init, 2 memory, 3 cost, 4 interpreter, 5 intake)
#
# Needs: the Rust toolchain, node/npm (aws-local-stepfunctions), python3 (moto, for part 2).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

ALS_VERSION="3.0.0"
quick=0
for arg in "$@"; do
  [ "$arg" = "--quick" ] && quick=1
done

# aws-local-stepfunctions, pinned, in .tools/ (idempotent).
als_dir="$root/.tools/aws-local-stepfunctions"
als_installed() {
  node -e "process.exit(require('$als_dir/node_modules/aws-local-stepfunctions/package.json').version === '$ALS_VERSION' ? 0 : 1)" 2>/dev/null
}
if ! als_installed; then
  mkdir -p "$als_dir"
  [ -f "$als_dir/package.json" ] || echo '{"private": true}' > "$als_dir/package.json"
  npm install --prefix "$als_dir" --no-audit --no-fund --save-exact \
    "aws-local-stepfunctions@$ALS_VERSION" >/dev/null
  als_installed || { echo "aws-local-stepfunctions $ALS_VERSION install failed" >&2; exit 1; }
fi

# moto (part 2 serves the functions' DynamoDB/SQS calls from it); optional.
if [ -x scripts/moto.sh ]; then
  scripts/moto.sh || echo "moto not installed; part 2 runs without it" >&2
fi

target="${CARGO_TARGET_DIR:-$root/target}"
packages=(-p accept -p respond -p diagnose -p propose -p notify -p execute-refund -p survey
          -p aftersales-local -p aftersales-bench)
if [ "$quick" = 1 ]; then
  cargo build "${packages[@]}"
  bin_dir="$target/debug"
else
  cargo build --release "${packages[@]}"
  bin_dir="$target/release"
fi

exec "$bin_dir/aftersales-bench" --bin-dir "$bin_dir" --root "$root" "$@"
