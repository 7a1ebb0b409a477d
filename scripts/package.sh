#!/usr/bin/env bash
# Builds the seven Lambda functions for arm64 (AWS Graviton) from a clean checkout and zips them:
#
#   scripts/package.sh
#
# Runs `sam build` (infra/template.yaml, settings in samconfig.toml), which runs Cargo Lambda
# (`cargo lambda build --release --arm64 --bin <function>`) from the workspace root; Cargo Lambda
# cross-compiles and links with Zig, so no Docker and no arm64 machine are needed. Before it, one
# `cargo lambda build` of all seven binaries does the real work in parallel, so SAM's seven
# per-function builds only find them up to date (see step 1 below). Then zips each
# `.aws-sam/build/<Function>/bootstrap` into `.aws-sam/zips/<Function>.zip` and prints its size.
# Release profile: the workspace Cargo.toml's [profile.release] (fat LTO, one codegen unit,
# stripped, panic=unwind); target CPU Neoverse N1 (.cargo/config.toml).
# `sam deploy` afterwards uploads the built template's functions (docs/deploy.md).
#
#   scripts/package.sh --fast
#
# --fast (what CI runs, scripts/checks/package.sh): the same pipeline and checks, but the release
# profile's optimisation is overridden (CARGO_PROFILE_RELEASE_*: opt-level 0, no LTO, 16 codegen
# units) so the seven arm64 builds fit the CI time limit on two cores; its zips are far larger
# than the shipped ones and its sizes are not the ones to report (docs/deploy.md has those).
#
# Installs, pinned and idempotently: the SAM CLI (scripts/tools/cfn-lint.sh), Cargo Lambda and Zig
# into .tools/infra-venv, and the Rust target aarch64-unknown-linux-gnu.
#
#   scripts/package.sh --tools-only
#
# Only those installs, nothing built (scripts/bench.sh runs it before a full run, whose part 6
# then runs this script for the zips it measures).
set -euo pipefail

fast=0
tools_only=0
for arg in "$@"; do
    case "$arg" in
        --fast) fast=1 ;;
        --tools-only) tools_only=1 ;;
        *) echo "usage: scripts/package.sh [--fast | --tools-only]" >&2; exit 2 ;;
    esac
done
if [ "$fast" = 1 ]; then
    # Exported, so both Cargo Lambda runs (step 1 and SAM's per function) see the same profile.
    export CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_LTO=off \
        CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
    echo "--fast: release profile overridden (opt-level 0, no LTO); sizes below are not the shipped ones"
fi

CARGO_LAMBDA_VERSION="1.9.2"
ZIGLANG_VERSION="0.14.1"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.tools/infra-venv"

scripts/tools/cfn-lint.sh

installed() {
    "$venv/bin/python" - "$@" <<'PY' 2>/dev/null
import importlib.metadata as m, sys
print(" ".join(m.version(name) for name in sys.argv[1:]))
PY
}
wanted="$CARGO_LAMBDA_VERSION $ZIGLANG_VERSION"
if [ "$(installed cargo-lambda ziglang || true)" != "$wanted" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        --constraint "$root/scripts/tools/pip/infra.txt" \
        "cargo-lambda==$CARGO_LAMBDA_VERSION" "ziglang==$ZIGLANG_VERSION"
fi
actual="$(installed cargo-lambda ziglang || true)"
if [ "$actual" != "$wanted" ]; then
    echo "expected cargo-lambda/ziglang '$wanted' in $venv, found '${actual:-nothing}'" >&2
    exit 1
fi

if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
    rustup target add aarch64-unknown-linux-gnu
fi
if [ "$tools_only" = 1 ]; then
    echo "tools installed: cargo-lambda $CARGO_LAMBDA_VERSION, ziglang $ZIGLANG_VERSION, SAM CLI, aarch64 target"
    exit 0
fi

# cargo-lambda and zig (via the venv's python -m ziglang) on PATH. SAM builds every function into
# the workspace's one target directory (CARGO_TARGET_DIR if set, else <workspace>/target) and
# copies each bootstrap from its target/lambda/<binary>/.
export PATH="$venv/bin:$PATH"
export SAM_CLI_TELEMETRY=0

# The binaries the template builds (`BuildProperties: { Binary: <name> }`), in template order.
mapfile -t binaries < <(sed -n 's/^ *BuildProperties: *{ *Binary: *\([A-Za-z0-9_-]*\) *}.*/\1/p' infra/template.yaml)
if [ "${#binaries[@]}" -eq 0 ]; then
    echo "no 'BuildProperties: { Binary: ... }' in infra/template.yaml" >&2
    exit 1
fi
bin_args=()
for binary in "${binaries[@]}"; do bin_args+=(--bin "$binary"); done

# 1. All the functions in ONE Cargo Lambda invocation, exactly as SAM's builder invokes it per
#    function (`cargo lambda build --release --arm64 --bin <name>`, same target directory, same
#    features: every function's dependency set is the same), so that cargo compiles the
#    dependencies once and runs the seven fat-LTO links side by side on all cores instead of one
#    after the other.
started=$(date +%s)
cargo lambda build --release --arm64 --locked "${bin_args[@]}"
compiled=$(date +%s)

# 2. `sam build`: each function's own `cargo lambda build` finds its binary up to date and SAM
#    copies it to .aws-sam/build/<Function>/bootstrap and writes the built template.
sam build --beta-features --template-file infra/template.yaml
built=$(date +%s)

mkdir -p .aws-sam/zips
"$venv/bin/python" - "${#binaries[@]}" <<'PY'
import pathlib, sys, zipfile
expected = int(sys.argv[1])
build = pathlib.Path(".aws-sam/build")
out = pathlib.Path(".aws-sam/zips")
functions = sorted(p.parent for p in build.glob("*/bootstrap"))
if len(functions) != expected:
    raise SystemExit(f"expected {expected} .aws-sam/build/<Function>/bootstrap, found {len(functions)}")
print(f"{'function':<24}{'bootstrap bytes':>16}{'zip bytes':>12}{'zip MB':>8}")
total = 0
for function in functions:
    bootstrap = function / "bootstrap"
    target = out / f"{function.name}.zip"
    # What `sam deploy` uploads: the bootstrap alone, executable, deflated.
    info = zipfile.ZipInfo("bootstrap", date_time=(2020, 1, 1, 0, 0, 0))
    info.external_attr = 0o100755 << 16  # a regular, executable file
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(target, "w") as archive:
        archive.writestr(info, bootstrap.read_bytes(), compresslevel=9)
    size = target.stat().st_size
    total += size
    print(f"{function.name:<24}{bootstrap.stat().st_size:>16}{size:>12}{size / 1e6:>8.2f}")
print(f"{'total':<24}{'':>16}{total:>12}{total / 1e6:>8.2f}")
PY
echo "cargo lambda build: $((compiled - started)) s; sam build: $((built - compiled)) s; zips in .aws-sam/zips/"
