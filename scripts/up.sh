#!/usr/bin/env bash
# `make up`: runs spec-engine and ide-orchestrator on the embedded defaults (SQLite under
# var/up/, the offline scripted model unless OPENAI_API_KEY or OPENAI_BASE_URL is set, with
# OPENAI_MODEL as `make demo` uses them),
# seeds a user, prints the web console's URL and the credentials, and keeps running until
# Ctrl-C; then stops both services. Builds nothing (the Makefile's `up` target builds first).
#
# Environment: UP_PORT (console/API port, default 8080), UP_ENGINE_PORT (default 8000); a busy
# port is replaced by a free one. UP_EMAIL, UP_PASSWORD: the seeded user. UP_DATA_DIR: where the
# SQLite files live (default var/up; kept between runs, so your workflows survive a restart).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BIN_DIR:-$ROOT/build/bin}
DATA=${UP_DATA_DIR:-$ROOT/var/up}
EMAIL=${UP_EMAIL:-ada@example.com}
PASSWORD=${UP_PASSWORD:-correct horse battery staple}
ENGINE_PID=""
ORCH_PID=""

bold() { printf '\033[1m%s\033[0m\n' "$*"; }
die() { printf '\033[31mmake up: %s\033[0m\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/services.sh
source "$ROOT/scripts/services.sh"

cleanup() {
  set +e
  trap '' INT TERM
  echo
  bold "Stopping the services…"
  stop_pid "$ORCH_PID" ide-orchestrator
  stop_pid "$ENGINE_PID" spec-engine
  bold "Stopped. Data kept in $DATA (logs: $DATA/*.log)."
}
trap cleanup EXIT
trap 'exit 0' INT TERM

for b in spec-engine ide-orchestrator; do
  [[ -x "$BIN/$b" ]] || die "$BIN/$b not found: build first (make build)"
done
pick_port() {  # pick_port WANTED NAME: WANTED if free, else a free one (with a note)
  if port_free "$1"; then echo "$1"; return; fi
  local p; p=$(free_port)
  echo "    port $1 is busy; $2 uses $p instead" >&2
  echo "$p"
}
mkdir -p "$DATA"
EPORT=$(pick_port "${UP_ENGINE_PORT:-8000}" spec-engine)
OPORT=$(pick_port "${UP_PORT:-8080}" ide-orchestrator)
ENGINE="http://127.0.0.1:$EPORT"; ORCH="http://127.0.0.1:$OPORT"

engine_command "$EPORT" "$DATA/engine"
"${ENGINE_CMD[@]}" >>"$DATA/engine.log" 2>&1 &
ENGINE_PID=$!
wait_health "$ENGINE" "$ENGINE_PID" spec-engine

# A fresh signing secret per run: sessions of an earlier run end with "sign in again".
export JWT_SECRET
JWT_SECRET=$($PY -c 'import secrets;print(secrets.token_hex(32))')
STORAGE=(--data-dir "$DATA/orchestrator")
"$BIN/ide-orchestrator" serve "${STORAGE[@]}" --host 127.0.0.1 --port "$OPORT" --engine-url "$ENGINE" \
  "${ORCH_MODEL_FLAGS[@]}" >>"$DATA/orchestrator.log" 2>&1 &
ORCH_PID=$!
wait_health "$ORCH" "$ORCH_PID" ide-orchestrator

# Seed the user unless it exists (the data directory is kept between runs).
if ! out=$(printf '%s\n' "$PASSWORD" | "$BIN/ide-orchestrator" user add "${STORAGE[@]}" --email "$EMAIL" --name "Ada Lovelace" 2>&1); then
  grep -qi "exist\|taken\|already" <<<"$out" || die "could not create the user $EMAIL: $out"
  USER_NOTE="(existing user; its password is the one it was created with)"
fi

console=$(curl -s -o /dev/null -w '%{http_code}' "$ORCH/")
echo
bold "Agentic IDE is running"
echo "    web console   $ORCH/"
[[ "$console" == 200 ]] || echo "    (the console was not built: install Node.js and npm, then make build; the API works)"
echo "    sign in as    $EMAIL"
echo "    password      $PASSWORD${USER_NOTE:+ $USER_NOTE}"
echo "    API           $ORCH/api  (OpenAPI: $ORCH/api/openapi.json)"
echo "    spec-engine   $ENGINE"
echo "    model         $MODEL_NOTE"
echo "    data, logs    $DATA"
echo
bold "Press Ctrl-C to stop both services."
while kill -0 "$ENGINE_PID" 2>/dev/null && kill -0 "$ORCH_PID" 2>/dev/null; do sleep 1; done
kill -0 "$ENGINE_PID" 2>/dev/null || die "spec-engine stopped unexpectedly (see $DATA/engine.log)"
die "ide-orchestrator stopped unexpectedly (see $DATA/orchestrator.log)"
