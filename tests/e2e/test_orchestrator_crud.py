"""Workflow and proposal housekeeping end to end on the real binaries: rename, soft delete (its
engine threads deleted), one version with its files, publishing an unchanged draft, a user's
proposals across workflows, and re-running a refinement (after a failure, and as the way out
of a conflicting approve)."""
import os
import sqlite3
import tempfile
import unittest
import uuid

from e2ekit import (Orchestrator, Stack, create_workflow, curl, refine, scripted_engine, slow_script, stop_and_clean,
                    wait_proposal)
from testkit import wait_until


class Crud(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stack = Stack()
        cls.orch = cls.stack.orch
        cls.token = cls.stack.user()
        cls.other = cls.stack.user()

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()

    def call(self, method, path, body=None, token=None, headers=None, raw=None):
        return curl(self.orch.url, method, path, body, token=token or self.token, headers=headers, raw=raw)

    def assert_problem(self, r, status, field=None):
        self.assertEqual(r.status, status, r.text)
        self.assertTrue(r.header("content-type").startswith("application/problem+json"), r.headers)
        if field:
            self.assertEqual(r.json()["errors"][0]["field"], field, r.text)
        return r.json()

    def completed_proposal(self, wf_id, prompt="Add a web-search specialist agent."):
        started = refine(self.orch, self.token, wf_id, prompt)
        self.assertEqual(started.status, 202, started.text)
        p = wait_proposal(self.orch, self.token, started.json()["proposal_id"])
        self.assertEqual(p["status"], "completed", p)
        return p

    def test_rename(self):
        wf = create_workflow(self.orch, self.token, name="Before")
        r = self.call("PATCH", f"/api/workflows/{wf['id']}", {"name": "Research crew"})
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(r.json()["name"], "Research crew")
        self.assertEqual(r.json()["role"], "owner")
        r = self.call("PATCH", f"/api/workflows/{wf['id']}", {"description": "Finds and checks sources"})
        self.assertEqual((r.json()["name"], r.json()["description"]), ("Research crew", "Finds and checks sources"))
        got = self.call("GET", f"/api/workflows/{wf['id']}").json()
        self.assertEqual(got["name"], "Research crew")
        self.assertGreater(got["updated_at"], wf["updated_at"])
        # The rules of POST /api/workflows, naming the field.
        self.assert_problem(self.call("PATCH", f"/api/workflows/{wf['id']}", {"name": ""}), 400, "name")
        self.assert_problem(self.call("PATCH", f"/api/workflows/{wf['id']}", {"name": "n" * 201}), 400, "name")
        self.assert_problem(self.call("PATCH", f"/api/workflows/{wf['id']}", {"name": 7}), 400, "name")
        self.assert_problem(self.call("PATCH", f"/api/workflows/{wf['id']}", {"description": "d" * 2001}), 400, "description")
        self.assert_problem(self.call("PATCH", f"/api/workflows/{wf['id']}", {}), 400, "(body)")
        self.assertEqual(self.call("PATCH", f"/api/workflows/{wf['id']}", raw="name=x",
                                   headers={"Content-Type": "application/x-www-form-urlencoded"}).status, 415)
        self.assert_problem(self.call("PATCH", f"/api/workflows/{wf['id']}", {"name": "Mine"}, token=self.other), 404)
        self.assertEqual(self.call("GET", f"/api/workflows/{wf['id']}").json()["name"], "Research crew")

    def test_one_version_with_its_files(self):
        wf = create_workflow(self.orch, self.token)
        self.assert_problem(self.call("GET", f"/api/workflows/{wf['id']}/versions/1"), 404)
        pub = self.call("POST", f"/api/workflows/{wf['id']}/versions", {})
        self.assertEqual(pub.status, 201, pub.text)
        v = self.call("GET", f"/api/workflows/{wf['id']}/versions/1")
        self.assertEqual(v.status, 200, v.text)
        body = v.json()
        self.assertEqual((body["number"], body["workflow_id"]), (1, wf["id"]))
        self.assertEqual({p: f["content"] for p, f in body["files"].items()},
                         {p: f["content"] for p, f in wf["draft"]["files"].items()})
        for bad in ("2", "0", "-1", "abc", "1.0", "99999999999999999999"):
            self.assert_problem(self.call("GET", f"/api/workflows/{wf['id']}/versions/{bad}"), 404)
        self.assert_problem(self.call("GET", f"/api/workflows/{wf['id']}/versions/1", token=self.other), 404)

    def test_publishing_an_unchanged_draft_returns_the_latest_version(self):
        wf = create_workflow(self.orch, self.token)
        first = self.call("POST", f"/api/workflows/{wf['id']}/versions", {})
        self.assertEqual(first.status, 201, first.text)
        self.assertTrue(first.json()["created"])
        self.assertEqual(first.header("location"), f"/api/workflows/{wf['id']}/versions/1")
        again = self.call("POST", f"/api/workflows/{wf['id']}/versions", {"base_revision": 1})
        self.assertEqual(again.status, 200, again.text)
        self.assertFalse(again.json()["created"])
        self.assertEqual((again.json()["id"], again.json()["number"]), (first.json()["id"], 1))
        self.assertEqual(again.json()["files"], first.json()["files"])
        self.assertEqual(again.header("location"), f"/api/workflows/{wf['id']}/versions/1")
        self.assertEqual(len(self.call("GET", f"/api/workflows/{wf['id']}/versions").json()["items"]), 1)
        put = self.call("PUT", f"/api/workflows/{wf['id']}/draft/files",
                        {"files": {"/notes.md": {"content": ["n"]}}, "base_revision": 1})
        self.assertEqual(put.status, 200, put.text)
        second = self.call("POST", f"/api/workflows/{wf['id']}/versions", {})
        self.assertEqual((second.status, second.json()["number"], second.json()["created"]), (201, 2, True))

    def test_my_proposals_across_workflows(self):
        token = self.stack.user()
        mine = []
        for name in ("One", "Two"):
            wf = create_workflow(self.orch, token, name=name)
            started = refine(self.orch, token, wf["id"]).json()
            mine.append(wait_proposal(self.orch, token, started["proposal_id"]))
        r = self.call("POST", f"/api/proposals/{mine[0]['id']}/reject", {}, token=token)
        self.assertEqual(r.status, 200, r.text)
        everything = self.call("GET", "/api/proposals", token=token).json()
        self.assertEqual([p["id"] for p in everything["items"]], [mine[1]["id"], mine[0]["id"]])
        self.assertIsNone(everything["next_cursor"])
        self.assertNotIn("generated_files", everything["items"][0], "lists leave the files out")
        rejected = self.call("GET", "/api/proposals?status=rejected", token=token).json()["items"]
        self.assertEqual([p["id"] for p in rejected], [mine[0]["id"]])
        both = self.call("GET", "/api/proposals?status=rejected,completed", token=token).json()["items"]
        self.assertEqual(len(both), 2)
        self.assertEqual(self.call("GET", "/api/proposals?status=approved", token=token).json()["items"], [])
        self.assert_problem(self.call("GET", "/api/proposals?status=done", token=token), 400, "status")
        self.assert_problem(self.call("GET", "/api/proposals?limit=0", token=token), 400, "limit")
        page = self.call("GET", "/api/proposals?limit=1", token=token).json()
        self.assertEqual(len(page["items"]), 1)
        rest = self.call("GET", "/api/proposals?limit=1&cursor=" + page["next_cursor"], token=token).json()
        self.assertEqual([p["id"] for p in page["items"] + rest["items"]], [mine[1]["id"], mine[0]["id"]])
        others = [p["id"] for p in self.call("GET", "/api/proposals", token=self.other).json()["items"]]
        self.assertFalse(set(others) & {p["id"] for p in mine})

    def test_conflicting_approve_offers_the_retry(self):
        wf = create_workflow(self.orch, self.token)
        p = self.completed_proposal(wf["id"], "Add a fact checker.")
        put = self.call("PUT", f"/api/workflows/{wf['id']}/draft/files",
                        {"files": {"/THE_SPEC/plan.md": {"content": ["# Plan", "", "Rewritten by hand."]}},
                         "base_revision": 1})
        self.assertEqual(put.status, 200, put.text)
        conflict = self.assert_problem(self.call("POST", f"/api/proposals/{p['id']}/approve", {}), 409)
        self.assertIn("/THE_SPEC/plan.md", conflict["paths"])
        self.assertEqual(conflict["retry"], {"method": "POST", "href": f"/api/proposals/{p['id']}/retry"})
        self.assertIn(conflict["retry"]["href"], conflict["detail"])

        r = self.call(conflict["retry"]["method"], conflict["retry"]["href"], {})
        self.assertEqual(r.status, 202, r.text)
        started = r.json()
        self.assertEqual(started["status"], "processing")
        self.assertEqual(started["retry_of"]["id"], p["id"])
        self.assertEqual(started["retry_of"]["status"], "rejected", "superseded by the re-run")
        self.assertEqual(r.header("location"), f"/api/proposals/{started['proposal_id']}")
        for k in ("proposal_id", "thread_id", "websocket_url", "created_at"):
            self.assertIn(k, started)
        fresh = wait_proposal(self.orch, self.token, started["proposal_id"])
        self.assertEqual(fresh["status"], "completed", fresh)
        self.assertEqual(fresh["user_prompt"], "Add a fact checker.")
        a = self.call("POST", f"/api/proposals/{fresh['id']}/approve", {})
        self.assertEqual(a.status, 200, a.text)
        self.assertEqual(a.json()["draft"]["files"]["/THE_SPEC/plan.md"]["content"],
                         fresh["generated_files"]["/THE_SPEC/plan.md"]["content"])
        # Once per proposal; never an approved one.
        twice = self.assert_problem(self.call("POST", f"/api/proposals/{p['id']}/retry", {}), 409)
        self.assertEqual(twice["retry_proposal_id"], fresh["id"])
        approved = self.assert_problem(self.call("POST", f"/api/proposals/{fresh['id']}/retry", {}), 409)
        self.assertEqual(approved["current_status"], "approved")
        self.assert_problem(self.call("POST", f"/api/proposals/{p['id']}/retry", {}, token=self.other), 404)
        self.assert_problem(self.call("POST", f"/api/proposals/{uuid.uuid4()}/retry", {}), 404)


class RetryAfterEngineOutage(unittest.TestCase):
    def test_a_refinement_that_failed_while_the_engine_was_down_is_rerun(self):
        stack = Stack()
        try:
            token = stack.user()
            wf = create_workflow(stack.orch, token)
            stack.engine.stop()
            down = refine(stack.orch, token, wf["id"], "Add a critic agent.")
            self.assertEqual(down.status, 503, down.text)
            failed = curl(stack.orch.url, "GET", f"/api/workflows/{wf['id']}/proposals", token=token).json()["items"][0]
            self.assertEqual(failed["status"], "failed")
            stack.engine.start()
            r = curl(stack.orch.url, "POST", f"/api/proposals/{failed['id']}/retry", {}, token=token)
            self.assertEqual(r.status, 202, r.text + stack.logs())
            self.assertEqual(r.json()["retry_of"]["status"], "failed", "a failed proposal stays failed")
            p = wait_proposal(stack.orch, token, r.json()["proposal_id"])
            self.assertEqual(p["status"], "completed", p)
            self.assertEqual(p["user_prompt"], "Add a critic agent.")
            mine = curl(stack.orch.url, "GET", "/api/proposals?status=failed", token=token).json()["items"]
            self.assertEqual([x["id"] for x in mine], [failed["id"]])
        finally:
            stack.close()


class DeleteWorkflow(unittest.TestCase):
    def test_soft_delete_hides_everything_and_deletes_the_engine_threads(self):
        d = tempfile.mkdtemp(prefix="e2e-delete-")
        engine = scripted_engine(d, script=slow_script(os.path.join(d, "slow.json"), turns=8, words=200)).start()
        orch = Orchestrator(d, engine.base).start()
        try:
            orch.add_user("del@example.com")
            token = orch.login("del@example.com")
            orch.add_user("ed@example.com")
            editor = orch.login("ed@example.com")
            wf = create_workflow(orch, token, name="Doomed")
            keep = create_workflow(orch, token, name="Kept")
            r = curl(orch.url, "PUT", f"/api/workflows/{wf['id']}/members/ed@example.com", {"role": "editor"}, token=token)
            self.assertEqual(r.status, 201, r.text)
            done = refine(orch, token, wf["id"]).json()
            self.assertEqual(wait_proposal(orch, token, done["proposal_id"], timeout=120)["status"], "completed")
            running = refine(orch, editor, wf["id"]).json()
            self.assertEqual(curl(orch.url, "POST", f"/api/workflows/{wf['id']}/versions", {}, token=token).status, 201)

            self.assertEqual(curl(orch.url, "DELETE", f"/api/workflows/{wf['id']}", token=editor).status, 403)
            r = curl(orch.url, "DELETE", f"/api/workflows/{wf['id']}", token=token)
            self.assertEqual(r.status, 204, r.text)
            # Gone for everyone, everywhere; the other workflow is untouched.
            for t in (token, editor):
                for path in (f"/api/workflows/{wf['id']}", f"/api/workflows/{wf['id']}/draft",
                             f"/api/workflows/{wf['id']}/versions", f"/api/workflows/{wf['id']}/versions/1",
                             f"/api/workflows/{wf['id']}/members", f"/api/workflows/{wf['id']}/proposals",
                             f"/api/proposals/{done['proposal_id']}", f"/api/proposals/{running['proposal_id']}"):
                    self.assertEqual(curl(orch.url, "GET", path, token=t).status, 404, path)
                self.assertEqual([w["id"] for w in curl(orch.url, "GET", "/api/workflows", token=t).json()["items"]],
                                 [keep["id"]] if t == token else [])
                self.assertEqual(curl(orch.url, "GET", "/api/proposals", token=t).json()["items"], [])
            self.assertEqual(curl(orch.url, "DELETE", f"/api/workflows/{wf['id']}", token=token).status, 404)
            self.assertEqual(curl(orch.url, "GET", f"/api/workflows/{keep['id']}", token=token).status, 200)
            # The running refinement was cancelled and its engine thread deleted at once...
            wait_until(lambda: engine.state(running["thread_id"])[0] == 404, timeout=30, what="running thread deleted")
            # ... the finished one's by the sweeper (it runs at start, then every minute).
            self.assertEqual(engine.state(done["thread_id"])[0], 200)
            orch.stop()
            orch.start()
            wait_until(lambda: engine.state(done["thread_id"])[0] == 404, timeout=30, what="finished thread deleted")
            db = sqlite3.connect(os.path.join(d, "orch-data", "orchestrator.db"), timeout=30)
            try:
                actions = dict(db.execute("SELECT subject_id, action FROM audit_log WHERE action IN "
                                          "('workflow.delete', 'proposal.cancel')").fetchall())
                status = db.execute("SELECT status FROM proposals WHERE id = ?", (running["proposal_id"],)).fetchone()[0]
                deleted_at = db.execute("SELECT deleted_at FROM workflows WHERE id = ?", (wf["id"],)).fetchone()[0]
            finally:
                db.close()
            self.assertEqual(actions.get(wf["id"]), "workflow.delete")
            self.assertEqual(actions.get(running["proposal_id"]), "proposal.cancel")
            self.assertEqual(status, "cancelled")
            self.assertTrue(deleted_at, "a soft delete keeps the row")
        finally:
            stop_and_clean([engine, orch], d)


if __name__ == "__main__":
    unittest.main()
