#!/usr/bin/env bash
# `make demo`: starts spec-engine and ide-orchestrator on free loopback ports with
# throwaway SQLite data, creates a user and runs the README walkthrough
# (scripts/walkthrough.sh): a workflow from the multi-agent template, a refinement with
# its live stream, the proposal and its diff, approve, publish, deploy, a run of the
# deployed version and its output. Builds nothing (the Makefile's `demo` target builds
# first). Exits non-zero if any step fails.
#
# Model (README "Use your own model"): with OPENAI_API_KEY or OPENAI_BASE_URL set the
# engine calls that OpenAI-compatible server; OPENAI_MODEL names the model (the
# orchestrator's --refinement-model, and the engine's --model-override openai:MODEL so the
# workflow's runs use it too). Otherwise the offline scripted model replays
# config/demo/demo-script.json, and the demo says so.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BIN_DIR:-$ROOT/build/bin}
PY=/usr/bin/python3
TMP=$(mktemp -d /tmp/agentic-demo.XXXXXX)
ENGINE_PID=""
ORCH_PID=""
OK=0

bold() { printf '\033[1m%s\033[0m\n' "$*"; }
step() { echo; bold "==> $*"; }
info() { echo "    $*"; }
die() { echo; printf '\033[31mDEMO FAILED: %s\033[0m\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/services.sh
source "$ROOT/scripts/services.sh"

cleanup() {
  local rc=$?
  set +e
  trap '' PIPE INT TERM  # stop the services even if our output is gone (e.g. piped into head)
  { echo; bold "==> Shutting down"; } 2>/dev/null
  stop_pid "$ORCH_PID" ide-orchestrator 2>/dev/null
  stop_pid "$ENGINE_PID" spec-engine 2>/dev/null
  if [[ $OK -ne 1 ]]; then
    {
      echo "---- last lines of the spec-engine log ($TMP/engine.log)"; tail -n 15 "$TMP/engine.log"
      echo "---- last lines of the ide-orchestrator log ($TMP/orchestrator.log)"; tail -n 15 "$TMP/orchestrator.log"
    } 2>/dev/null
    [[ $rc -eq 0 ]] && rc=1
  fi
  rm -rf "$TMP"
  { [[ $rc -eq 0 ]] && bold "Demo finished successfully." || echo "Demo failed (exit $rc)." >&2; } 2>/dev/null
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'exit 141' PIPE  # e.g. piped into head: still stop both services

for b in spec-engine ide-orchestrator; do
  [[ -x "$BIN/$b" ]] || die "$BIN/$b not found: build first (make build)"
done
$PY -c 'import websockets' 2>/dev/null || die "python3-websockets is not installed (apt-get install python3-websockets)"

# ---------------------------------------------------------------- services
step "Starting the services"
EPORT=$(free_port); OPORT=$(free_port)
ENGINE="http://127.0.0.1:$EPORT"; ORCH="http://127.0.0.1:$OPORT"
engine_command "$EPORT" "$TMP/engine"
"${ENGINE_CMD[@]}" >"$TMP/engine.log" 2>&1 &
ENGINE_PID=$!
wait_health "$ENGINE" "$ENGINE_PID" spec-engine
info "spec-engine       $ENGINE  (pid $ENGINE_PID)"
info "model:            $MODEL_NOTE"

export JWT_SECRET
JWT_SECRET=$($PY -c 'import secrets;print(secrets.token_hex(32))')
ORCH_STORAGE=(--data-dir "$TMP/orchestrator")
"$BIN/ide-orchestrator" serve "${ORCH_STORAGE[@]}" --host 127.0.0.1 --port "$OPORT" --engine-url "$ENGINE" \
  "${ORCH_MODEL_FLAGS[@]}" >"$TMP/orchestrator.log" 2>&1 &
ORCH_PID=$!
wait_health "$ORCH" "$ORCH_PID" ide-orchestrator
info "ide-orchestrator  $ORCH  (pid $ORCH_PID, SQLite in a temp dir, fresh JWT secret)"

# ---------------------------------------------------------------- user, then the walkthrough
step "Creating a user"
EMAIL="ada@example.com"; PASSWORD="correct horse battery staple"
USER_ID=$(printf '%s\n' "$PASSWORD" | "$BIN/ide-orchestrator" user add "${ORCH_STORAGE[@]}" --email "$EMAIL" --name "Ada Lovelace" 2>>"$TMP/orchestrator.log") \
  || die "ide-orchestrator user add failed"
info "user $EMAIL created (id $USER_ID)"
echo
info "The README walkthrough follows (scripts/walkthrough.sh). Lines marked 'agent <name>' are what the"
info "agents say and do; 'engine' lines are the runtime's bookkeeping; '==>' lines are this script."
ORCH="$ORCH" EMAIL="$EMAIL" PASSWORD="$PASSWORD" "$ROOT/scripts/walkthrough.sh" | tee "$TMP/walkthrough.out" \
  || die "a walkthrough step failed (see above)"
if [[ -n "$SCRIPTED" ]]; then  # the scripted refinement adds the FactChecker; its run writes the report
  grep -q "/THE_CAST/FactChecker.md" "$TMP/walkthrough.out" || die "the approved draft lacks /THE_CAST/FactChecker.md"
  grep -q "/report.md" "$TMP/walkthrough.out" || die "the run did not produce /report.md"
fi
OK=1
