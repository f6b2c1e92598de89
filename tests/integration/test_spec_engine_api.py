"""Spec Engine end to end on the real binary (issue 2 "Must show" 2 and 4):
a multi-agent scripted run read over WebSocket (order, seq, files, end), a late
second client, after_seq replay, job_id idempotency, CloudEvents, delete, probes,
and every bad-input case with the service still serving afterwards.
Runs on SQLite; the *Postgres class repeats everything when TEST_PG_URL is set."""
import json
import os
import tempfile
import unittest
import uuid

import testkit
from testkit import Engine, http, ws_collect, ws_status

# The scripted model's turns, consumed in call order across both agents.
SCRIPT = {"turns": [
    {"node": "orchestrator", "content": "Planning the work.",
     "tool_calls": [
         {"id": "c1", "name": "write_todos", "arguments": {"todos": [
             {"content": "write plan", "status": "in_progress"},
             {"content": "cast writer", "status": "pending"}]}},
         {"id": "c2", "name": "write_file", "arguments": {"file_path": "/THE_SPEC/plan.md",
                                                          "content": "# Plan\nstep one\n"}}]},
    {"node": "orchestrator", "content": "Delegating.",
     "tool_calls": [{"id": "c3", "name": "task", "arguments": {
         "description": "Write the writer's cast file and refine the plan.", "subagent_type": "writer"}}]},
    {"node": "writer", "content": "Writing.",
     "tool_calls": [{"id": "w1", "name": "write_file", "arguments": {"file_path": "/THE_CAST/Writer.md",
                                                                    "content": "# Writer\nWrites things.\n"}},
                    {"id": "w2", "name": "read_file", "arguments": {"file_path": "/../etc/passwd"}}]},
    {"node": "writer", "content": "Refining the plan.",
     "tool_calls": [{"id": "w3", "name": "edit_file", "arguments": {"file_path": "/THE_SPEC/plan.md",
                                                                   "old_string": "step one",
                                                                   "new_string": "step one\nstep two (writer)"}}]},
    {"node": "writer", "content": "Writer finished."},
    {"node": "orchestrator", "content": "Checking.",
     "tool_calls": [{"id": "c4", "name": "write_file", "arguments": {"content": "no path given"}},
                    {"id": "c5", "name": "ls", "arguments": {"path": "../.."}},
                    {"id": "c6", "name": "edit_file", "arguments": {"file_path": "/THE_SPEC/plan.md",
                                                                   "old_string": "# Plan",
                                                                   "new_string": "# Plan (final)"}}]},
    {"node": "orchestrator", "content": "All done."},
]}


