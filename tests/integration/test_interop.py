"""Interop with streams recorded from the original Python engine (issue 3 "Must show" 5).

For each pair in tests/fixtures/interop (README there): a fake engine serves the recorded
stream exactly as recorded (HTTP invoke + state, WebSocket events without `seq`) to the
REAL `ide-orchestrator serve`. Checks:
  1. the proposal completes server-side with no browser connected, and its
     generated_files equal the recorded final state's generated_files, file for file
     (content, created_at, modified_at);
  2. a browser client on /api/ws/refinements/{thread_id} receives every recorded event
     unchanged: same events, same order, nothing added or dropped.
Needs BIN_DIR/ide-orchestrator; skipped (with the reason) when the binary or the
recordings are missing.
"""
import json
import os
import shutil
import tempfile
import unittest
import uuid

from e2ekit import Orchestrator, create_workflow, curl, refine, ws_url
from fake_engine import RecordedEngine, interop_dir
from testkit import BIN_DIR, wait_until, ws_collect

PAIRS = [("all_events.json", "thread_state.json"),
         ("isolation_events_1.json", "isolation_state_1.json"),
         ("rejection_events.json", "rejection_state.json")]
PASSWORD = "interop-passw0rd!"


def load(name):
    with open(os.path.join(interop_dir(), name), encoding="utf-8") as f:
        return json.load(f)


def file_entries(files):
    """Path -> (content, created_at, modified_at), the comparable parts of the engine file shape."""
    return {p: (f.get("content"), f.get("created_at"), f.get("modified_at")) for p, f in files.items()}


class RecordedStreamInterop(unittest.TestCase):
    def run_pair(self, events_file, state_file):
        events, state = load(events_file), load(state_file)
        self.assertTrue(all("seq" not in e for e in events), "recordings carry no seq")
        workdir = tempfile.mkdtemp(prefix="interop-")
        engine = RecordedEngine(events, state)
        orch = Orchestrator(workdir, engine.url)
        ok = False
        try:
            orch.start()
            email = f"interop-{uuid.uuid4().hex[:8]}@example.com"
            orch.add_user(email, PASSWORD, name="Interop Tester")
            token = orch.login(email, PASSWORD)

            wf = create_workflow(orch, token, name=f"Interop {events_file}", template="single-agent")
            r = refine(orch, token, wf["id"], "Refine the specification as recorded.")
            self.assertEqual(r.status, 202, r.text)
            ref = r.json()
            proposal_id, thread_id = ref["proposal_id"], ref["thread_id"]
            self.assertEqual(len(engine.jobs), 1)
            self.assertEqual(engine.jobs[0].get("job_id"), thread_id)

            # 1. Finalised server-side with no browser connected.
            def final():
                p = curl(orch.url, "GET", f"/api/proposals/{proposal_id}", token=token)
                self.assertEqual(p.status, 200, p.text)
                return p.json() if p.json()["status"] != "processing" else None
            proposal = wait_until(final, timeout=30, interval=0.1, what=f"proposal {proposal_id} to leave processing")
            self.assertEqual(proposal["status"], "completed", proposal.get("error"))
            got = proposal["generated_files"]
            want = state["generated_files"]
            self.assertEqual(sorted(got), sorted(want), "same set of paths")
            for path in want:
                self.assertEqual(file_entries(got)[path], file_entries(want)[path], f"file {path}")

            # 2. The browser-facing stream carries every recorded event through unchanged.
            received, _, _ = ws_collect(ws_url(orch, thread_id, f"?token={token}"), timeout=30)
            self.assertEqual(len(received), len(events),
                             [e.get("event_type") for e in received])
            for i, (rec, got_ev) in enumerate(zip(events, received)):
                self.assertEqual(got_ev.get("event_type"), rec["event_type"], f"event {i}")
                self.assertEqual(got_ev.get("data"), rec["data"], f"event {i} ({rec['event_type']}) data")
            self.assertEqual(received, events, "the browser stream must carry every recorded event unchanged")
            ok = True
        finally:
            orch.stop()
            engine.close()
            if not ok:
                print(f"---- orchestrator log ({events_file})\n{orch.tail()}")
            shutil.rmtree(workdir, ignore_errors=True)

    def test_all_events(self):
        self.run_pair(*PAIRS[0])

    def test_isolation_events(self):
        self.run_pair(*PAIRS[1])

    def test_rejection_events(self):
        self.run_pair(*PAIRS[2])


if __name__ == "__main__":
    unittest.main()
