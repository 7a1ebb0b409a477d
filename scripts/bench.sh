#!/usr/bin/env bash
# The benchmark command: builds the seven function binaries, the bare lambda_runtime baseline
# (bench-hello), the local stack and the benchmark driver, installs the pinned comparison tools,
# then runs `aftersales-bench`, which prints the figures and rewrites docs/performance.md.
# Part 6 (package size) runs scripts/package.sh in a full run: the shipped arm64 zips, with
# Cargo Lambda, Zig and the SAM CLI that script installs (pinned) into .tools/infra-venv.
#
#   scripts/bench.sh            full run: the functions with the release profile (the Lambda one,
#                               host architecture), the local stack with the `local` profile
#   scripts/bench.sh --quick    every part with tiny counts, dev profile (reuses the test build);
#                               for CI: checks the benchmark still runs, no thresholds; part 6
#                               zips the host dev binaries instead of building arm64 (no LTO
#                               build), and the report says those are not the shipped sizes
#   scripts/bench.sh --parts 3,4   only some parts (1 init, 2 memory, 3 cost, 4 interpreter,
#                                  5 intake, 6 package size)
#
# Needs: the Rust toolchain, node/npm (aws-local-stepfunctions), python3 (moto for part 2, the
# zips of part 6), and for a full part 6 what scripts/package.sh installs (PyPI, rustup target).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

ALS_VERSION="3.0.0"
quick=0
parts="3,4,1,2,5,6"
previous=""
for arg in "$@"; do
  [ "$arg" = "--quick" ] && quick=1
  [ "$previous" = "--parts" ] && parts="$arg"
  previous="$arg"
done

# Part 6 in a full run builds the arm64 zips with scripts/package.sh: install its pinned tools
# (SAM CLI, Cargo Lambda, Zig, the aarch64 target) now, so a missing one fails before the long
# parts rather than after them. A quick run zips the host binaries and needs none of them.
if [ "$quick" = 0 ] && [[ ",$parts," == *",6,"* ]]; then
  scripts/package.sh --tools-only
fi

# aws-local-stepfunctions, pinned with every package under it by the committed lockfile
# (scripts/tools/npm/aws-local-stepfunctions), installed with `npm ci` into .tools/ (idempotent).
scripts/tools/npm/install.sh aws-local-stepfunctions "$ALS_VERSION" \
  "$root/.tools/aws-local-stepfunctions" >/dev/null

# moto (part 2 serves the functions' DynamoDB/SQS calls from it); optional.
if [ -x scripts/moto.sh ]; then
  scripts/moto.sh || echo "moto not installed; part 2 runs without it" >&2
fi

target="${CARGO_TARGET_DIR:-$root/target}"
# The functions are built on their own, as Cargo Lambda builds them for the zips: built with the
# local stack, Cargo would unify their dependencies' features with the stack's (tracing-subscriber
# with EnvFilter and ANSI colours, for one) and part 1 would time binaries that are not shipped.
# A full run builds them (and bench-hello, the baseline built the same way) with the release
# profile, the Lambda one, and the local stack and the driver with the `local` profile, the one
# the README runs the local stack with (Cargo.toml).
functions=(-p accept -p respond -p diagnose -p propose -p notify -p execute-refund -p survey)
if [ "$quick" = 1 ]; then
  cargo build "${functions[@]}"
  cargo build -p aftersales-local -p aftersales-bench
  bin_dir="$target/debug"
  tools_dir="$target/debug"
else
  cargo build --release "${functions[@]}"
  # (--bin would also filter the functions' packages: bench-hello gets its own invocation.)
  cargo build --release -p aftersales-bench --bin bench-hello
  cargo build --profile local -p aftersales-local -p aftersales-bench
  bin_dir="$target/release"
  tools_dir="$target/local"
fi

exec "$tools_dir/aftersales-bench" --bin-dir "$bin_dir" --root "$root" "$@"
