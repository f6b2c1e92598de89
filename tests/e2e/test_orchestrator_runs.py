"""End to end: deploy and run workflows (README "Runs") on the real binaries.

Both templates' /definition.json run as shipped on the scripted model
(config/demo/demo-script.json picks each template's script by its entry agent); a run is
finalised with its output and produced files although nobody watches; runs stream through
the orchestrator's WebSocket proxy; the version rules (deployed, a number, "draft"); the
authorization of members (viewers read and watch, cannot start or cancel; strangers see
nothing); pagination; cancel; the per-user cap shared with refinements; deleting the
workflow stops its runs; failure_kind of a run the engine could not be reached for; and the
engine thread of a finished run deleted once the orphan TTL passed.
"""
import os
import sqlite3
import time
import unittest
import uuid

from e2ekit import Stack, create_workflow, curl, refine
from testkit import PROJECT_SOURCE_DIR, wait_until, write_json, ws_collect, ws_status

DEMO_SCRIPTS = os.path.join(PROJECT_SOURCE_DIR, "config", "demo", "demo-script.json")
PROBLEM_BASE = "https://agentic-ide.dev/problems/"


def wait_run(orch, token, wf_id, run_id, timeout=30.0):
    last = {}

    def done():
        r = curl(orch.url, "GET", f"/api/workflows/{wf_id}/runs/{run_id}", token=token)
        if r.status != 200:
            return None
        last["run"] = r.json()
        return last["run"] if last["run"]["status"] != "processing" else None
    try:
        return wait_until(done, timeout=timeout, interval=0.1, what=f"run {run_id}")
    except AssertionError:
        raise AssertionError(f"run {run_id} still {last.get('run', {}).get('status')} after {timeout} s") from None


def deployed_workflow(orch, token, template):
    wf = create_workflow(orch, token, name=f"{template} runs", template=template)
    v = curl(orch.url, "POST", f"/api/workflows/{wf['id']}/versions", {}, token=token)
    assert v.status == 201, v.text
    d = curl(orch.url, "POST", f"/api/workflows/{wf['id']}/deploy", token=token)
    assert d.status == 200, d.text
    return wf


def start_run(orch, token, wf_id, body):
    return curl(orch.url, "POST", f"/api/workflows/{wf_id}/runs", body, token=token)


