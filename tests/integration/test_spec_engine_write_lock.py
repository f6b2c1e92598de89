"""Another program holds the engine's SQLite write lock (an operator's sqlite3 shell, a backup):
the engine's writes wait for it, up to half its HTTP threads; later writes answer 503 at once
(core::db::WriteGate's bulkhead), so /health, /ready and reads keep answering at once; once the
lock is free the waiting writes complete, and a job turned away with 503 is accepted when sent
again. Submits hold no lock across their SQL (RunManager::submit), so one invoke stuck behind
the database does not hold the others' threads.
"""
import os
import sqlite3
import tempfile
import threading
import time
import unittest

import testkit
from testkit import Engine, http

SCRIPT = {"turns": [{"node": "main", "content": "Done."}]}


class WriteLockStall(unittest.TestCase):
    def test_writes_beyond_half_the_http_threads_are_turned_away_while_reads_go_on(self):
        tmp = tempfile.mkdtemp(prefix="se-lock-")
        script = testkit.write_json(os.path.join(tmp, "script.json"), SCRIPT)
        engine = Engine(["--model-override", "scripted:" + script, "--http-threads", "8"]).start()
        try:
            db = sqlite3.connect(os.path.join(engine.data_dir, "spec_engine.db"), timeout=10, isolation_level=None)
            db.execute("BEGIN IMMEDIATE")
            jobs = [testkit.new_job(testkit.single_agent_definition()) for _ in range(12)]
            answers = {}

            def send(job):
                st, _, body = http("POST", engine.base + "/spec-engine/invoke", job, timeout=90)
                answers[job["job_id"]] = (st, body)

            first = [threading.Thread(target=send, args=(j,)) for j in jobs[:4]]
            late = [threading.Thread(target=send, args=(j,)) for j in jobs[4:]]
            try:
                for t in first:
                    t.start()
                time.sleep(3)  # the lock is stalled now (held > 1 s)
                self.assertEqual(answers, {}, "the first writes should still be waiting")
                t0 = time.time()
                for t in late:
                    t.start()
                # At most 4 writers (half the 8 HTTP threads) wait, the first four among them: of
                # the 8 late ones at least 4 are turned away at once.
                self.assertTrue(testkit.wait_until(lambda: len(answers) >= 4, timeout=10), answers)
                self.assertLess(time.time() - t0, 10.0)
                self.assertTrue(all(st == 503 for st, _ in answers.values()), answers)
                for path in ("/health", "/ready", "/spec-engine/state/" + jobs[0]["job_id"]):
                    t0 = time.time()
                    st, _, body = http("GET", engine.base + path, timeout=10)
                    self.assertIn(st, (200, 404, 503), (path, st, body))
                    self.assertLess(time.time() - t0, 2.0, f"GET {path} waited for the writes")
            finally:
                db.execute("COMMIT")
                db.close()
            for t in first + late:
                t.join(timeout=90)
            self.assertEqual(len(answers), 12, answers)
            for job in jobs[:4]:
                self.assertEqual(answers[job["job_id"]][0], 202, answers[job["job_id"]])
            # Nothing is lost: every job turned away is accepted when sent again.
            for job in jobs:
                if answers[job["job_id"]][0] == 503:
                    st, _, body = engine.invoke(job)
                    self.assertEqual(st, 202, body)
            for job in jobs:
                self.assertEqual(engine.wait_terminal(job["job_id"], timeout=60)["status"], "completed")
        finally:
            engine.shutdown_cleanly()


if __name__ == "__main__":
    unittest.main()
