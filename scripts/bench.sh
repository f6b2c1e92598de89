#!/usr/bin/env bash
# Runs the benchmarks under bench/ and prints their numbers (README "Benchmarks"):
#  1. the Google Benchmark binaries (build/bin/bench_*), if any;
#  2. bench/stream_load.py: the engine's event streaming alone (scripted model);
#  3. refinement-load: N concurrent refinements through the whole product on the paced model,
#     on SQLite and PostgreSQL, with nginx as the relay anchor.
#
# Settings (environment, so that `make bench BENCH_SESSIONS=10000` works too):
#   BENCH_SESSIONS  comma-separated N for refinement-load (default 100,1000; add 10000 for the big run)
#   BENCH_RATE      model text chunks per second per session (default 2)
#   BENCH_STORAGE   sqlite,postgres (default both; postgres runs in a throwaway cluster from
#                   scripts/with-test-services.sh unless TEST_PG_URL is set)
# Arguments are passed to refinement-load as they are (see build/bin/refinement-load --help).
set -euo pipefail
cd "$(dirname "$0")/.."
export BIN_DIR=${BIN_DIR:-$PWD/build/bin}
export PROJECT_SOURCE_DIR=$PWD
for b in build/bin/bench_*; do
  [[ -x "$b" ]] || continue
  echo "== $b"; "$b" --benchmark_min_time=0.2
done
echo "== bench/stream_load.py"
/usr/bin/python3 bench/stream_load.py

SESSIONS=${BENCH_SESSIONS:-100,1000}
RATE=${BENCH_RATE:-2}
STORAGE=${BENCH_STORAGE:-sqlite,postgres}
echo "== refinement-load --sessions $SESSIONS --rate $RATE --storage $STORAGE $*"
CMD=("$BIN_DIR/refinement-load" --sessions "$SESSIONS" --rate "$RATE" --storage "$STORAGE" "$@")
if [[ "$STORAGE" == *postgres* && -z "${TEST_PG_URL:-}" ]]; then
  SKIP_NATS=1 scripts/with-test-services.sh "${CMD[@]}"
else
  "${CMD[@]}"
fi
