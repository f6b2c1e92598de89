"""Runs wait for the model without holding a thread (issue 8 item 1), end to end with the real
spec-engine binary and the local fake OpenAI server (tests/fixtures/spec_engine/fake_openai.py):
- 300 runs wait for a held-back model at once; the engine's thread count (/proc/<pid>/status
  Threads) stays below 64 the whole time, then every run completes;
- DELETE while the model has not sent its first byte cancels the run at once and drops the
  model connection;
- --max-run-seconds ends a run whose model does not answer, with the wall-time message;
- SIGTERM interrupts runs waiting for the model after the grace period, the process exits,
  and the next start resumes them to completion;
- the model calls of a run reuse one keep-alive connection.
Assertions are about bounds and outcomes, not speed."""
import json
import os
import signal
import threading
import unittest

import testkit
from testkit import Engine, http

THREAD_BOUND = 64


def thread_count(pid):
    """Threads of process `pid` (Linux /proc/<pid>/status), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class ThreadSampler:
    """Samples a process's thread count every 50 ms in the background; `peak` is the largest."""

    def __init__(self, pid):
        self.pid, self.peak, self.samples = pid, 0, 0
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop_event.is_set():
            n = thread_count(self.pid)
            if n is not None:
                self.peak = max(self.peak, n)
                self.samples += 1
            self.stop_event.wait(0.05)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join()


def ended_runs(engine, thread_id):
    """The engine's "run ended" log records of `thread_id`."""
    return [json.loads(line) for line in engine.log().splitlines()
            if '"msg":"run ended"' in line and thread_id in line]


class AsyncRunTests(testkit.FakeOpenAiCase):
    def test_300_runs_wait_for_the_model_with_a_bounded_thread_count(self):
        n = 300
        fake = self.fake([], default={"gate": True, "content": "held back, then answered"})
        engine = self.engine(fake, "--max-concurrent-runs", str(n), "--max-queue", str(n))
        jobs = [testkit.new_job(testkit.single_agent_definition()) for _ in range(n)]
        with ThreadSampler(engine.proc.p.pid) as sampler:
            for job in jobs:
                st, _, body = engine.invoke(job)
                self.assertEqual(st, 202, body)
            # Every run is inside its model call at the same time: the fake holds all answers.
            testkit.wait_until(lambda: len(fake.requests) >= n, timeout=240, interval=0.2,
                               what=f"{n} model calls in flight at once")
            during = thread_count(engine.proc.p.pid)
            st, _, ready = http("GET", engine.base + "/ready")
            self.assertEqual(st, 200, ready)
            self.assertEqual(ready.get("running"), n, ready)
            fake.gate.set()
            for job in jobs:
                state = engine.wait_terminal(job["job_id"], timeout=240)
                self.assertEqual(state["status"], "completed", (state, engine.log()[-3000:]))
                self.assertEqual(state["result"]["output"], "held back, then answered")
        self.assertGreater(sampler.samples, 0)
        self.assertLess(during, THREAD_BOUND, f"{during} threads while {n} runs waited for the model")
        self.assertLess(sampler.peak, THREAD_BOUND, f"peak of {sampler.peak} threads for {n} runs")
        self.assertEqual(len(fake.requests), n)  # one model call per run, none repeated
        # --io-threads 0 (the default): half the processors for each of the two I/O contexts.
        listening = [json.loads(line) for line in engine.proc.output().splitlines() if '"msg":"listening"' in line]
        self.assertEqual(len(listening), 1, engine.log()[-2000:])
        self.assertEqual(listening[0]["io_threads"], max(1, (os.cpu_count() or 1) // 2), listening[0])

    def test_delete_before_the_first_byte_cancels_at_once_and_drops_the_call(self):
        fake = self.fake([{"hang": True}])
        engine = self.engine(fake, "--model-timeout-ms", "600000", "--model-idle-timeout-ms", "600000")
        job = testkit.new_job(testkit.single_agent_definition())
        self.assertEqual(engine.invoke(job)[0], 202)
        testkit.wait_until(lambda: len(fake.requests) >= 1, what="the model call")
        st, _, _ = http("DELETE", f"{engine.base}/spec-engine/threads/{job['job_id']}", timeout=30)
        self.assertEqual(st, 204)
        self.assertEqual(engine.state(job["job_id"])[0], 404)
        self.assertNotIn("run did not stop in time for delete", engine.log())
        self.assertEqual([e["status"] for e in ended_runs(engine, job["job_id"])], ["cancelled"])
        testkit.wait_until(lambda: fake.closed >= 1, what="the engine to close the model connection")
        self.assertEqual(len(fake.requests), 1)  # not retried

    def test_max_run_seconds_ends_a_run_whose_model_is_silent(self):
        fake = self.fake([{"hang": True}])
        engine = self.engine(fake, "--max-run-seconds", "2", "--model-timeout-ms", "600000",
                             "--model-idle-timeout-ms", "600000")
        _, events, state = self.run_to_end(engine, timeout=120)
        self.assertEqual(state["status"], "failed")
        self.assertEqual(state["error"], "wall time limit reached: the run took more than 2 s (max_run_seconds) "
                                         "while waiting for the model")
        self.assertEqual([e["event_type"] for e in events][-2:], ["error", "end"])
        self.assertEqual(events[-1]["data"]["error"], state["error"])
        testkit.wait_until(lambda: fake.closed >= 1, what="the engine to close the model connection")

    def test_sigterm_interrupts_runs_waiting_for_the_model_and_they_resume(self):
        fake = self.fake([{"hang": True}] * 3)
        engine = self.engine(fake, "--shutdown-grace-ms", "300", "--model-timeout-ms", "600000",
                             "--model-idle-timeout-ms", "600000")
        jobs = [testkit.new_job(testkit.single_agent_definition()) for _ in range(3)]
        for job in jobs:
            self.assertEqual(engine.invoke(job)[0], 202)
        testkit.wait_until(lambda: len(fake.requests) >= 3, what="three model calls")
        code = engine.stop(signal.SIGTERM, timeout=60)
        self.assertEqual(code, 0, engine.log()[-3000:])
        log = engine.log()
        self.assertNotIn("runs still busy after the grace period", log)
        self.assertEqual(log.count("run interrupted by shutdown; it resumes from its checkpoint"), 3)
        # The same data directory, a model that answers now: every run resumes and completes.
        again = Engine(["--model-override", "openai:test-model"], data_dir=engine.data_dir,
                       env={"OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "sk-test-not-secret"}).start()
        self.engines.append(again)
        for job in jobs:
            state = again.wait_terminal(job["job_id"], timeout=60)
            self.assertEqual(state["status"], "completed", (state, again.log()[-3000:]))
            self.assertEqual(state["result"]["output"], "done")

    def test_model_calls_reuse_a_keep_alive_connection(self):
        calls = [{"content": f"step {i}", "tool_calls": [{"id": f"w{i}", "name": "write_file",
                                                          "arguments": {"file_path": f"/f{i}.md", "content": "x"}}]}
                 for i in range(3)]
        fake = self.fake(calls + [{"content": "finished"}])
        engine = self.engine(fake)
        _, _, state = self.run_to_end(engine)
        self.assertEqual(state["status"], "completed", state)
        self.assertEqual(len(fake.requests), 4)
        self.assertEqual(fake.connections, 1)


if __name__ == "__main__":
    unittest.main()
