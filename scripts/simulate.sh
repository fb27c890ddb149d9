#!/usr/bin/env bash
# Runs the deterministic protocol simulator (Tests/WeirSimulationTests).
#   scripts/simulate.sh                         2,000 seeds from 1 (as CI)
#   scripts/simulate.sh --seeds N [--first S]   N seeds from S
#   scripts/simulate.sh --seed S [--bug NAME]   replay one history and print its trace
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
filter="WeirSimulationTests.SimulationTests/testSeededHistoriesKeepTheInvariants"
while [ $# -gt 0 ]; do
  case "$1" in
    --seeds) export WEIR_SIM_SEEDS="$2"; shift 2 ;;
    --first) export WEIR_SIM_FIRST="$2"; shift 2 ;;
    --seed) export WEIR_SIM_SEED="$2"; filter="WeirSimulationTests.SimulationTests/testReplay"; shift 2 ;;
    --bug) export WEIR_SIM_BUGS="$2"; shift 2 ;;
    *) echo "usage: $0 [--seeds N] [--first S] | --seed S [--bug NAME]" >&2; exit 2 ;;
  esac
done
swift build --build-tests >/dev/null 2>&1 || swift build --build-tests
swift test --skip-build --filter "$filter" 2>&1 | grep -vE "^\[|Test Suite|^◇|^↳|^✔"
