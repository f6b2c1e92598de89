#!/usr/bin/env bash
# The main job, end to end (issue 3 "make demo"): starts spec-engine and
# ide-orchestrator on free loopback ports with throwaway SQLite data, creates a
# user, creates a workflow from the multi-agent template, asks the AI to refine
# it, prints the live event stream, the change summary and the diff, approves
# the proposal and prints the resulting draft. Builds nothing (the Makefile's
# `demo` target builds first). Exits non-zero if any step fails.
#
# Model: with OPENAI_API_KEY set (and optionally OPENAI_BASE_URL) the engine uses
# the real model; otherwise the offline scripted model replays
# config/demo/refinement-script.json, and the demo says so.
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

# api METHOD PATH [JSON] -> body in $TMP/body, status in $STATUS
api() {
  local args=(-sS -o "$TMP/body" -w '%{http_code}' -X "$1" "$ORCH/api$2" -H 'Accept: application/json')
  [[ -n "${TOKEN:-}" ]] && args+=(-H "Authorization: Bearer $TOKEN")
  [[ $# -ge 3 ]] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
  STATUS=$(curl "${args[@]}") || die "curl $1 $2 failed"
}
expect() {  # expect CODE... : the last api call must have answered one of these
  for c in "$@"; do [[ "$STATUS" == "$c" ]] && return 0; done
  echo "    HTTP $STATUS:"; sed 's/^/    /' "$TMP/body"; echo
  die "unexpected HTTP status $STATUS (wanted $*)"
}
jget() { $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); 
for k in sys.argv[2].split("."): d=d[k]
print(d)' "$TMP/body" "$1"; }

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
  >"$TMP/orchestrator.log" 2>&1 &
ORCH_PID=$!
wait_health "$ORCH" "$ORCH_PID" ide-orchestrator
info "ide-orchestrator  $ORCH  (pid $ORCH_PID, SQLite in a temp dir, fresh JWT secret)"

# ---------------------------------------------------------------- user + login
step "Creating a user and signing in"
EMAIL="ada@example.com"; PASSWORD="correct horse battery staple"
USER_ID=$(printf '%s\n' "$PASSWORD" | "$BIN/ide-orchestrator" user add "${ORCH_STORAGE[@]}" --email "$EMAIL" --name "Ada Lovelace" 2>>"$TMP/orchestrator.log") \
  || die "ide-orchestrator user add failed"
info "user $EMAIL created (id $USER_ID)"
api POST /auth/login "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\"}"; expect 200
TOKEN=$(jget token)
info "signed in; token expires at $(jget expires_at)"

# ---------------------------------------------------------------- workflow
step "Creating a workflow from the multi-agent template"
api POST /workflows '{"name":"Market Briefings","description":"Weekly competitor briefings for the sales team","template":"multi-agent"}'
expect 201
WF=$(jget id)
info "workflow $WF"
api GET "/workflows/$WF/draft"; expect 200
$PY - "$TMP/body" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"    draft revision {d['revision']}, {len(d['files'])} files:")
for p, f in sorted(d["files"].items()):
    c = f["content"]
    print(f"      {p:<36} {len(c) - (len(c) > 1 and c[-1] == ''):>4} lines")
PYEOF

# ---------------------------------------------------------------- refinement
PROMPT="Add a fact-checking specialist: before the Writer drafts the report, a FactChecker should verify each finding in /research/findings.md against a second independent source and flag anything it cannot confirm. The Coordinator should delegate to it."
step "Asking the AI to refine the workflow"
info "prompt: \"$PROMPT\""
BODY=$($PY -c 'import json,sys;print(json.dumps({"user_prompt":sys.argv[1],"context_file_path":"/THE_SPEC/plan.md"}))' "$PROMPT")
api POST "/workflows/$WF/refinements" "$BODY"; expect 202 201
PROPOSAL=$(jget proposal_id); THREAD=$(jget thread_id); WSPATH=$(jget websocket_url)
info "proposal $PROPOSAL, engine thread $THREAD (status $(jget status))"

step "Live event stream ($WSPATH)"
if [[ "$WSPATH" == ws://* || "$WSPATH" == wss://* ]]; then WS_URL="$WSPATH"; else WS_URL="ws://127.0.0.1:$OPORT$WSPATH"; fi
TOKEN="$TOKEN" $PY - "$WS_URL" <<'PYEOF' || die "the refinement did not complete (see the events above)"
import asyncio, json, os, sys
import websockets

def short(s, n=110):
    s = " ".join(str(s).split())
    return s if len(s) <= n else s[: n - 1] + "…"

async def main(url):
    text = {}
    seen_files = None
    status = None
    async with websockets.connect(url, extra_headers={"Authorization": "Bearer " + os.environ["TOKEN"]},
                                  open_timeout=10, max_size=None) as ws:
        async for raw in ws:
            ev = json.loads(raw)
            t, d = ev.get("event_type"), ev.get("data") or {}
            node = d.get("node", "")
            if t == "on_llm_stream":
                text[node] = text.get(node, "") + str(d.get("delta", ""))
                continue
            if text.get(node):
                print(f"    [{node}] says: {short(text[node])}", flush=True)
                text[node] = ""
            if t == "on_tool_start":
                inp = d.get("input") or {}
                if isinstance(inp, str):
                    try: inp = json.loads(inp)
                    except ValueError: inp = {}
                tool = d.get("tool")
                what = inp.get("file_path") or inp.get("path") or inp.get("pattern") or ""
                if tool == "task":
                    what = f"-> sub-agent '{inp.get('subagent_type')}': {short(inp.get('description', ''), 70)}"
                elif tool == "write_todos":
                    what = f"{len(inp.get('todos', []))} todos"
                print(f"    [{node}] tool {tool:<11} {what}", flush=True)
            elif t == "on_tool_end":
                out = str(d.get("output", ""))
                if out.lower().startswith("error"):
                    print(f"    [{node}]   ! {short(out)}", flush=True)
            elif t == "on_state_update":
                todos = d.get("todos") or []
                done = sum(1 for x in todos if isinstance(x, dict) and x.get("status") == "completed")
                line = f"    [{node}] step {d.get('step')}"
                if todos: line += f", todos {done}/{len(todos)} done"
                files = d.get("files")
                if isinstance(files, dict):
                    if seen_files is not None:
                        changed = [p for p in files if p not in seen_files or files[p].get("content") != seen_files[p].get("content")]
                        if changed: line += ", files touched: " + ", ".join(sorted(changed))
                    seen_files = files
                print(line, flush=True)
            elif t == "error":
                print(f"    ERROR: {d.get('error')}", flush=True)
            elif t == "end":
                status = d.get("status")
                print(f"    end of run: {status}", flush=True)
    if status != "completed":
        sys.exit(f"the refinement did not complete (status {status})")

asyncio.run(main(sys.argv[1]))
PYEOF

# ---------------------------------------------------------------- proposal
step "Proposal"
for _ in $(seq 1 100); do  # the tracker finalises server-side; usually already done
  api GET "/proposals/$PROPOSAL"; expect 200
  [[ "$(jget status)" != processing ]] && break
  sleep 0.1
done
[[ "$(jget status)" == completed ]] || die "proposal ended $(jget status): $(jget error 2>/dev/null || true)"
$PY - "$TMP/body" <<'PYEOF'
import json, sys
p = json.load(open(sys.argv[1]))
print(f"    status {p['status']}; change summary:")
for c in p.get("changes", []):
    if c.get("change") == "unchanged": continue
    print(f"      {c['change']:<9} {c['path']:<36} +{c.get('lines_added', 0)} -{c.get('lines_removed', 0)}")
PYEOF

step "Diff against the draft"
STATUS=$(curl -sS -o "$TMP/diff" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" -H 'Accept: text/x-diff' \
  "$ORCH/api/proposals/$PROPOSAL/diff") || die "diff request failed"
[[ "$STATUS" == 200 ]] || { cat "$TMP/diff"; die "diff answered HTTP $STATUS"; }
[[ -s "$TMP/diff" ]] || die "the proposal changes nothing"
head -n 80 "$TMP/diff" | sed 's/^/    /'
LINES=$(wc -l <"$TMP/diff")
[[ $LINES -gt 80 ]] && info "... ($LINES lines in total)"

step "Approving the proposal"
api POST "/proposals/$PROPOSAL/approve" '{}'; expect 200
info "approved"

step "The resulting draft"
api GET "/workflows/$WF/draft"; expect 200
$PY - "$TMP/body" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"    draft {d['id']} revision {d['revision']}, {len(d['files'])} files:")
for p, f in sorted(d["files"].items()):
    c = f["content"]
    print(f"      {p:<36} {len(c) - (len(c) > 1 and c[-1] == ''):>4} lines")
if "/THE_CAST/FactChecker.md" not in d["files"] and "--strict" in sys.argv:
    sys.exit("expected /THE_CAST/FactChecker.md in the draft")
PYEOF
if [[ -z "${OPENAI_API_KEY:-}" ]]; then
  api GET "/workflows/$WF/draft"; $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if "/THE_CAST/FactChecker.md" in d["files"] else "the scripted refinement should have added /THE_CAST/FactChecker.md")' "$TMP/body" \
    || die "the approved draft lacks the new agent file"
fi
OK=1
