#!/usr/bin/env bash
# The README walkthrough, as a script that a test runs (tests/e2e/test_walkthrough.py), so the
# README cannot drift from what the API does: sign in, create a workflow, refine it with AI,
# stream the agent's work, read the proposal and its diff, approve, publish, deploy, run the
# deployed version and show the run's output. The block between the `walkthrough` markers is
# copied verbatim into README.md ("Walkthrough"); a test checks that the two are identical.
#
# Usage: scripts/walkthrough.sh  (against running services; `make demo` starts them and calls it)
# Environment: ORCH (default http://127.0.0.1:8080), EMAIL / PASSWORD of an existing user
# (default ada@example.com / correct horse battery staple, the user `make up` seeds).
# Needs curl and Debian's /usr/bin/python3 with python3-websockets. Exits non-zero on the first
# failed step, printing the problem details the API answered.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ORCH=${ORCH:-http://127.0.0.1:8080}
EMAIL=${EMAIL:-ada@example.com}
PASSWORD=${PASSWORD:-correct horse battery staple}
export TOKEN=""

# api METHOD PATH [JSON] [curl options...]: the API answer on stdout; an error status prints
# the problem details on stderr and fails the step.
api() {
  local method=$1 path=$2; shift 2
  local args=(-sS --fail-with-body -X "$method" "$ORCH$path" -H "Authorization: Bearer $TOKEN")
  if [[ $# -gt 0 && "$1" != -* ]]; then args+=(-H 'Content-Type: application/json' --data-binary "$1"); shift; fi
  curl "${args[@]}" "$@" || { echo >&2; echo "FAILED: $method $path" >&2; return 1; }
}
# j FIELD: one field of the JSON on stdin.
j() { /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
# say TEXT: the walkthrough's own narration (labelled apart from the agents' lines).
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
# wait_final PATH: polls a proposal or run until it leaves `processing`; prints it.
wait_final() {
  local doc
  for _ in $(seq 1 300); do
    doc=$(api GET "$1")
    [[ $(j status <<<"$doc") != processing ]] && { echo "$doc"; return 0; }
    sleep 0.1
  done
  echo "still processing after 30 s: $1" >&2; return 1
}

# >>> walkthrough
say "Sign in"
TOKEN=$(api POST /api/auth/login "{\"email\": \"$EMAIL\", \"password\": \"$PASSWORD\"}" | j token)

say "Create a workflow from the multi-agent template"
WF=$(api POST /api/workflows '{"name": "Market Briefings", "template": "multi-agent"}' | j id)
api GET "/api/workflows/$WF/draft" | scripts/show.py draft

say "Ask the AI to refine it"
REFINEMENT=$(api POST "/api/workflows/$WF/refinements" '{"user_prompt": "Add a FactChecker that verifies each finding in /research/findings.md against a second source before the Writer drafts the report; the Coordinator delegates to it.", "context_file_path": "/THE_SPEC/plan.md"}')
PROPOSAL=$(j proposal_id <<<"$REFINEMENT")

say "Watch the agents work (WebSocket, token as the sub-protocol pair: bearer, <token>)"
scripts/stream.py "$(j websocket_url <<<"$REFINEMENT")"

say "The proposal: what the refinement changed"
wait_final "/api/proposals/$PROPOSAL" | scripts/show.py proposal
api GET "/api/proposals/$PROPOSAL/diff" -H 'Accept: text/x-diff' | sed -n 1,40p

say "Approve it: the files are applied to the draft"
api POST "/api/proposals/$PROPOSAL/approve" '{}' >/dev/null
api GET "/api/workflows/$WF/draft" | scripts/show.py draft

say "Publish the draft as version 1 and deploy it"
api POST "/api/workflows/$WF/versions" '{}' | scripts/show.py version
api POST "/api/workflows/$WF/deploy" '{"version": 1}' | scripts/show.py deployment

say "Run the deployed version and watch it"
RUN=$(api POST "/api/workflows/$WF/runs" '{"input": "Brief the sales team on our three main competitors."}')
scripts/stream.py "$(j websocket_url <<<"$RUN")"

say "The run's output and the files it produced"
wait_final "/api/workflows/$WF/runs/$(j id <<<"$RUN")" | scripts/show.py run
# <<< walkthrough
