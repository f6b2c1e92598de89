"""The orchestrator rides out a PostgreSQL restart: the real binary on a throwaway cluster of the
test's own, restarted with `pg_ctl restart -m immediate` and then stopped for a few seconds while
clients hammer reads and writes. Every answer is 2xx, or 503 with Retry-After; /ready is 503 while
the server is down and 200 after; requests succeed again and a refinement that was running
completes, all without restarting the orchestrator."""
import collections
import os
import tempfile
import threading
import time
import unittest

from e2ekit import Orchestrator, create_workflow, curl, refine, scripted_engine, slow_script, stop_and_clean, wait_proposal
from testkit import PgCluster, http, wait_until


class PostgresRestart(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="e2e-pgrestart-")
        self.procs = []
        self.pg = PgCluster()  # skips the test when the PostgreSQL server binaries are missing
        self.addCleanup(self.pg.cleanup)
        self.pg.start()

    def tearDown(self):
        stop_and_clean(self.procs, self.dir)

    def test_requests_survive_a_restart_and_an_outage(self):
        eng = scripted_engine(self.dir, script=slow_script(os.path.join(self.dir, "slow.json"), turns=40)).start()
        self.procs.append(eng)
        orch = Orchestrator(self.dir, eng.base, database_url=self.pg.url("ide_orchestrator"),
                            extra=["--db-wait-ms", "2000", "--sweep-period-seconds", "1", "--lease-ttl-seconds", "3",
                                   "--user-rate-limit", "1000000", "--ip-rate-limit", "1000000"]).start()
        self.procs.append(orch)
        orch.add_user("pg@example.com")
        token = orch.login("pg@example.com")
        wf = create_workflow(orch, token)
        running = refine(orch, token, wf["id"]).json()
        auth = {"Authorization": f"Bearer {token}"}
        routes = [("GET", "/api/workflows", None), ("GET", f"/api/workflows/{wf['id']}", None),
                  ("GET", f"/api/proposals/{running['proposal_id']}", None),
                  ("GET", f"/api/workflows/{wf['id']}/draft", None),
                  ("POST", "/api/workflows", {"name": "during the restart", "template": "multi-agent"})]

        counts = collections.Counter()
        bad = []
        lock = threading.Lock()
        stop = threading.Event()

        def hammer(offset):
            i = offset
            while not stop.is_set():
                method, path, body = routes[i % len(routes)]
                i += 1
                try:
                    status, headers, payload = http(method, orch.url + path, body, headers=auth, timeout=20)
                except Exception as e:  # a connection error would be a failure too
                    status, headers, payload = -1, {}, str(e)
                with lock:
                    counts[status] += 1
                    if not (200 <= status < 300 or (status == 503 and int(headers.get("retry-after", "0")) >= 1)):
                        bad.append((method, path, status, headers.get("retry-after"), str(payload)[:300]))

        ready_log = []

        def watch_ready():
            while not stop.is_set():
                status, _, _ = http("GET", orch.url + "/ready", timeout=20)
                ready_log.append((time.time(), status))
                time.sleep(0.1)

        threads = [threading.Thread(target=hammer, args=(k,)) for k in range(4)]
        threads.append(threading.Thread(target=watch_ready))
        for t in threads:
            t.start()
        try:
            time.sleep(1.0)
            before_restart = sum(counts.values())
            self.pg.restart("immediate")  # every pooled connection is cut
            time.sleep(2.0)
            self.pg.stop()  # -m immediate: an outage of a few seconds
            down_from = time.time()
            time.sleep(3.0)
            down_until = time.time()
            self.pg.start()
            # Recovery without restarting the orchestrator: /ready and every route answer 200 again.
            wait_until(lambda: http("GET", orch.url + "/ready", timeout=10)[0] == 200, timeout=30, what="/ready 200")
            recovered_at = time.time()
            time.sleep(1.5)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        print(f"\nanswers by status over the restart and the outage: {dict(counts)} "
              f"({before_restart} before the restart)", flush=True)
        self.assertEqual(bad, [], "answers other than 2xx or 503 + Retry-After")
        self.assertGreater(counts[503], 0, "the outage was never noticed: the test did not test anything")
        self.assertTrue(orch.proc.alive(), "the orchestrator exited")
        # /ready told the truth: 503 while the server was down (after the pool noticed), 200 after.
        during = [s for (t, s) in ready_log if down_from + 1.5 <= t <= down_until]
        self.assertTrue(during, "no /ready probe while the server was down")
        self.assertTrue(all(s == 503 for s in during), during)
        after = [s for (t, s) in ready_log if t >= recovered_at]
        self.assertTrue(after and all(s == 200 for s in after), after)
        for method, path, body in routes:
            status, _, payload = http(method, orch.url + path, body, headers=auth, timeout=20)
            self.assertLess(status, 300, (method, path, status, payload))
        # The tracker's database work survived too: the running refinement completes.
        p = wait_proposal(orch, token, running["proposal_id"], timeout=120)
        self.assertEqual(p["status"], "completed", p)
        self.assertEqual(curl(orch.url, "GET", "/ready").status, 200)


if __name__ == "__main__":
    unittest.main()
