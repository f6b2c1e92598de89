"""Restart (issue 2 "Must show" 5): the engine is killed with SIGKILL in the middle of a
run, then started again on the same data dir / database. The run must end `completed`
or `failed` with a reason — never stay `running` — and its stream must still be whole.
The run is slowed down by a local OpenAI-compatible server that answers its second
model call only after a delay, so the kill lands mid-run after a checkpoint."""
import os
import sys
import unittest

import testkit
from testkit import Engine, ws_collect

sys.path.insert(0, os.path.join(testkit.FIXTURES, "spec_engine"))
from fake_openai import FakeOpenAI  # noqa: E402


def replies():
    return [
        {"content": "first step", "tool_calls": [{"id": "a", "name": "write_file",
                                                  "arguments": {"file_path": "/a.md", "content": "A\n"}}]},
        {"delay": 30, "content": "this answer is cut off by the kill"},
        {"content": "second step", "tool_calls": [{"id": "b", "name": "write_file",
                                                   "arguments": {"file_path": "/b.md", "content": "B\n"}}]},
        {"content": "all done"},
    ]


class RestartTests(unittest.TestCase):
    def make_database_url(self):
        return None

    def setUp(self):
        self.fake = FakeOpenAI(replies()).start()
        self.db_url = self.make_database_url()
        self.first = Engine(["--model-override", "openai:test-model"], database_url=self.db_url,
                            env={"OPENAI_BASE_URL": self.fake.base_url})
        self.second = None

    def tearDown(self):
        if self.second:
            self.second.cleanup()
        self.first.cleanup()
        self.fake.stop()

    def kill_mid_run(self):
        self.first.start()
        job = testkit.new_job(testkit.single_agent_definition())
        self.assertEqual(self.first.invoke(job)[0], 202)
        # The first step is done (file written, checkpointed) and the second model call is in flight.
        testkit.wait_until(lambda: len(self.fake.requests) >= 2, timeout=20, what="second model call")
        state = self.first.state(job["job_id"])[2]
        self.assertEqual(state["status"], "running")
        self.assertGreater(state["last_seq"], 0)
        self.first.kill9()
        return job["job_id"]

    def restart(self, *extra):
        self.second = Engine(["--model-override", "openai:test-model", *extra], data_dir=self.first.data_dir,
                             database_url=self.db_url, env={"OPENAI_BASE_URL": self.fake.base_url}).start()
        return self.second

    def check_stream_whole(self, engine, thread_id):
        events, code, _ = ws_collect(f"{engine.ws_base}/spec-engine/stream/{thread_id}", timeout=30, until_close=True)
        self.assertEqual(code, 1000)
        self.assertEqual([e["seq"] for e in events], list(range(1, len(events) + 1)))
        self.assertEqual(events[-1]["event_type"], "end")
        self.assertEqual(sum(1 for e in events if e["event_type"] == "end"), 1)
        return events

    def test_killed_mid_run_is_resumed_or_failed_never_running(self):
        thread_id = self.kill_mid_run()
        engine = self.restart()
        state = engine.wait_terminal(thread_id, timeout=60)
        self.assertIn(state["status"], ("completed", "failed"), state)
        if state["status"] == "failed":
            self.assertTrue(state["error"], state)
        else:
            # Resumed from the checkpoint: the first step's file survived, the run went on.
            self.assertIn("/a.md", state["generated_files"])
        events = self.check_stream_whole(engine, thread_id)
        self.assertEqual(events[-1]["data"]["status"], state["status"])

    def test_recovery_fail_mode_marks_failed_with_reason(self):
        thread_id = self.kill_mid_run()
        engine = self.restart("--recovery", "fail")
        state = engine.wait_terminal(thread_id, timeout=30)  # claimed at the keeper's first round
        self.assertEqual(state["status"], "failed")
        self.assertIn("restart", state["error"])
        self.assertIn("/a.md", state["generated_files"])  # files of the last checkpoint
        events = self.check_stream_whole(engine, thread_id)
        self.assertIn("restart", events[-1]["data"]["error"])


@unittest.skipUnless(os.environ.get("TEST_PG_URL"), "TEST_PG_URL not set")
class RestartPostgresTests(RestartTests):
    def make_database_url(self):
        return testkit.make_pg_database()


if __name__ == "__main__":
    unittest.main()
