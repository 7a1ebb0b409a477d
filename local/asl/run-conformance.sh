#!/usr/bin/env bash
# Runs the ASL conformance corpus against asl-run (release build): once over the JSONPath cases
# (the bar: >= 98 %), once over the JSONata cases (reported, not required).
# Usage (from anywhere): local/asl/run-conformance.sh [extra check.py options, e.g. -v]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

target="${CARGO_TARGET_DIR:-$root/target}"
cargo build --release --offline -p asl --bin asl-run >&2 || cargo build --release -p asl --bin asl-run >&2
bin="$target/release/asl-run"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/jsonpath" "$work/jsonata"
python3 - "$here/conformance/cases" "$work" <<'PY'
import json, os, shutil, sys
src, work = sys.argv[1], sys.argv[2]
for f in sorted(os.listdir(src)):
    if not f.endswith(".json"):
        continue
    with open(os.path.join(src, f), encoding="utf-8") as fh:
        case = json.load(fh)
    lang = "jsonata" if case.get("query_language") == "JSONata" else "jsonpath"
    shutil.copy(os.path.join(src, f), os.path.join(work, lang, f))
PY

run() {
    local dir="$1" log="$2"
    python3 "$here/conformance/check.py" --cases "$dir" "${@:3}" -- "$bin" >"$log" 2>&1 || true
    tail -n 1 "$log"
}

summary() {
    # "N passed, M failed" -> "N/T passed (P%)"
    python3 -c 'import sys
p, f = [int(x.split()[0]) for x in sys.argv[1].split(", ")]
t = p + f
print(f"{p}/{t} passed ({100.0 * p / t if t else 0:.1f}%)")
ok = t > 0 and 100.0 * p / t >= float(sys.argv[2])
sys.exit(0 if ok else 1)' "$1" "$2"
}

jp_line="$(run "$work/jsonpath" "$work/jsonpath.log" "$@")"
ja_line="$(run "$work/jsonata" "$work/jsonata.log" "$@")"

grep '^FAIL' "$work/jsonpath.log" || true
jp_status=0
jp_text="$(summary "$jp_line" 98)" || jp_status=1
ja_text="$(summary "$ja_line" 0)" || true
echo "ASL conformance (JSONPath): $jp_text"
echo "ASL conformance (JSONata, not required): $ja_text"
if [ "$jp_status" -ne 0 ]; then
    echo "JSONPath conformance is below 98%" >&2
    exit 1
fi
