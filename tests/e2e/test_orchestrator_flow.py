"""End to end: both real binaries, curl for HTTP, python websockets for the stream.

Main flow (login, workflow, refine, stream, approve -> the draft holds the new
files), reject path, a proposal that completes with no WebSocket client, and a
client that disconnects mid-stream and resumes with after_seq. The flow also runs
on PostgreSQL when TEST_PG_URL is set.
"""
import os
import unittest
import uuid

from e2ekit import Stack, create_workflow, curl, refine, wait_proposal, ws_url
from testkit import pg_url_for, ws_collect


class MainFlow(unittest.TestCase):
    database_url = None
    engine_database_url = None

    @classmethod
    def setUpClass(cls):
        cls.stack = Stack(database_url=cls.database_url, engine_database_url=cls.engine_database_url)
        cls.token = cls.stack.user()

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()

    @property
    def orch(self):
        return self.stack.orch

    def test_refine_stream_approve(self):
        wf = create_workflow(self.orch, self.token)
        self.assertEqual(wf["draft"]["revision"], 1)
        self.assertIn("/definition.json", wf["draft"]["files"])
        r = refine(self.orch, self.token, wf["id"], "Add a web-search specialist that cites sources.")
        self.assertIn(r.status, (201, 202), r.text)
        started = r.json()
        self.assertEqual(started["status"], "processing")
        for k in ("proposal_id", "thread_id", "websocket_url", "created_at"):
            self.assertIn(k, started)
        events, code, _ = ws_collect(ws_url(self.orch, started["thread_id"]),
                                     headers={"Authorization": "Bearer " + self.token})
        types = [e["event_type"] for e in events]
        self.assertEqual(types[-1], "end", types)
        self.assertIn("on_tool_start", types)
        self.assertIn("on_state_update", types)
        seqs = [e["seq"] for e in events if "seq" in e]
        self.assertEqual(seqs, sorted(seqs))
        self.assertEqual(len(seqs), len(set(seqs)))
        self.assertEqual(code, 1000)

        p = wait_proposal(self.orch, self.token, started["proposal_id"])
        self.assertEqual(p["status"], "completed", p)
        self.assertIn("/THE_CAST/FactChecker.md", p["generated_files"])
        changes = {c["path"]: c["change"] for c in p["changes"]}
        self.assertEqual(changes.get("/THE_CAST/FactChecker.md"), "added")

        d = curl(self.orch.url, "GET", f"/api/proposals/{p['id']}/diff", token=self.token, headers={"Accept": "text/x-diff"})
        self.assertEqual(d.status, 200)
        self.assertIn("+++ b/THE_CAST/FactChecker.md", d.text)
        dj = curl(self.orch.url, "GET", f"/api/proposals/{p['id']}/diff", token=self.token, headers={"Accept": "application/json"})
        self.assertEqual(dj.status, 200)
        self.assertTrue(any(c["path"] == "/THE_CAST/FactChecker.md" for c in dj.json()["changes"]))

        a = curl(self.orch.url, "POST", f"/api/proposals/{p['id']}/approve", {}, token=self.token)
        self.assertEqual(a.status, 200, a.text)
        again = curl(self.orch.url, "POST", f"/api/proposals/{p['id']}/approve", {}, token=self.token)
        self.assertEqual(again.status, 409, again.text)

        draft = curl(self.orch.url, "GET", f"/api/workflows/{wf['id']}/draft", token=self.token).json()
        self.assertIn("/THE_CAST/FactChecker.md", draft["files"])
        self.assertEqual(draft["files"]["/THE_CAST/FactChecker.md"]["content"],
                         p["generated_files"]["/THE_CAST/FactChecker.md"]["content"])
        self.assertGreater(draft["revision"], 1)

        lst = curl(self.orch.url, "GET", f"/api/workflows/{wf['id']}/proposals", token=self.token).json()
        self.assertEqual(lst["items"][0]["status"], "approved")

    def test_idempotency_key_replays_a_refinement_instead_of_starting_another(self):
        wf = create_workflow(self.orch, self.token)
        path = f"/api/workflows/{wf['id']}/refinements"
        body = {"user_prompt": "Add a web-search specialist that cites sources."}
        key = str(uuid.uuid4())
        first = curl(self.orch.url, "POST", path, body, token=self.token, headers={"Idempotency-Key": key})
        self.assertEqual(first.status, 202, first.text)
        self.assertNotIn("idempotent-replayed", first.headers)
        started = first.json()
        p = wait_proposal(self.orch, self.token, started["proposal_id"])
        self.assertEqual(p["status"], "completed", p)
        # The client did not see the answer and sends the request again, the key in the draft's
        # quoted form this time: the recorded proposal comes back, as it is now.
        again = curl(self.orch.url, "POST", path, body, token=self.token, headers={"Idempotency-Key": f'"{key}"'})
        self.assertEqual(again.status, 202, again.text)
        self.assertEqual(again.headers.get("idempotent-replayed"), "true")
        self.assertEqual(again.headers.get("location"), f"/api/proposals/{started['proposal_id']}")
        replay = again.json()
        self.assertEqual(replay["proposal_id"], started["proposal_id"])
        self.assertEqual(replay["thread_id"], started["thread_id"])
        self.assertEqual(replay["status"], "completed")
        self.assertEqual(replay["websocket_url"], started["websocket_url"])
        lst = curl(self.orch.url, "GET", f"/api/workflows/{wf['id']}/proposals", token=self.token).json()
        self.assertEqual([i["id"] for i in lst["items"]], [started["proposal_id"]], "one proposal, one engine run")
        st = self.stack.engine.state(started["thread_id"])
        self.assertEqual(st[0], 200)

        # The key with another request: 422, nothing recorded.
        other = curl(self.orch.url, "POST", path, {"user_prompt": "Something else."}, token=self.token,
                     headers={"Idempotency-Key": key})
        self.assertEqual(other.status, 422, other.text)
        problem = other.json()
        self.assertTrue(problem["type"].endswith("idempotency-key-reused"), problem)
        self.assertEqual(problem["id"], started["proposal_id"])
        self.assertIn(key, problem["detail"])
        # A key outside the rule: 400 naming the header.
        for bad in ("x" * 256, '"unclosed'):
            r = curl(self.orch.url, "POST", path, body, token=self.token, headers={"Idempotency-Key": bad})
            self.assertEqual(r.status, 400, r.text)
            self.assertEqual(r.json()["errors"][0]["field"], "Idempotency-Key", r.text)
        lst = curl(self.orch.url, "GET", f"/api/workflows/{wf['id']}/proposals", token=self.token).json()
        self.assertEqual(len(lst["items"]), 1)

    def test_reject(self):
        wf = create_workflow(self.orch, self.token)
        started = refine(self.orch, self.token, wf["id"]).json()
        p = wait_proposal(self.orch, self.token, started["proposal_id"])
        self.assertEqual(p["status"], "completed", p)
        r = curl(self.orch.url, "POST", f"/api/proposals/{p['id']}/reject", {}, token=self.token)
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(r.json()["proposal"]["status"], "rejected")
        a = curl(self.orch.url, "POST", f"/api/proposals/{p['id']}/approve", {}, token=self.token)
        self.assertEqual(a.status, 409, a.text)
        draft = curl(self.orch.url, "GET", f"/api/workflows/{wf['id']}/draft", token=self.token).json()
        self.assertNotIn("/THE_CAST/FactChecker.md", draft["files"])
        self.assertEqual(draft["revision"], 1)

    def test_approve_conflict_names_paths(self):
        wf = create_workflow(self.orch, self.token)
        started = refine(self.orch, self.token, wf["id"]).json()
        p = wait_proposal(self.orch, self.token, started["proposal_id"])
        self.assertEqual(p["status"], "completed", p)
        # a person edits the plan by hand while the proposal waits for review
        put = curl(self.orch.url, "PUT", f"/api/workflows/{wf['id']}/draft/files",
                   {"files": {"/THE_SPEC/plan.md": {"content": ["# Plan", "", "Rewritten by hand."]}}, "base_revision": 1},
                   token=self.token)
        self.assertEqual(put.status, 200, put.text)
        self.assertEqual(put.json()["revision"], 2)
        stale = curl(self.orch.url, "PUT", f"/api/workflows/{wf['id']}/draft/files",
                     {"files": {"/notes.md": {"content": ["x"]}}, "base_revision": 1}, token=self.token)
        self.assertEqual(stale.status, 409, stale.text)
        a = curl(self.orch.url, "POST", f"/api/proposals/{p['id']}/approve", {}, token=self.token)
        self.assertEqual(a.status, 409, a.text)
        self.assertIn("/THE_SPEC/plan.md", a.json()["paths"])
        self.assertIn("/THE_SPEC/plan.md", a.json()["detail"])
        draft = curl(self.orch.url, "GET", f"/api/workflows/{wf['id']}/draft", token=self.token).json()
        self.assertNotIn("/THE_CAST/FactChecker.md", draft["files"], "nothing may be applied on conflict")

    def test_completes_without_any_websocket_client(self):
        wf = create_workflow(self.orch, self.token)
        started = refine(self.orch, self.token, wf["id"]).json()
        p = wait_proposal(self.orch, self.token, started["proposal_id"])
        self.assertEqual(p["status"], "completed", p)
        self.assertIn("/THE_CAST/FactChecker.md", p["generated_files"])

    def test_reconnect_with_after_seq_gets_every_event_once(self):
        wf = create_workflow(self.orch, self.token)
        started = refine(self.orch, self.token, wf["id"]).json()
        url = ws_url(self.orch, started["thread_id"])
        hdr = {"Authorization": "Bearer " + self.token}
        full, _, _ = ws_collect(url, headers=hdr)
        first, _, _ = ws_collect(url, headers=hdr, stop_after=5)  # disconnect mid-stream
        self.assertEqual(len(first), 5)
        last = first[-1]["seq"]
        rest, _, _ = ws_collect(url + f"?after_seq={last}", headers=hdr)
        got = [e["seq"] for e in first + rest]
        self.assertEqual(got, [e["seq"] for e in full])
        self.assertEqual(len(got), len(set(got)))
        self.assertEqual((first + rest)[-1]["event_type"], "end")
        # A browser that already saw `end` and reconnects past it gets a clean close, no error event.
        after_end, code, _ = ws_collect(url + f"?after_seq={full[-1]['seq']}", headers=hdr)
        self.assertEqual(after_end, [])
        self.assertEqual(code, 1000)

    def test_token_in_query_and_subprotocol(self):
        wf = create_workflow(self.orch, self.token)
        started = refine(self.orch, self.token, wf["id"]).json()
        ev, _, _ = ws_collect(ws_url(self.orch, started["thread_id"], "?token=" + self.token))
        self.assertEqual(ev[-1]["event_type"], "end")
        ev, _, proto = ws_collect(ws_url(self.orch, started["thread_id"]), subprotocols=["bearer", self.token])
        self.assertEqual(proto, "bearer")
        self.assertEqual(ev[-1]["event_type"], "end")


@unittest.skipUnless(os.environ.get("TEST_PG_URL"), "TEST_PG_URL not set")
class MainFlowPostgres(MainFlow):
    database_url = None

    """The same flow with both services on PostgreSQL, each on its own fresh database."""

    @classmethod
    def setUpClass(cls):
        suffix = uuid.uuid4().hex[:10]
        cls.database_url = pg_url_for("ide_orchestrator_e2e_" + suffix)
        cls.engine_database_url = pg_url_for("deepagents_runtime_e2e_" + suffix)
        super().setUpClass()

    def test_admin_commands_print_no_server_notices(self):
        # The database exists and is migrated: the migrations' CREATE TABLE IF NOT EXISTS makes
        # PostgreSQL send a NOTICE, which libpq would print on stderr of every command.
        r = self.orch.cli("user add", "--email", f"notice-{uuid.uuid4().hex[:8]}@example.com", "--name", "N",
                          stdin="s3cret-passw0rd!\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("NOTICE", r.stderr)


if __name__ == "__main__":
    unittest.main()
