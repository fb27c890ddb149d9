#!/usr/bin/env bash
# Allocation micro-benchmarks of the hot path (benchmarks/micro, ordo-one/benchmark):
# builds them in release, runs each once, prints allocations and times per batch,
# and checks the allocations against the static thresholds committed in
# benchmarks/micro/Thresholds/. Exits non-zero when a benchmark allocates more
# per batch than its threshold, or fails. Times are printed, never checked.
#
#   scripts/micro-bench.sh                      check (scripts/test.sh runs this)
#   scripts/micro-bench.sh --update-thresholds  after an intended change: rewrite
#                                               Thresholds/ from this run (commit them)
#
# Offline and idempotent: the Swift packages come from the machine's copies;
# a second run reuses benchmarks/micro/.build.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT/benchmarks/micro"

update=0
case "${1:-}" in
    "") ;;
    --update-thresholds) update=1 ;;
    *) echo "usage: scripts/micro-bench.sh [--update-thresholds]" >&2; exit 64 ;;
esac

start=$SECONDS
# The plugin builds the benchmarks (and its own tool) in release; its host-side
# copy of the tool is built once in debug. (`swift package -c release` would
# build that copy in release too, and then each command rebuilds part of the other.)
bench() { swift package --allow-writing-to-package-directory benchmark "$@" --no-progress; }
noise='^\[[0-9]+/[0-9]+\] |^Building|^Build |^Write|^Compiling|^Linking|Swift runtime interposer|^Note: skipping LD_PRELOAD'

echo "[micro-bench] building (release) and running benchmarks/micro"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# One run; its results are kept as the baseline 'micro' (.benchmarkBaselines/, ignored).
if ! bench baseline update micro --quiet >"$log" 2>&1; then
    grep -vE "$noise" "$log" | tail -40
    echo "[micro-bench] FAILED: the benchmarks did not build or run"
    exit 1
fi
echo "[micro-bench] built and ran in $((SECONDS - start)) s"

# The results, one line per benchmark (printing never fails the check).
python3 summary.py micro || echo "[micro-bench] (no summary: cd benchmarks/micro && swift package benchmark baseline read micro)"

if [ $update -eq 1 ]; then
    rm -rf Thresholds
    bench thresholds update micro --path Thresholds >/dev/null 2>&1
    # Only the allocation counts are thresholds: times vary from machine to machine.
    python3 - <<'EOF'
import json, pathlib
for f in sorted(pathlib.Path("Thresholds").glob("*.json")):
    kept = {k: v for k, v in json.loads(f.read_text()).items() if k == "mallocCountTotal"}
    f.write_text(json.dumps(kept, indent=2, sort_keys=True) + "\n")
EOF
    echo "[micro-bench] thresholds rewritten in benchmarks/micro/Thresholds/ (review and commit them)"
    exit 0
fi

# Exit status 0: every allocation count equals its threshold. The plugin fails
# (exit 1) both when one is above ("WORSE") and when all differing are below ("BETTER").
set +e
bench thresholds check micro --path Thresholds >"$log" 2>&1
rc=$?
set -e
grep -vE "$noise|^error: benchmarkThreshold|^$" "$log" || true
if [ $rc -eq 0 ]; then
    echo "[micro-bench] allocations per batch equal to the thresholds ($((SECONDS - start)) s)"
elif grep -q "is BETTER than the defined thresholds" "$log" && ! grep -q "is WORSE than" "$log"; then
    echo "[micro-bench] allocations per batch below the thresholds: tighten them with scripts/micro-bench.sh --update-thresholds ($((SECONDS - start)) s)"
else
    echo "[micro-bench] FAILED: allocations per batch above the thresholds, or no check (exit $rc)."
    echo "[micro-bench] If the growth is intended: scripts/micro-bench.sh --update-thresholds, and commit benchmarks/micro/Thresholds/"
    exit 1
fi
