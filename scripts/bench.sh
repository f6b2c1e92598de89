#!/usr/bin/env bash
# Runs the benchmarks under bench/ and prints their numbers (README "Benchmarks").
set -euo pipefail
cd "$(dirname "$0")/.."
export BIN_DIR=${BIN_DIR:-$PWD/build/bin}
export PROJECT_SOURCE_DIR=$PWD
for b in build/bin/bench_*; do
  [[ -x "$b" ]] || continue
  echo "== $b"; "$b" --benchmark_min_time=0.2
done
echo "== bench/stream_load.py"
/usr/bin/python3 bench/stream_load.py "$@"
