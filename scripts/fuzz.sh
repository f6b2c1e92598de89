#!/usr/bin/env bash
# Runs the libFuzzer harnesses of fuzz/ (docs/fuzzing.md).
#
#   scripts/fuzz.sh run [HARNESS...]    fuzz each harness for FUZZ_SECONDS (default 60), one at a
#                                       time, and print executions, exec/s and crashes per harness
#   scripts/fuzz.sh smoke HARNESS...    a short pass (FUZZ_SMOKE_RUNS executions, default 3000)
#                                       over the seed corpus; ctest runs it (label fuzz)
#   scripts/fuzz.sh list                the harness names
#
# The harnesses are built by the main build (cmake --build --preset default, target
# fuzz_harnesses) into $FUZZ_BUILD_DIR (default build/fuzz). Seeds are read from
# fuzz/corpus/<harness>/ and never written: inputs found while fuzzing go to
# $FUZZ_BUILD_DIR/corpus/<harness>/, crashes to $FUZZ_BUILD_DIR/artifacts/<harness>/.
# Environment: FUZZ_SECONDS, FUZZ_SMOKE_RUNS, FUZZ_JOBS (libFuzzer -jobs/-workers, default 1),
# FUZZ_MAX_LEN (default 4096), FUZZ_TIMEOUT (seconds per input before it counts as a hang, default 10).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${FUZZ_BUILD_DIR:-$ROOT/build/fuzz}
SECONDS_EACH=${FUZZ_SECONDS:-60}
SMOKE_RUNS=${FUZZ_SMOKE_RUNS:-3000}
JOBS=${FUZZ_JOBS:-1}
MAX_LEN=${FUZZ_MAX_LEN:-4096}
TIMEOUT=${FUZZ_TIMEOUT:-10}

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }

harnesses() {
  for f in "$ROOT"/fuzz/fuzz_*.cpp; do basename "$f" .cpp; done
}

binary() {
  local b="$BUILD/bin/$1"
  if [[ ! -x "$b" ]]; then
    echo "fuzz: $b is missing; build it with: cmake --build --preset default --target fuzz_harnesses" >&2
    exit 2
  fi
  echo "$b"
}

# Options shared by run and smoke: dictionary when present, artifacts under the build dir.
common_args() {
  local h=$1 dict="$ROOT/fuzz/dict/$1.dict"
  mkdir -p "$BUILD/artifacts/$h"
  ARGS=(-max_len="$MAX_LEN" -timeout="$TIMEOUT" -rss_limit_mb=2048 -artifact_prefix="$BUILD/artifacts/$h/"
        -print_final_stats=1)
  if [[ -f "$dict" ]]; then ARGS+=(-dict="$dict"); fi
}

# smoke HARNESS: FUZZ_SMOKE_RUNS executions over a scratch copy of the seeds; fails on any crash.
smoke() {
  local h=$1 bin scratch
  bin=$(binary "$h")
  common_args "$h"
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' RETURN
  "$bin" "${ARGS[@]}" -runs="$SMOKE_RUNS" -max_total_time=30 -seed=1 "$scratch" "$ROOT/fuzz/corpus/$h" \
    >"$scratch/log" 2>&1 || { cat "$scratch/log"; echo "fuzz: $h failed (see above; the input is in $BUILD/artifacts/$h/)"; return 1; }
  grep -E '^stat::number_of_executed_units' "$scratch/log" | sed "s/^/$h: /"
}

# run HARNESS: FUZZ_SECONDS of fuzzing; prints one summary row.
run_one() {
  local h=$1 bin log rc execs rate crashes corpus
  bin=$(binary "$h")
  common_args "$h"
  corpus="$BUILD/corpus/$h"
  mkdir -p "$corpus"
  log="$BUILD/logs/$h.log"
  mkdir -p "$BUILD/logs"
  local before
  before=$(find "$BUILD/artifacts/$h" -type f | wc -l)
  set +e
  if [[ "$JOBS" -gt 1 ]]; then
    "$bin" "${ARGS[@]}" -max_total_time="$SECONDS_EACH" -jobs="$JOBS" -workers="$JOBS" "$corpus" "$ROOT/fuzz/corpus/$h" >"$log" 2>&1
  else
    "$bin" "${ARGS[@]}" -max_total_time="$SECONDS_EACH" "$corpus" "$ROOT/fuzz/corpus/$h" >"$log" 2>&1
  fi
  rc=$?
  set -e
  execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{s+=$2} END {print s+0}')
  rate=$((execs / (SECONDS_EACH > 0 ? SECONDS_EACH : 1)))
  crashes=$(( $(find "$BUILD/artifacts/$h" -type f | wc -l) - before ))
  printf '%-18s %8s s %12s execs %9s exec/s %4s crashes %6s corpus  %s\n' "$h" "$SECONDS_EACH" "$execs" "$rate" \
    "$crashes" "$(find "$corpus" -type f | wc -l)" "$([[ $rc -eq 0 ]] && echo ok || echo "FAILED: see $log")"
  return $rc
}

cmd=${1:-}
shift || true
case "$cmd" in
  list) harnesses ;;
  smoke)
    [[ $# -gt 0 ]] || set -- $(harnesses)
    for h in "$@"; do smoke "$h"; done
    ;;
  run)
    [[ $# -gt 0 ]] || set -- $(harnesses)
    status=0
    echo "fuzz: $# harness(es), ${SECONDS_EACH} s each, one at a time (FUZZ_SECONDS changes it)"
    for h in "$@"; do run_one "$h" || status=1; done
    exit $status
    ;;
  *) usage; [[ "$cmd" == -h || "$cmd" == --help || "$cmd" == help ]] && exit 0; exit 2 ;;
esac