class Runs(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stack = Stack(script=DEMO_SCRIPTS)
        cls.token = cls.stack.user()

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()

    @property
    def orch(self):
        return self.stack.orch

    def db(self):
        return sqlite3.connect(os.path.join(self.stack.dir, "orch-data", "orchestrator.db"), timeout=30)

    def add_member(self, wf_id, role):
        email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
        self.orch.add_user(email)
        r = curl(self.orch.url, "PUT", f"/api/workflows/{wf_id}/members/{email}", {"role": role}, token=self.token)
        assert r.status == 201, r.text
        return self.orch.login(email)

    def test_multi_agent_template_runs_as_shipped_without_a_watcher(self):
        wf = deployed_workflow(self.orch, self.token, "multi-agent")
        r = start_run(self.orch, self.token, wf["id"], {"input": "Brief the sales team on our competitors."})
        self.assertEqual(r.status, 202, r.text)
        started = r.json()
        self.assertEqual(started["status"], "processing")
        self.assertEqual(started["version"], 1)
        self.assertEqual(started["id"], started["run_id"])
        self.assertEqual(r.header("location"), f"/api/workflows/{wf['id']}/runs/{started['id']}")
        self.assertRegex(started["websocket_url"], rf"^ws://127\.0\.0\.1:\d+/api/ws/runs/{started['thread_id']}$")
        run = wait_run(self.orch, self.token, wf["id"], started["id"])  # nobody watches: the tracker finalises
        self.assertEqual(run["status"], "completed", run)
        self.assertIn("Briefing ready in /report.md", run["output"])
        self.assertEqual(sorted(run["files"]), ["/report.md", "/research/findings.md"],
                         "only the files the run added or changed")
        self.assertIn("F1", "\n".join(run["files"]["/report.md"]["content"]))
        self.assertIsNotNone(run["completed_at"])
        # The stream is replayed from the start through the proxy, authorised by the workflow.
        events, code, _ = ws_collect(started["websocket_url"], headers={"Authorization": "Bearer " + self.token})
        self.assertEqual(code, 1000)
        self.assertEqual(events[-1]["event_type"], "end")
        self.assertEqual(events[-1]["data"]["status"], "completed")
        nodes = {e["data"].get("node") for e in events if e["event_type"] == "on_tool_start"}
        self.assertEqual(nodes, {"Coordinator", "WebResearcher", "Writer"})

    def test_single_agent_template_runs_as_shipped(self):
        wf = deployed_workflow(self.orch, self.token, "single-agent")
        started = start_run(self.orch, self.token, wf["id"], {"input": "What is a vector clock?"}).json()
        events, code, _ = ws_collect(started["websocket_url"], subprotocols=["bearer", self.token])
        self.assertEqual(code, 1000)
        self.assertEqual(events[-1]["data"]["status"], "completed")
        run = wait_run(self.orch, self.token, wf["id"], started["id"])
        self.assertEqual(run["status"], "completed", run)
        self.assertIn("/answer.md", run["output"])
        self.assertEqual(sorted(run["files"]), ["/answer.md", "/notes.md"])

    def test_idempotency_key_replays_a_run_start(self):
        wf = deployed_workflow(self.orch, self.token, "single-agent")
        path = f"/api/workflows/{wf['id']}/runs"
        key = str(uuid.uuid4())
        body = {"input": "What is a vector clock?"}
        first = curl(self.orch.url, "POST", path, body, token=self.token, headers={"Idempotency-Key": key})
        self.assertEqual(first.status, 202, first.text)
        run = wait_run(self.orch, self.token, wf["id"], first.json()["id"])
        self.assertEqual(run["status"], "completed", run)
        again = curl(self.orch.url, "POST", path, body, token=self.token, headers={"Idempotency-Key": key})
        self.assertEqual(again.status, 202, again.text)
        self.assertEqual(again.header("idempotent-replayed"), "true")
        self.assertEqual(again.header("location"), first.header("location"))
        self.assertEqual(again.json()["run_id"], first.json()["run_id"])
        self.assertEqual(again.json()["status"], "completed")
        runs = curl(self.orch.url, "GET", path, token=self.token).json()["items"]
        self.assertEqual([r["id"] for r in runs], [first.json()["id"]], "one run, one engine job")
        other = curl(self.orch.url, "POST", path, {"input": "What is a vector clock?", "version": "draft"},
                     token=self.token, headers={"Idempotency-Key": key})
        self.assertEqual(other.status, 422, other.text)
        self.assertEqual(other.json()["resource"], "run")
        self.assertEqual(len(curl(self.orch.url, "GET", path, token=self.token).json()["items"]), 1)

    def test_version_rules(self):
        wf = create_workflow(self.orch, self.token, name="versions", template="single-agent")
        path = f"/api/workflows/{wf['id']}/runs"
        r = start_run(self.orch, self.token, wf["id"], {"input": "hi"})
        self.assertEqual(r.status, 409, r.text)  # nothing deployed yet
        self.assertEqual(r.json()["type"], PROBLEM_BASE + "invalid-state")
        self.assertIn("deploy", r.json()["detail"])
        for bad in ({"input": "hi", "version": 0}, {"input": "hi", "version": "latest"}, {"input": "hi", "version": 1.5}):
            r = curl(self.orch.url, "POST", path, bad, token=self.token)
            self.assertEqual(r.status, 400, r.text)
            self.assertEqual([e["field"] for e in r.json()["errors"]], ["version"])
        for bad in ({}, {"input": ""}, {"input": 3}):
            r = curl(self.orch.url, "POST", path, bad, token=self.token)
            self.assertEqual(r.status, 400, r.text)
            self.assertEqual([e["field"] for e in r.json()["errors"]], ["input"])
        self.assertEqual(start_run(self.orch, self.token, wf["id"], {"input": "hi", "version": 1}).status, 404)
        # An editor may test the draft before publishing.
        r = start_run(self.orch, self.token, wf["id"], {"input": "Test the draft.", "version": "draft"})
        self.assertEqual(r.status, 202, r.text)
        self.assertIsNone(r.json()["version"])
        self.assertEqual(r.json()["draft_revision"], 1)
        self.assertEqual(wait_run(self.orch, self.token, wf["id"], r.json()["id"])["status"], "completed")
        # Deploying a named version, not the latest; a run without a version uses it.
        self.assertEqual(curl(self.orch.url, "POST", f"/api/workflows/{wf['id']}/versions", {}, token=self.token).status, 201)
        draft = curl(self.orch.url, "GET", f"/api/workflows/{wf['id']}/draft", token=self.token).json()
        edit = curl(self.orch.url, "PUT", f"/api/workflows/{wf['id']}/draft/files",
                    {"base_revision": draft["revision"], "files": {"/notes/v2.md": {"content": ["Version 2"]}}},
                    token=self.token)
        self.assertEqual(edit.status, 200, edit.text)
        self.assertEqual(curl(self.orch.url, "POST", f"/api/workflows/{wf['id']}/versions", {}, token=self.token).status, 201)
        d = curl(self.orch.url, "POST", f"/api/workflows/{wf['id']}/deploy", {"version": 1}, token=self.token)
        self.assertEqual(d.status, 200, d.text)
        self.assertEqual((d.json()["status"], d.json()["version"]["number"]), ("deployed", 1))
        self.assertEqual(curl(self.orch.url, "POST", f"/api/workflows/{wf['id']}/deploy", {"version": 9},
                              token=self.token).status, 404)
        r = start_run(self.orch, self.token, wf["id"], {"input": "Use the deployed one."})
        self.assertEqual(r.json()["version"], 1, r.text)
        wait_run(self.orch, self.token, wf["id"], r.json()["id"])
        # Pagination like the other lists: newest first.
        page = curl(self.orch.url, "GET", path + "?limit=1", token=self.token).json()
        self.assertEqual(len(page["items"]), 1)
        self.assertEqual(page["items"][0]["id"], r.json()["id"])
        self.assertNotIn("files", page["items"][0])
        rest = curl(self.orch.url, "GET", f"{path}?limit=5&cursor={page['next_cursor']}", token=self.token).json()
        self.assertEqual(len(rest["items"]), 1)
        self.assertIsNone(rest["next_cursor"])

    def test_authorization_is_the_workflows(self):
        wf = deployed_workflow(self.orch, self.token, "single-agent")
        run = start_run(self.orch, self.token, wf["id"], {"input": "Owner's run."}).json()
        wait_run(self.orch, self.token, wf["id"], run["id"])
        viewer = self.add_member(wf["id"], "viewer")
        # Viewers read runs and watch their streams...
        self.assertEqual(curl(self.orch.url, "GET", f"/api/workflows/{wf['id']}/runs", token=viewer).json()["items"][0]["id"],
                         run["id"])
        self.assertEqual(curl(self.orch.url, "GET", f"/api/workflows/{wf['id']}/runs/{run['id']}", token=viewer).status, 200)
        events, code, _ = ws_collect(run["websocket_url"], headers={"Authorization": "Bearer " + viewer})
        self.assertEqual((code, events[-1]["event_type"]), (1000, "end"))
        # ...but cannot start or cancel them, nor run the draft.
        for body in ({"input": "x"}, {"input": "x", "version": "draft"}):
            r = start_run(self.orch, viewer, wf["id"], body)
            self.assertEqual(r.status, 403, r.text)
        self.assertEqual(curl(self.orch.url, "POST", f"/api/workflows/{wf['id']}/runs/{run['id']}/cancel",
                              token=viewer).status, 403)
        # Editors start runs of the draft.
        editor = self.add_member(wf["id"], "editor")
        r = start_run(self.orch, editor, wf["id"], {"input": "Editor's draft run.", "version": "draft"})
        self.assertEqual(r.status, 202, r.text)
        wait_run(self.orch, editor, wf["id"], r.json()["id"])
        # Strangers see nothing, not even that the run exists.
        stranger = self.stack.user()
        self.assertEqual(curl(self.orch.url, "GET", f"/api/workflows/{wf['id']}/runs", token=stranger).status, 404)
        self.assertEqual(curl(self.orch.url, "GET", f"/api/workflows/{wf['id']}/runs/{run['id']}",
                              token=stranger).status, 404)
        self.assertEqual(ws_status(run["websocket_url"], headers={"Authorization": "Bearer " + stranger}), 404)
        # A run id under another workflow is not found either.
        other = deployed_workflow(self.orch, self.token, "single-agent")
        self.assertEqual(curl(self.orch.url, "GET", f"/api/workflows/{other['id']}/runs/{run['id']}",
                              token=self.token).status, 404)


def slow_coordinator_script(path, turns=40, words=1500):
    """A long run of the multi-agent template's entry agent, so there is time to cancel it."""
    filler = " ".join(["checking"] * words)
    t = [{"node": "Coordinator", "content": f"Step {i}: {filler}",
          "tool_calls": [{"id": f"c{i}", "name": "write_todos",
                          "arguments": {"todos": [{"content": f"step {i}", "status": "in_progress"}]}}]}
         for i in range(turns)]
    t.append({"node": "Coordinator", "content": "Done."})
    return write_json(path, {"scripts": {"Coordinator": {"turns": t}}})


class CancelAndCap(unittest.TestCase):
    def setUp(self):
        import tempfile
        d = tempfile.mkdtemp(prefix="e2e-runs-")
        self.stack = Stack(script=slow_coordinator_script(os.path.join(d, "slow.json")),
                           orch_extra=["--max-concurrent-runs-per-user", "1"])
        self.token = self.stack.user()

    def tearDown(self):
        self.stack.close()

    def test_cancel_and_the_shared_cap(self):
        orch = self.stack.orch
        wf = deployed_workflow(orch, self.token, "multi-agent")
        first = start_run(orch, self.token, wf["id"], {"input": "A long one."})
        self.assertEqual(first.status, 202, first.text)
        run = first.json()
        # One run in progress: the cap (1) refuses a second run and a refinement alike.
        second = start_run(orch, self.token, wf["id"], {"input": "Another."})
        self.assertEqual(second.status, 429, second.text)
        self.assertEqual(second.json()["type"], PROBLEM_BASE + "limit-exceeded")
        self.assertEqual((second.json()["kind"], second.json()["in_progress"]), ("run", 1))
        self.assertEqual(refine(orch, self.token, wf["id"]).status, 429)
        c = curl(orch.url, "POST", f"/api/workflows/{wf['id']}/runs/{run['id']}/cancel", token=self.token)
        self.assertEqual(c.status, 200, c.text)
        self.assertEqual(c.json()["status"], "cancelled")
        self.assertFalse(c.json()["stream_available"], "a cancelled run's engine thread is deleted")
        again = curl(orch.url, "POST", f"/api/workflows/{wf['id']}/runs/{run['id']}/cancel", token=self.token)
        self.assertEqual(again.status, 409)
        self.assertEqual(again.json()["current_status"], "cancelled")
        # The engine thread is deleted (which stops it), and the run stays cancelled.
        wait_until(lambda: self.stack.engine.state(run["thread_id"])[0] == 404, timeout=20, what="engine thread deleted")
        self.assertEqual(curl(orch.url, "GET", f"/api/workflows/{wf['id']}/runs/{run['id']}",
                              token=self.token).json()["status"], "cancelled")
        # The slot is free again.
        self.assertEqual(start_run(orch, self.token, wf["id"], {"input": "Now."}).status, 202)

    def test_deleting_the_workflow_cancels_its_running_run_and_stops_it_on_the_engine(self):
        orch = self.stack.orch
        wf = deployed_workflow(orch, self.token, "multi-agent")
        run = start_run(orch, self.token, wf["id"], {"input": "A long one."}).json()
        wait_until(lambda: self.stack.engine.state(run["thread_id"])[2].get("status") == "running", timeout=20,
                   what="the run running on the engine")
        self.assertEqual(curl(orch.url, "DELETE", f"/api/workflows/{wf['id']}", token=self.token).status, 204)
        wait_until(lambda: self.stack.engine.state(run["thread_id"])[0] == 404, timeout=20, what="engine thread deleted")
        self.assertEqual(curl(orch.url, "GET", f"/api/workflows/{wf['id']}/runs/{run['id']}", token=self.token).status,
                         404)
        self.assertEqual(ws_status(run["websocket_url"], headers={"Authorization": "Bearer " + self.token}), 404)
        with sqlite3.connect(os.path.join(self.stack.dir, "orch-data", "orchestrator.db"), timeout=30) as db:
            status = db.execute("SELECT status FROM runs WHERE id = ?", (run["id"],)).fetchone()
            audit = db.execute("SELECT action FROM audit_log WHERE subject_id = ?", (run["id"],)).fetchall()
        self.assertEqual(status, ("cancelled",))
        self.assertIn(("run.cancel",), audit)
        # Its slot is free: the cap of 1 lets a run of another workflow start.
        other = deployed_workflow(orch, self.token, "multi-agent")
        self.assertEqual(start_run(orch, self.token, other["id"], {"input": "Now."}).status, 202)

    def test_a_run_that_ends_while_the_orchestrator_is_down_is_finalised_after_restart(self):
        orch = self.stack.orch
        wf = deployed_workflow(orch, self.token, "multi-agent")
        run = start_run(orch, self.token, wf["id"], {"input": "Outlive the orchestrator."}).json()
        orch.stop()  # SIGTERM: the tracker releases its lease; the engine keeps running the thread
        wait_until(lambda: self.stack.engine.state(run["thread_id"])[2].get("status") == "completed", timeout=120,
                   what="the engine finished the run")
        orch.start()
        done = wait_run(orch, self.token, wf["id"], run["id"], timeout=60)
        self.assertEqual(done["status"], "completed", done)
        self.assertEqual(done["output"], "Done.")


class RunsWhenTheEngineIsDown(unittest.TestCase):
    """Its own stack: the engine is stopped, and the breaker it may open must not affect `Runs`."""

    def setUp(self):
        self.stack = Stack(script=DEMO_SCRIPTS)
        self.token = self.stack.user()

    def tearDown(self):
        self.stack.close()

    def test_a_run_the_engine_could_not_be_reached_for_is_503_and_listed_failed(self):
        orch = self.stack.orch
        wf = deployed_workflow(orch, self.token, "multi-agent")
        self.stack.engine.stop()
        r = start_run(orch, self.token, wf["id"], {"input": "Nobody is there."})
        self.assertEqual(r.status, 503, r.text)
        self.assertGreaterEqual(int(r.headers["retry-after"]), 1)
        problem = r.json()
        self.assertEqual(problem["type"], PROBLEM_BASE + "engine-unavailable")
        self.assertIn("the run could not be started", problem["detail"])
        self.assertNotIn("refinement", problem["detail"].lower())
        runs = curl(orch.url, "GET", f"/api/workflows/{wf['id']}/runs", token=self.token).json()["items"]
        self.assertEqual(len(runs), 1)
        self.assertEqual(runs[0]["status"], "failed")
        self.assertIn("could not be reached", runs[0]["error"])
        self.assertEqual(runs[0]["failure_kind"], "engine_unreachable")
        self.assertIn(runs[0]["id"], problem["detail"])
        with sqlite3.connect(os.path.join(self.stack.dir, "orch-data", "orchestrator.db"), timeout=30) as db:
            pending = db.execute("SELECT engine_cleanup_pending FROM runs WHERE id = ?", (runs[0]["id"],)).fetchone()
        self.assertEqual(pending, (1,), "the engine thread is deleted in case the job was accepted")
        # The slot of the failed run is free: once the engine is back, a run starts.
        self.stack.engine.start()
        wait_until(lambda: start_run(orch, self.token, wf["id"], {"input": "Now."}).status == 202, timeout=60,
                   interval=1.0, what="a run once the engine is back")


class FinishedRunThreadCleanup(unittest.TestCase):
    """Its own stack with a short orphan TTL (--orphan-ttl 0.001 h = 3.6 s) and a sweep every second."""

    def setUp(self):
        self.stack = Stack(script=DEMO_SCRIPTS, orch_extra=["--orphan-ttl", "0.001", "--sweep-period-seconds", "1"])
        self.token = self.stack.user()

    def tearDown(self):
        self.stack.close()

    def test_the_engine_thread_of_a_finished_run_is_deleted_once_the_orphan_ttl_passed(self):
        orch = self.stack.orch
        wf = deployed_workflow(orch, self.token, "single-agent")
        run = start_run(orch, self.token, wf["id"], {"input": "What is a vector clock?"}).json()
        done = wait_run(orch, self.token, wf["id"], run["id"])
        self.assertEqual(done["status"], "completed", done)
        self.assertIsNone(done["failure_kind"])
        self.assertTrue(done["stream_available"])
        finished = time.monotonic()
        self.assertEqual(self.stack.engine.state(run["thread_id"])[0], 200, "kept (its stream replays) until the TTL")
        wait_until(lambda: self.stack.engine.state(run["thread_id"])[0] == 404, timeout=30,
                   what="the finished run's engine thread deleted")
        self.assertGreaterEqual(time.monotonic() - finished, 2.5, "deleted before the orphan TTL passed")
        after = curl(orch.url, "GET", f"/api/workflows/{wf['id']}/runs/{run['id']}", token=self.token).json()
        self.assertEqual((after["status"], after["output"], after["files"]), ("completed", done["output"], done["files"]),
                         "the run itself is kept")
        self.assertFalse(after["stream_available"], "the console no longer offers its activity")
        with sqlite3.connect(os.path.join(self.stack.dir, "orch-data", "orchestrator.db"), timeout=30) as db:
            row = db.execute("SELECT engine_cleanup_pending, engine_thread_deleted_at IS NOT NULL FROM runs WHERE id = ?",
                             (run["id"],)).fetchone()
        self.assertEqual(row, (0, 1))


if __name__ == "__main__":
    unittest.main()
