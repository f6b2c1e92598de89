"""Resilience: engine down (503 + Retry-After, breaker opens and closes again), engine
killed mid-stream, orchestrator restarted mid-refinement, racing approve/reject, reads while
writes wait for another process's SQLite write lock."""
import os
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
import unittest
import uuid

from e2ekit import (DEMO_SCRIPT, Orchestrator, create_workflow, curl, refine, scripted_engine, slow_script,
                    stop_and_clean, wait_proposal, ws_follow, ws_url)
from testkit import free_port, pg_url_for, wait_until, ws_collect


def metric(orch, name):
    text = curl(orch.url, "GET", "/metrics").text
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


class Resilience(unittest.TestCase):
    database_url = None

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="e2e-res-")
        self.procs = []

    def tearDown(self):
        stop_and_clean(self.procs, self.dir)

    def start_engine(self, script=DEMO_SCRIPT, port=None):
        e = scripted_engine(self.dir, script=script, port=port).start()
        self.procs.append(e)
        return e

    def start_orch(self, engine_url, port=None, extra=(), jwt_secret=None):
        o = Orchestrator(self.dir, engine_url, port=port, extra=list(extra), jwt_secret=jwt_secret,
                         database_url=self.database_url).start()
        self.procs.append(o)
        return o

    def user(self, orch):
        orch.add_user("r@example.com")
        return orch.login("r@example.com")

    def test_engine_down_then_back(self):
        eport = free_port()
        orch = self.start_orch(f"http://127.0.0.1:{eport}", extra=["--engine-breaker-open-seconds", "2"])
        token = self.user(orch)
        wf = create_workflow(orch, token)
        r = refine(orch, token, wf["id"])
        self.assertEqual(r.status, 503, r.text)
        self.assertTrue(r.header("content-type").startswith("application/problem+json"))
        self.assertGreaterEqual(int(r.header("retry-after")), 1)
        self.assertIn("try again", r.json()["detail"])
        # more failures open the breaker; it then answers at once
        for _ in range(3):
            refine(orch, token, wf["id"])
        self.assertEqual(metric(orch, "ide_orchestrator_circuit_breaker_state"), 2.0)
        t0 = time.time()
        r = refine(orch, token, wf["id"])
        self.assertEqual(r.status, 503)
        self.assertLess(time.time() - t0, 1.0, "an open breaker should fail fast")
        ready = curl(orch.url, "GET", "/ready")
        self.assertEqual(ready.status, 200)
        self.assertEqual(ready.json()["status"], "degraded")
        # the service itself keeps serving
        self.assertEqual(curl(orch.url, "GET", f"/api/workflows/{wf['id']}", token=token).status, 200)
        # engine comes back: after the open period, trial calls close the breaker
        self.start_engine(port=eport)
        time.sleep(2.5)
        deadline = time.time() + 20
        ok = None
        while time.time() < deadline:
            ok = refine(orch, token, wf["id"])
            if ok.status in (201, 202):
                break
            time.sleep(0.5)
        self.assertIn(ok.status, (201, 202), ok.text)
        p = wait_proposal(orch, token, ok.json()["proposal_id"])
        self.assertEqual(p["status"], "completed")
        for _ in range(3):
            self.assertIn(refine(orch, token, wf["id"]).status, (201, 202))
        self.assertEqual(metric(orch, "ide_orchestrator_circuit_breaker_state"), 0.0)
        self.assertEqual(curl(orch.url, "GET", "/ready").json()["status"], "ready")

    def test_reads_go_on_while_writes_wait_for_the_sqlite_write_lock(self):
        """Another process holds the orchestrator's SQLite write lock (an operator's sqlite3 shell, a
        backup): the writes that arrive meanwhile wait, each on its own handler thread and pooled
        connection, up to half the handler threads; later ones answer 503 at once; reads keep
        answering 200 at once; once the lock is free the waiting writes complete."""
        orch = self.start_orch(f"http://127.0.0.1:{free_port()}", extra=["--db-wait-ms", "1000"])
        token = self.user(orch)
        wf = create_workflow(orch, token)
        db = sqlite3.connect(os.path.join(self.dir, "orch-data", "orchestrator.db"), timeout=10, isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        statuses, late = [], []  # (status, detail) of the first writes and of the late ones

        def write(out, name):
            r = curl(orch.url, "POST", "/api/workflows", {"name": name, "template": "multi-agent"}, token=token,
                     timeout=60)
            out.append((r.status, r.json().get("detail", "") if r.status >= 400 else ""))

        # 8 writes: one holds the process's lock (waiting in SQLite's busy timeout), 7 wait for it,
        # below the limit of 8 waiters (half the 16 handler threads) whenever they arrive.
        writers = [threading.Thread(target=write, args=(statuses, f"waiting {i}")) for i in range(8)]
        latecomers = [threading.Thread(target=write, args=(late, f"late {i}")) for i in range(4)]
        try:
            for t in writers:
                t.start()
            time.sleep(3)  # the lock is now stalled (held > 1 s, if the first write took it within 2 s)
            self.assertEqual(statuses, [], "the writes should still be waiting for the lock")
            # 4 more at once: one more may wait (the 8th waiter), the other 3 are turned away at once,
            # so writes cannot take the threads that reads need.
            t0 = time.time()
            for t in latecomers:
                t.start()
            self.assertTrue(wait_until(lambda: len(late) >= 3, timeout=5), late)
            self.assertLess(time.time() - t0, 5.0)
            self.assertEqual([st for st, _ in late], [503] * 3, late)
            self.assertIn("busy", late[0][1])
            for path in ("/api/me", f"/api/workflows/{wf['id']}", f"/api/workflows/{wf['id']}/versions", "/api/workflows"):
                t0 = time.time()
                r = curl(orch.url, "GET", path, token=token, timeout=10)
                self.assertEqual(r.status, 200, f"GET {path} while writes wait: {r.text}")
                self.assertLess(time.time() - t0, 2.0, f"GET {path} waited for the writes")
            ready = curl(orch.url, "GET", "/ready")  # the engine is down (degraded), the database is fine
            self.assertEqual(ready.json()["checks"]["database"], "ok", ready.text)
        finally:
            db.execute("COMMIT")
            db.close()
        for t in writers + latecomers:
            if t.is_alive() or t.ident is not None:
                t.join(timeout=60)
        self.assertEqual([st for st, _ in statuses], [201] * 8, statuses)
        self.assertEqual(sorted(st for st, _ in late), [201, 503, 503, 503], late)
        names = {w["name"] for w in curl(orch.url, "GET", "/api/workflows?limit=100", token=token).json()["items"]}
        self.assertTrue({f"waiting {i}" for i in range(8)} <= names, names)

    def test_a_second_orchestrator_on_the_same_sqlite_data_dir_refuses_to_start(self):
        """One process per SQLite data directory (its write lock and pool are per process): a second
        `serve` names the first one's pid and exits 1; the user commands still run next to it; after
        kill -9 of the first the kernel has dropped the lock and a new one starts."""
        engine_url = f"http://127.0.0.1:{free_port()}"
        orch = self.start_orch(engine_url)
        second = Orchestrator(self.dir, engine_url)
        r = subprocess.run([second.exe, "serve", *second.storage(), "--host", "127.0.0.1", "--port", str(free_port()),
                            "--engine-url", engine_url], env=second.env(), capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(f"another ide-orchestrator (pid {orch.proc.p.pid}) is using the SQLite database", r.stderr)
        self.assertIn("--database-url", r.stderr)
        orch.add_user("beside@example.com")  # admin commands are not locked out
        token = orch.login("beside@example.com")
        orch.stop(signal.SIGKILL)
        again = self.start_orch(engine_url, jwt_secret=orch.jwt_secret)
        self.assertEqual(curl(again.url, "GET", "/api/me", token=token).status, 200)

    def test_engine_that_never_answers_times_out_per_attempt(self):
        # An engine that accepts connections and never answers (hung, or far behind under load):
        # each attempt ends after --engine-timeout-seconds, and after 3 attempts the caller gets 503.
        import socket
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        held = []
        stop = threading.Event()

        def accept():
            listener.settimeout(0.2)
            while not stop.is_set():
                try:
                    held.append(listener.accept()[0])
                except OSError:
                    pass
        t = threading.Thread(target=accept, daemon=True)
        t.start()
        try:
            orch = self.start_orch(f"http://127.0.0.1:{listener.getsockname()[1]}",
                                   extra=["--engine-timeout-seconds", "0.5"])
            token = self.user(orch)
            wf = create_workflow(orch, token)
            t0 = time.time()
            r = refine(orch, token, wf["id"])
            elapsed = time.time() - t0
            self.assertEqual(r.status, 503, r.text)
            self.assertGreaterEqual(len(held), 3, "every attempt connects")
            # 3 attempts of 0.5 s plus at most 2 backoffs of 2 s; the default (5 s) takes 15 s or more.
            self.assertLess(elapsed, 8.0)
        finally:
            stop.set()
            t.join()
            for c in held:
                c.close()
            listener.close()

    def start_slow_refinement(self, settle, when):
        """Engine on slow_script + orchestrator + user + a refinement still processing after `settle` s."""
        script = slow_script(os.path.join(self.dir, "slow.json"))
        eng = self.start_engine(script=script)
        orch = self.start_orch(eng.base)
        token = self.user(orch)
        wf = create_workflow(orch, token)
        started = refine(orch, token, wf["id"]).json()
        time.sleep(settle)
        mid = curl(orch.url, "GET", f"/api/proposals/{started['proposal_id']}", token=token).json()
        self.assertEqual(mid["status"], "processing", f"the scripted run should still be going {when}")
        return script, eng, orch, token, started

    def test_engine_killed_mid_stream(self):
        script, eng, orch, token, started = self.start_slow_refinement(1.0, "when the engine dies")
        # a browser watching through the proxy while the engine dies
        seen = {}
        watcher = threading.Thread(target=lambda: seen.update(zip(("events", "close", "resumes"), ws_follow(
            orch, started["thread_id"], token, timeout=120))))
        watcher.start()
        time.sleep(0.5)
        eng.kill9()
        # restart the engine on the same port and data: the run resumes or fails, never stuck
        eng2 = scripted_engine(self.dir, script=script, port=eng.port)
        eng2.data_dir = eng.data_dir
        eng2.start()
        self.procs.append(eng2)
        p = wait_proposal(orch, token, started["proposal_id"], timeout=120)
        self.assertIn(p["status"], ("completed", "failed"), p)
        watcher.join(150)
        events = seen.get("events", [])
        self.assertTrue(events, "the watcher received nothing")
        # the proxy resumed with after_seq (every event once, in order) or reported an error event
        seqs = [e["seq"] for e in events if "seq" in e]
        self.assertEqual(seqs, sorted(set(seqs)), "duplicate or out-of-order events after the resume")
        self.assertIn(events[-1]["event_type"], ("end", "error"), (events[-1], seen.get("close"), seen.get("resumes")))

    def test_orchestrator_restart_mid_refinement(self):
        _, eng, orch, token, started = self.start_slow_refinement(0.5, "at the restart")
        orch.stop(signal.SIGKILL)
        orch2 = self.start_orch(eng.base, port=orch.port, jwt_secret=orch.jwt_secret)
        p = wait_proposal(orch2, token, started["proposal_id"], timeout=120)
        self.assertEqual(p["status"], "completed", p)
        self.assertIn("/THE_CAST/FactChecker.md", p["generated_files"])

    def test_cancel_processing_refinement(self):
        script, eng, orch, token, started = self.start_slow_refinement(1.0, "when it is cancelled")
        pid, tid = started["proposal_id"], started["thread_id"]
        r = curl(orch.url, "POST", f"/api/proposals/{pid}/cancel", token=token)
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(r.json()["proposal"]["status"], "cancelled")
        # the engine run is stopped and its thread removed
        wait_until(lambda: eng.state(tid)[0] == 404, timeout=30, what="engine thread deleted")
        # the tracker never turns a cancelled proposal into anything else
        time.sleep(1.0)
        p = curl(orch.url, "GET", f"/api/proposals/{pid}", token=token).json()
        self.assertEqual(p["status"], "cancelled", p)
        again = curl(orch.url, "POST", f"/api/proposals/{pid}/cancel", token=token)
        self.assertEqual(again.status, 409, again.text)
        self.assertIn("problem+json", again.header("content-type"))

    def test_concurrent_approve_reject(self):
        eng = self.start_engine()
        orch = self.start_orch(eng.base)
        token = self.user(orch)
        for _ in range(3):
            wf = create_workflow(orch, token)
            started = refine(orch, token, wf["id"]).json()
            p = wait_proposal(orch, token, started["proposal_id"])
            self.assertEqual(p["status"], "completed")
            results = []
            barrier = threading.Barrier(4)

            def go(action):
                barrier.wait()
                results.append((action, curl(orch.url, "POST", f"/api/proposals/{p['id']}/{action}", {}, token=token).status))

            ts = [threading.Thread(target=go, args=(a,)) for a in ("approve", "reject", "approve", "reject")]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            wins = [r for r in results if r[1] == 200]
            self.assertEqual(len(wins), 1, results)
            self.assertTrue(all(s == 409 for a, s in results if (a, s) not in wins), results)
            final = curl(orch.url, "GET", f"/api/proposals/{p['id']}", token=token).json()
            self.assertEqual(final["status"], "approved" if wins[0][0] == "approve" else "rejected")


@unittest.skipUnless(os.environ.get("TEST_PG_URL"), "TEST_PG_URL not set")
class ConcurrentDecisionsPostgres(unittest.TestCase):
    """Racing approve/reject with the orchestrator on PostgreSQL (row locks, not SQLite's single writer)."""

    def test_concurrent_approve_reject(self):
        r = Resilience("test_concurrent_approve_reject")
        r.database_url = pg_url_for("ide_orchestrator_race_" + uuid.uuid4().hex[:10])
        r.setUp()
        try:
            r.test_concurrent_approve_reject()
        finally:
            r.tearDown()


if __name__ == "__main__":
    unittest.main()
