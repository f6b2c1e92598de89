# Shell helpers shared by scripts/demo.sh and scripts/up.sh (sourced, not run): start the
# two services on loopback, wait for them, stop them. The caller defines die() and BIN.

PY=${PY:-/usr/bin/python3}

# free_port: prints a free loopback TCP port.
free_port() { $PY -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# port_free PORT: true if nothing listens on 127.0.0.1:PORT.
port_free() { $PY -c 'import socket,sys;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(("127.0.0.1",int(sys.argv[1])))' "$1" 2>/dev/null; }

# wait_health URL PID NAME: waits up to 15 s for URL/health; dies if PID exits first.
wait_health() {
  for _ in $(seq 1 150); do
    if curl -fsS -o /dev/null "$1/health" 2>/dev/null; then return 0; fi
    kill -0 "$2" 2>/dev/null || die "$3 exited during start-up (see its log)"
    sleep 0.1
  done
  die "$3 did not answer $1/health within 15 s"
}

# stop_pid PID NAME: SIGTERM, wait up to 10 s, then SIGKILL.
stop_pid() {
  local pid=$1 name=$2
  [[ -z "$pid" ]] && return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then echo "    $name did not stop in 10 s; killing it"; kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
}

# engine_command PORT DATA_DIR: sets ENGINE_CMD (array), ORCH_MODEL_FLAGS (array, for
# `ide-orchestrator serve`), SCRIPTED ("1" or "") and MODEL_NOTE. With OPENAI_API_KEY or
# OPENAI_BASE_URL the engine calls that OpenAI-compatible server, and OPENAI_MODEL (optional)
# names the model: the orchestrator's --refinement-model, plus the engine's --model-override
# openai:MODEL so runs of workflows whose definitions name another model use it too.
# Otherwise the offline scripted model replays config/demo/demo-script.json (the refinement,
# then runs of the two templates).
engine_command() {
  ENGINE_CMD=("$BIN/spec-engine")
  ORCH_MODEL_FLAGS=()
  SCRIPTED=""
  if "$BIN/spec-engine" --help 2>&1 | grep -qE '^\s+serve\b'; then ENGINE_CMD+=(serve); fi
  ENGINE_CMD+=(--host 127.0.0.1 --port "$1" --data-dir "$2")
  if [[ -n "${OPENAI_API_KEY:-}" || -n "${OPENAI_BASE_URL:-}" ]]; then
    MODEL_NOTE="real model ${OPENAI_MODEL:-(as each agent definition names it)} via ${OPENAI_BASE_URL:-https://api.openai.com/v1}"
    if [[ -n "${OPENAI_MODEL:-}" ]]; then
      ENGINE_CMD+=(--model-override "openai:$OPENAI_MODEL")
      ORCH_MODEL_FLAGS=(--refinement-model "$OPENAI_MODEL")
    fi
  else
    SCRIPTED=1
    ENGINE_CMD+=(--model-override "scripted:$ROOT/config/demo/demo-script.json")
    MODEL_NOTE="OFFLINE SCRIPTED MODEL (no OPENAI_API_KEY or OPENAI_BASE_URL): the engine replays config/demo/demo-script.json instead of calling an LLM"
  fi
}
