"""Bounded tool calls (issue 9 item 2), end to end with the real spec-engine binary and
the local fake OpenAI server:
- the model issues the glob pattern that made the old backtracking matcher exponential
  ("*a*a*a*a*a*a*a*a*a*a*a*b" over a 200-character file name), through `glob` and through
  `grep`'s glob filter: the run goes on and finishes with the right answers;
- a tool call that outlives --tool-budget-ms ends with a budget error the model reads;
- DELETE while a tool runs stops the run at once and frees the worker;
- --max-run-seconds ends a run whose tool is still running.
Slow tools come from the engine's test hook SPEC_ENGINE_TEST_TOOL_DELAY_MS (every tool
call first waits that long, polling its budget like real work)."""
import json
import time
import unittest

import testkit
from testkit import http, ws_collect

TOOLS = ("ls", "read_file", "write_file", "edit_file", "glob", "grep")
PATHOLOGICAL = "*a*a*a*a*a*a*a*a*a*a*a*b"
LONG_A = "/" + "a" * 200
LONG_AB = "/" + "a" * 199 + "b"


class ToolBudgetTests(testkit.FakeOpenAiCase):
    def start(self, replies, *args, env=None):
        fake = self.fake(replies)
        return fake, self.engine(fake, *args, env=env)

    def run_job(self, engine, files=None):
        return self.run_to_end(engine, testkit.single_agent_definition(TOOLS), timeout=120, files=files)

    @staticmethod
    def outputs(events):
        return {e["data"]["tool_call_id"]: e["data"]["output"] for e in events if e["event_type"] == "on_tool_end"}

    def test_pathological_glob_finishes_through_glob_and_grep(self):
        fake, engine = self.start([
            {"tool_calls": [{"id": "g", "name": "glob", "arguments": {"pattern": PATHOLOGICAL}},
                            {"id": "r", "name": "grep", "arguments": {"pattern": "needle", "glob": PATHOLOGICAL}}]},
            {"content": "Searched."}])
        files = {LONG_A: {"content": ["needle in a"]}, LONG_AB: {"content": ["needle in b"]},
                 "/notes.md": {"content": ["needle"]}}
        _, events, state = self.run_job(engine, files=files)
        self.assertEqual(state["status"], "completed", (state, engine.log()[-3000:]))
        out = self.outputs(events)
        self.assertEqual(out["g"], LONG_AB)
        self.assertEqual(out["r"], LONG_AB + ":1: needle in b")
        # The model got both results and answered.
        tool_messages = [m for m in fake.requests[1]["messages"] if m["role"] == "tool"]
        self.assertEqual([m["content"] for m in tool_messages], [out["g"], out["r"]])
        self.assertEqual(state["result"]["output"], "Searched.")

    def test_tool_out_of_budget_returns_an_error_the_model_reads(self):
        fake, engine = self.start(
            [{"tool_calls": [{"id": "slow", "name": "ls", "arguments": {}}]}, {"content": "Gave up on ls."}],
            "--tool-budget-ms", "300", env={"SPEC_ENGINE_TEST_TOOL_DELAY_MS": "60000"})
        _, events, state = self.run_job(engine)
        self.assertEqual(state["status"], "completed", (state, engine.log()[-3000:]))
        self.assertEqual(self.outputs(events)["slow"], "Error: ls: exceeded its time budget of 300 ms")
        tool_messages = [m for m in fake.requests[1]["messages"] if m["role"] == "tool"]
        self.assertEqual(tool_messages[0]["content"], "Error: ls: exceeded its time budget of 300 ms")
        self.assertIn("tool call exceeded its time budget", engine.log())

    def test_delete_during_a_slow_tool_stops_the_run_and_frees_the_worker(self):
        fake, engine = self.start(
            [{"tool_calls": [{"id": "slow", "name": "ls", "arguments": {}}]}, {"content": "never reached"}],
            "--max-concurrent-runs", "1", "--tool-budget-ms", "600000",
            env={"SPEC_ENGINE_TEST_TOOL_DELAY_MS": "600000"})
        job = testkit.new_job(testkit.single_agent_definition(TOOLS))
        self.assertEqual(engine.invoke(job)[0], 202)
        # The model answered with the tool call; the tool (10 minutes of simulated work) runs.
        events, _, _ = ws_collect(f"{engine.ws_base}/spec-engine/stream/{job['job_id']}", stop_after=2, timeout=60)
        self.assertEqual([e["event_type"] for e in events], ["on_state_update", "on_tool_start"])
        st, _, _ = http("DELETE", f"{engine.base}/spec-engine/threads/{job['job_id']}", timeout=30)
        self.assertEqual(st, 204)
        self.assertEqual(engine.state(job["job_id"])[0], 404)
        log = engine.log()
        self.assertNotIn("run did not stop in time for delete", log)
        ended = [json.loads(line) for line in log.splitlines()
                 if '"msg":"run ended"' in line and job["job_id"] in line]
        self.assertEqual([e["status"] for e in ended], ["cancelled"])
        # The only worker is free again: a run without tools completes.
        with fake.lock:
            fake.replies[:] = [{"content": "quick"}]
        _, _, state = self.run_job(engine)
        self.assertEqual(state["status"], "completed")

    def test_max_run_seconds_ends_a_run_inside_a_tool(self):
        _, engine = self.start(
            [{"tool_calls": [{"id": "slow", "name": "ls", "arguments": {}}]}, {"content": "never reached"}],
            "--max-run-seconds", "2", "--tool-budget-ms", "600000",
            env={"SPEC_ENGINE_TEST_TOOL_DELAY_MS": "600000"})
        t0 = time.monotonic()
        _, events, state = self.run_job(engine)
        self.assertEqual(state["status"], "failed")
        self.assertEqual(state["error"],
                         "wall time limit reached: the run took more than 2 s (max_run_seconds) while tool 'ls' ran")
        self.assertEqual(events[-1]["data"]["status"], "failed")
        self.assertNotIn("on_tool_end", [e["event_type"] for e in events])
        self.assertLess(time.monotonic() - t0, 300)  # far less than the tool's 600 s


if __name__ == "__main__":
    unittest.main()
