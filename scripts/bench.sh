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
#   BENCH_STORAGE   sqlite,postgres (default both, postgres alone when BENCH_REPLICAS > 1; postgres
#                   runs in a throwaway cluster from scripts/with-test-services.sh unless TEST_PG_URL is set)
#   BENCH_REPLICAS  engine and orchestrator processes (default 1; N = 10,000 needs 2 under a
#                   per-process descriptor limit of 20,000: BENCH_SESSIONS=10000 BENCH_REPLICAS=2)
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
REPLICAS=${BENCH_REPLICAS:-1}
if [[ "$REPLICAS" -gt 1 ]]; then STORAGE=${BENCH_STORAGE:-postgres}; else STORAGE=${BENCH_STORAGE:-sqlite,postgres}; fi
echo "== refinement-load --sessions $SESSIONS --rate $RATE --storage $STORAGE --replicas $REPLICAS $*"
CMD=("$BIN_DIR/refinement-load" --sessions "$SESSIONS" --rate "$RATE" --storage "$STORAGE" --replicas "$REPLICAS" "$@")
if [[ "$STORAGE" == *postgres* && -z "${TEST_PG_URL:-}" ]]; then
  # No shared nats-server: with replicas, refinement-load starts one per row and measures it.
  SKIP_NATS=1 scripts/with-test-services.sh "${CMD[@]}"
else
  "${CMD[@]}"
fi
