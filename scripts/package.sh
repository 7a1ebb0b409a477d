#!/usr/bin/env bash
# Builds the seven Lambda functions for arm64 (AWS Graviton) from a clean checkout and zips them:
#
#   scripts/package.sh
#
# Runs `sam build` (infra/template.yaml, settings in samconfig.toml), which runs Cargo Lambda
# (`cargo lambda build --release --arm64 --bin <function>`) from the workspace root; Cargo Lambda
# cross-compiles and links with Zig, so no Docker and no arm64 machine are needed. Then zips each
# `.aws-sam/build/<Function>/bootstrap` into `.aws-sam/zips/<Function>.zip` and prints its size.
# `sam deploy` afterwards uploads the built template's functions (docs/deploy.md).
#
# Installs, pinned and idempotently: the SAM CLI (scripts/tools/cfn-lint.sh), Cargo Lambda and Zig
# into .tools/infra-venv, and the Rust target aarch64-unknown-linux-gnu.
set -euo pipefail

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

# cargo-lambda and zig (via the venv's python -m ziglang) on PATH; SAM copies the binaries from
# <workspace>/target/lambda, so the default target directory must be used.
export PATH="$venv/bin:$PATH"
unset CARGO_TARGET_DIR
export SAM_CLI_TELEMETRY=0

started=$(date +%s)
sam build --beta-features --template-file infra/template.yaml
built=$(date +%s)

mkdir -p .aws-sam/zips
"$venv/bin/python" - <<'PY'
import pathlib, zipfile
build = pathlib.Path(".aws-sam/build")
out = pathlib.Path(".aws-sam/zips")
functions = sorted(p.parent for p in build.glob("*/bootstrap"))
if not functions:
    raise SystemExit("no .aws-sam/build/<Function>/bootstrap was built")
print(f"{'function':<24}{'bootstrap':>12}{'zip':>12}")
for function in functions:
    bootstrap = function / "bootstrap"
    target = out / f"{function.name}.zip"
    info = zipfile.ZipInfo("bootstrap", date_time=(2020, 1, 1, 0, 0, 0))
    info.external_attr = 0o100755 << 16  # a regular, executable file
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(target, "w") as archive:
        archive.writestr(info, bootstrap.read_bytes(), compresslevel=9)
    print(f"{function.name:<24}{bootstrap.stat().st_size / 1048576:>10.1f}MB{target.stat().st_size / 1048576:>10.1f}MB")
PY
echo "sam build took $((built - started)) s; zips in .aws-sam/zips/"
