#!/usr/bin/env bash
# One command from a fresh machine to a full test run: installs everything,
# builds, starts a private Tansu and MariaDB (on their own ports, so a demo
# instance can keep running), runs the Swift unit/connector tests and the
# end-to-end tests, and stops the servers again.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export WEIR_KAFKA_PORT="${WEIR_TEST_KAFKA_PORT:-29092}"
export WEIR_MYSQL_PORT="${WEIR_TEST_MYSQL_PORT:-23306}"
export WEIR_RUN_DIR="$ROOT/.run/test"

bash scripts/setup.sh
echo "[test] building"
swift build --build-tests 2>&1 | grep -E "error|warning: unre|Compiling|Build complete" | grep -v Compiling || true
swift build --build-tests >/dev/null 2>&1 || { swift build --build-tests; exit 1; }
export WEIR_BIN="$(swift build --show-bin-path)/weir"

# A previous run's servers (if any) hold stale data: start from clean state.
bash scripts/servers.sh stop >/dev/null 2>&1 || true
rm -rf "$WEIR_RUN_DIR"
bash scripts/servers.sh start
trap 'bash scripts/servers.sh stop' EXIT

status=0
# The allocation micro-benchmarks build in release in their own package
# (benchmarks/micro/.build) for about 5 minutes: started now, beside the
# tests, and awaited at the end. They check allocation counts only, which
# the load of the tests cannot change.
echo "[test] allocation micro-benchmarks started in the background (log: $WEIR_RUN_DIR/micro-bench.log)"
bash scripts/micro-bench.sh >"$WEIR_RUN_DIR/micro-bench.log" 2>&1 &
micro=$!

echo "[test] swift test (unit + connector tests against the real servers)"
swift test --skip-build 2>&1 | tee "$WEIR_RUN_DIR/swift-test.log" | grep -E "error:|failed|Executed .* tests" || true
grep -qE "with [1-9][0-9]* failures?|error: " "$WEIR_RUN_DIR/swift-test.log" && status=1
grep -qE "Executed [0-9]+ tests" "$WEIR_RUN_DIR/swift-test.log" || status=1

echo "[test] end-to-end tests (pytest)"
"$ROOT/.deps/venv/bin/python" -m pytest -q -p no:cacheprovider --durations=15 Tests/integration || status=1

echo "[test] allocation micro-benchmarks (benchmarks/micro: allocations per batch against Thresholds/)"
wait $micro || status=1
cat "$WEIR_RUN_DIR/micro-bench.log"

if [ $status -eq 0 ]; then echo "[test] all tests passed"; else echo "[test] FAILED"; fi
exit $status