class SpecEngineApiTests(unittest.TestCase):
    database_url = None

    @classmethod
    def make_database_url(cls):
        return None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="se-api-")
        script = testkit.write_json(os.path.join(cls.tmp, "script.json"), SCRIPT)
        cls.engine = Engine(["--model-override", "scripted:" + script, "--max-body-bytes", "65536"],
                            database_url=cls.make_database_url()).start()

    @classmethod
    def tearDownClass(cls):
        cls.engine.shutdown_cleanly()

    # --- helpers -------------------------------------------------------------
    def assert_serving(self):
        st, _, body = http("GET", self.engine.base + "/health")
        self.assertEqual(st, 200, self.engine.log())
        self.assertEqual(body, {"status": "ok"})

    def run_job(self, job=None):
        job = job or testkit.new_job(testkit.multi_agent_definition())
        st, h, body = self.engine.invoke(job)
        self.assertEqual(st, 202, body)
        return job["job_id"], body

    def assert_problem(self, status, body, headers, fields=()):
        self.assertEqual(headers.get("content-type"), "application/problem+json", body)
        self.assertEqual(body["status"], status)
        for k in ("type", "title", "detail"):
            self.assertIn(k, body)
        names = [e["field"] for e in body.get("errors", [])]
        for f in fields:
            self.assertIn(f, names, body)
        for e in body.get("errors", []):
            self.assertTrue(e["message"])

    # --- Must show 2 -------------------------------------------------------------
    def test_multi_agent_run_streamed_over_websocket(self):
        thread_id, body = self.run_job()
        self.assertEqual(body, {"thread_id": thread_id, "status": "started"})
        events, code, _ = ws_collect(f"{self.engine.ws_base}/spec-engine/stream/{thread_id}", until_close=True)
        self.assertEqual(code, 1000)
        self.assertTrue(events)
        # Order and shape: seq 1..N without gaps, each event fully shaped, `end` last.
        self.assertEqual([e["seq"] for e in events], list(range(1, len(events) + 1)))
        for e in events:
            self.assertEqual(set(e), {"event_type", "data", "seq", "thread_id", "ts"})
            self.assertEqual(e["thread_id"], thread_id)
        self.assertEqual(events[-1]["event_type"], "end")
        self.assertEqual(events[-1]["data"]["status"], "completed", events[-1])
        self.assertEqual([e for e in events if e["event_type"] == "end"], [events[-1]])
        types = {e["event_type"] for e in events}
        self.assertTrue({"on_state_update", "on_llm_stream", "on_tool_start", "on_tool_end"} <= types, types)
        # Both agents worked: the writer (through task) and the orchestrator.
        nodes = {e["data"].get("node") for e in events if e["event_type"] == "on_tool_end"}
        self.assertTrue({"orchestrator", "writer"} <= nodes, nodes)
        # Files of the last on_state_update: edited by both agents.
        files = testkit.last_files(events)
        self.assertIsNotNone(files)
        self.assertIn("/THE_CAST/Writer.md", files)
        plan = testkit.file_text(files["/THE_SPEC/plan.md"])
        self.assertIn("step two (writer)", plan)
        self.assertIn("# Plan (final)", plan)
        # Bad tool calls are tool errors the model sees; the run went on.
        outputs = {e["data"]["tool_call_id"]: e["data"]["output"] for e in events if e["event_type"] == "on_tool_end"}
        for call in ("w2", "c4", "c5"):
            self.assertIn("rror", outputs[call], outputs)
        # The state agrees with the stream.
        st, _, state = self.engine.state(thread_id)
        self.assertEqual(st, 200)
        self.assertEqual(state["status"], "completed")
        self.assertEqual(state["generated_files"], files)
        self.assertEqual(state["last_seq"], events[-1]["seq"])
        for k in ("thread_id", "result", "error", "created_at", "updated_at"):
            self.assertIn(k, state)
        self.assertIsNone(state["error"])

        # A second client after the end receives the same events.
        again, code2, _ = ws_collect(f"{self.engine.ws_base}/spec-engine/stream/{thread_id}", until_close=True)
        self.assertEqual(code2, 1000)
        self.assertEqual(again, events)
        # after_seq replays only the tail; after the last seq nothing but a normal close.
        n = len(events)
        tail, _, _ = ws_collect(f"{self.engine.ws_base}/spec-engine/stream/{thread_id}?after_seq={n - 3}", until_close=True)
        self.assertEqual(tail, events[-3:])
        none, code3, _ = ws_collect(f"{self.engine.ws_base}/spec-engine/stream/{thread_id}?after_seq={n}", until_close=True)
        self.assertEqual((none, code3), ([], 1000))

    def test_stream_connected_before_and_during_the_run(self):
        thread_id, _ = self.run_job()
        first, _, _ = ws_collect(f"{self.engine.ws_base}/spec-engine/stream/{thread_id}", until_close=True)
        late, _, _ = ws_collect(f"{self.engine.ws_base}/spec-engine/stream/{thread_id}?after_seq=2", until_close=True)
        self.assertEqual(late, first[2:])

    def test_same_job_id_twice_runs_once(self):
        job = testkit.new_job(testkit.multi_agent_definition())
        st1, _, b1 = self.engine.invoke(job)
        st2, _, b2 = self.engine.invoke(job)
        self.assertEqual((st1, st2), (202, 202))
        self.assertEqual(b1["thread_id"], b2["thread_id"])
        self.assertTrue(b2.get("duplicate"))
        state = self.engine.wait_terminal(job["job_id"])
        self.assertEqual(state["status"], "completed")
        st3, _, b3 = self.engine.invoke(job)  # after the end: still the same thread, no new run
        self.assertEqual(st3, 202)
        self.assertEqual(b3["thread_status"], "completed")
        events, _, _ = ws_collect(f"{self.engine.ws_base}/spec-engine/stream/{job['job_id']}", until_close=True)
        self.assertEqual(sum(1 for e in events if e["event_type"] == "end"), 1)
        self.assertEqual(sum(1 for e in events if e["event_type"] == "on_tool_start"
                             and e["data"].get("tool") == "task"), 1)
        self.assertEqual(self.engine.state(job["job_id"])[2]["last_seq"], len(events))

    def test_structured_cloudevent(self):
        job = testkit.new_job(testkit.multi_agent_definition())
        ce = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/ide-orchestrator",
              "type": "agent.execute.refinement", "datacontenttype": "application/json", "data": job}
        st, _, body = http("POST", self.engine.base + "/spec-engine/invoke", json.dumps(ce),
                           headers={"Content-Type": "application/cloudevents+json"})
        self.assertEqual(st, 202, body)
        self.assertEqual(body["thread_id"], job["job_id"])
        self.assertEqual(self.engine.wait_terminal(job["job_id"])["status"], "completed")

    def test_binary_cloudevent_and_trace_context(self):
        job = testkit.new_job(testkit.multi_agent_definition())
        trace = uuid.uuid4().hex
        st, _, body = http("POST", self.engine.base + "/spec-engine/invoke", job, headers={
            "ce-specversion": "1.0", "ce-id": "e-1", "ce-source": "urn:test", "ce-type": "agent.execute",
            "traceparent": f"00-{trace}-00f067aa0ba902b7-01"})
        self.assertEqual(st, 202, body)
        state = self.engine.wait_terminal(job["job_id"])
        self.assertEqual(state["status"], "completed")
        self.assertEqual(state["trace_id"], job["trace_id"])
        self.assertIn(trace, self.engine.log())  # the request's trace context reached the run's logs

    def test_delete_thread(self):
        thread_id, _ = self.run_job()
        self.engine.wait_terminal(thread_id)
        st, _, _ = http("DELETE", f"{self.engine.base}/spec-engine/threads/{thread_id}")
        self.assertEqual(st, 204)
        self.assertEqual(self.engine.state(thread_id)[0], 404)
        self.assertEqual(ws_status(f"{self.engine.ws_base}/spec-engine/stream/{thread_id}"), 404)
        self.assertEqual(http("DELETE", f"{self.engine.base}/spec-engine/threads/{thread_id}")[0], 404)
        self.assert_serving()

    def test_probes_and_metrics(self):
        self.assert_serving()
        st, _, body = http("GET", self.engine.base + "/ready")
        self.assertEqual(st, 200, body)
        self.assertEqual(body["status"], "ready")
        self.assertEqual(body["checks"]["database"], "ok")
        thread_id, _ = self.run_job()
        ws_collect(f"{self.engine.ws_base}/spec-engine/stream/{thread_id}", until_close=True)
        st, h, text = http("GET", self.engine.base + "/metrics", raw=True)
        self.assertEqual(st, 200)
        text = text.decode()
        for name in ("spec_engine_runs_started_total", "spec_engine_runs_completed_total{status=\"completed\"}",
                     "spec_engine_run_duration_seconds_bucket", "spec_engine_model_call_duration_seconds",
                     "spec_engine_active_streams", "spec_engine_events_sent_total{event_type=\"end\"}"):
            self.assertIn(name, text)

    # --- Must show 4: bad input ---------------------------------------------------
    def post_raw(self, body, content_type="application/json", headers=None):
        h = {"Content-Type": content_type} if content_type else {}
        h.update(headers or {})
        return http("POST", self.engine.base + "/spec-engine/invoke", body, headers=h)

    def test_malformed_json(self):
        st, h, body = self.post_raw('{"job_id": "x", ')
        self.assertEqual(st, 400)
        self.assert_problem(400, body, h, ["body"])
        self.assert_serving()

    def test_missing_job_id(self):
        job = testkit.new_job(testkit.multi_agent_definition())
        del job["job_id"]
        st, h, body = self.post_raw(json.dumps(job))
        self.assertEqual(st, 400)
        self.assert_problem(400, body, h, ["job_id"])
        self.assert_serving()

    def test_invalid_job_id_and_every_bad_field_named(self):
        st, h, body = self.post_raw(json.dumps({"job_id": "../etc", "trace_id": 3,
                                                "agent_definition": [], "input_payload": 7}))
        self.assertEqual(st, 400)
        self.assert_problem(400, body, h, ["job_id", "trace_id", "agent_definition", "input_payload"])
        self.assert_serving()

    def test_empty_definition(self):
        st, h, body = self.post_raw(json.dumps(testkit.new_job({})))
        self.assertEqual(st, 400)
        self.assert_problem(400, body, h, ["agent_definition"])
        st, h, body = self.post_raw(json.dumps(testkit.new_job({"graph": {"nodes": [], "entryPoint": "x"}})))
        self.assertEqual(st, 400)
        self.assert_problem(400, body, h, ["agent_definition.graph.nodes"])
        self.assert_serving()

    def test_unknown_tool(self):
        d = testkit.single_agent_definition(("ls", "rm_rf"))
        st, h, body = self.post_raw(json.dumps(testkit.new_job(d)))
        self.assertEqual(st, 400)
        self.assert_problem(400, body, h, ["agent_definition.graph.nodes[0].data.tools[1]"])
        self.assertIn("rm_rf", json.dumps(body))
        self.assert_serving()

    def test_entry_point_not_a_node(self):
        d = testkit.single_agent_definition()
        d["graph"]["entryPoint"] = "ghost"
        st, h, body = self.post_raw(json.dumps(testkit.new_job(d)))
        self.assertEqual(st, 400)
        self.assert_problem(400, body, h, ["agent_definition.graph.entryPoint"])
        self.assert_serving()

    def test_body_over_limit(self):
        job = testkit.new_job(testkit.multi_agent_definition(), messages="x" * 100_000)
        st, h, body = self.post_raw(json.dumps(job))
        self.assertEqual(st, 413)
        self.assertEqual(h.get("content-type"), "application/problem+json")
        self.assertEqual(self.engine.state(job["job_id"])[0], 404)  # nothing written
        self.assert_serving()

    def test_wrong_content_type(self):
        job = testkit.new_job(testkit.multi_agent_definition())
        st, h, body = self.post_raw(json.dumps(job), content_type="text/plain")
        self.assertEqual(st, 415)
        self.assert_problem(415, body, h)
        st, h, body = self.post_raw(json.dumps(job), content_type=None)
        self.assertEqual(st, 415)
        self.assertEqual(self.engine.state(job["job_id"])[0], 404)
        self.assert_serving()

    def test_bad_cloudevent(self):
        ce = {"specversion": "0.3", "source": "", "data": testkit.new_job(testkit.multi_agent_definition())}
        st, h, body = self.post_raw(json.dumps(ce), content_type="application/cloudevents+json")
        self.assertEqual(st, 400)
        self.assert_problem(400, body, h, ["specversion", "id", "source", "type"])
        st, h, body = self.post_raw(json.dumps(testkit.new_job({})), headers={"ce-specversion": "1.0"})
        self.assertEqual(st, 400)
        self.assert_problem(400, body, h, ["ce-id", "ce-source", "ce-type", "agent_definition"])
        self.assert_serving()

    def test_unknown_thread_on_state_stream_delete(self):
        unknown = "no-such-thread-" + uuid.uuid4().hex[:6]
        st, h, body = self.engine.state(unknown)
        self.assertEqual(st, 404)
        self.assert_problem(404, body, h)
        self.assertEqual(ws_status(f"{self.engine.ws_base}/spec-engine/stream/{unknown}"), 404)
        st, h, body = http("DELETE", f"{self.engine.base}/spec-engine/threads/{unknown}")
        self.assertEqual(st, 404)
        self.assert_problem(404, body, h)
        self.assert_serving()

    def test_bad_after_seq(self):
        thread_id, _ = self.run_job()
        self.assertEqual(ws_status(f"{self.engine.ws_base}/spec-engine/stream/{thread_id}?after_seq=-1"), 400)
        self.assertEqual(ws_status(f"{self.engine.ws_base}/spec-engine/stream/{thread_id}?after_seq=x"), 400)
        self.assert_serving()


@unittest.skipUnless(os.environ.get("TEST_PG_URL"), "TEST_PG_URL not set")
class SpecEngineApiPostgresTests(SpecEngineApiTests):
    @classmethod
    def make_database_url(cls):
        return testkit.make_pg_database()


if __name__ == "__main__":
    unittest.main()
