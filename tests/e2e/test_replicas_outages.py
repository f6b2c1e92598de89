"""Outages of the replicated deployment (issue 7, "Must show" 5-6), in the topology of
test_replicas_acceptance.py: 3 engine replicas behind a balancer, 2 orchestrator replicas, one
PostgreSQL server for both, NATS, a paced model server counting requests per thread.

5. Every engine stopped (SIGTERM) for 45 s, then started again: every proposal ends `completed`,
   none `failed`, and browsers watching through the outage get every event once.
   (ACCEPT_ENGINE_OUTAGE_S changes the 45 s for local runs; CI keeps 45.)
6. PostgreSQL restarted (`pg_ctl restart -m immediate`) mid-run, on a server of this test's own:
   both services recover without a restart and every run and proposal finishes; meanwhile every
   answer of a few routes polled continuously is a success or 503 with Retry-After.

Run: scripts/with-test-services.sh ctest --preset default -R replicas_outages
"""
import asyncio
import os
import signal
import sys
import threading
import time
import unittest
import uuid

from e2ekit import curl
from replicakit import file_script, ReplicaStack, check_stream
from testkit import PgCluster, browse, http, wait_until

OUTAGE_S = float(os.environ.get("ACCEPT_ENGINE_OUTAGE_S", "45"))
# The orchestrator's side of a database restart: every access runs as a unit of work that
# reconnects (store/unit_of_work.hpp); 503 + Retry-After while the database is away. When False,
# its part of the restart test is reported as skipped, with what was observed.
ORCHESTRATOR_RIDES_OUT_DB_RESTART = True


class OutageCase(unittest.TestCase):
    def stack(self, pg_url, turns, pace):
        s = ReplicaStack(pg_url, os.environ.get("TEST_NATS_URL"), script=file_script(turns), pace=pace)
        self.addCleanup(s.close)
        return s

    def prompt(self, i):
        return f"Refinement {i} {uuid.uuid4().hex[:8]}: add a fact checker."

    def assert_resumed_from_checkpoints(self, s, started, turns):
        """Every turn asked; the runs were interrupted once, so at most the turn in flight then
        was asked twice (the others resumed from the checkpoint)."""
        for r in started:
            asked = s.turns(r["prompt"])
            self.assertEqual(sorted(set(asked)), list(range(turns)), asked)
            self.assertLessEqual(len(asked) - turns, 1, f"turns asked again: {asked}")


@unittest.skipUnless(os.environ.get("TEST_PG_URL"), "TEST_PG_URL not set (run under scripts/with-test-services.sh)")
class EngineOutage(OutageCase):
    def test_every_engine_down_45s_every_proposal_completes(self):
        turns = 6
        s = self.stack(os.environ["TEST_PG_URL"], turns, pace=0.1)
        started = [s.refine(s.orchs[i % 2], self.prompt(i)) for i in range(6)]
        wait_until(lambda: all(s.turns(r["prompt"]) for r in started), timeout=30, what="every run asking the model")

        async def scenario():
            watchers = [asyncio.create_task(browse(s.browser(s.orchs[i % 2], r["thread_id"]), timeout=OUTAGE_S + 90))
                        for i, r in enumerate(started[:2])]
            await asyncio.sleep(0.5)
            for e in s.engines:
                e.proc.p.send_signal(signal.SIGTERM)
            for e in s.engines:
                await asyncio.to_thread(e.proc.p.wait, 30)
                self.assertEqual(e.stop(), 0, e.log()[-3000:])
            down_at = time.monotonic()
            self.assertTrue(s.unfinished(), "every run ended before the engines stopped: the test proves nothing")
            # Nothing is failed while the engines are away.
            while time.monotonic() - down_at < OUTAGE_S:
                for r in started:
                    p = await asyncio.to_thread(s.proposal, s.orchs[0], r["proposal_id"])
                    self.assertEqual(p["status"], "processing", f"{OUTAGE_S - (time.monotonic() - down_at):.0f} s "
                                                                f"before the engines return: {p}")
                await asyncio.sleep(min(5.0, max(0.0, OUTAGE_S - (time.monotonic() - down_at))))
            for i, e in enumerate(list(s.engines)):
                await asyncio.to_thread(s.restart_engine, e, f"engine-{i + 1}-again")
            return time.monotonic(), await asyncio.gather(*watchers)

        back_at, watched = asyncio.run(scenario())
        for r in started:
            p = s.wait_proposal(s.orchs[1], r["proposal_id"], timeout=90)
            self.assertEqual(p["status"], "completed", p)
        print(f"\n[outage] every engine down {OUTAGE_S:g} s: all {len(started)} proposals completed "
              f"{time.monotonic() - back_at:.1f} s after the engines were back", file=sys.stderr)
        for r, (events, code) in zip(started, watched):
            check_stream(self, events, code, s.state(r["thread_id"]), f"browser of {r['thread_id']} through the outage")
        self.assert_resumed_from_checkpoints(s, started, turns)
        self.assertEqual(s.unfinished(), {})


@unittest.skipUnless(os.environ.get("TEST_PG_URL"), "TEST_PG_URL not set (run under scripts/with-test-services.sh)")
class DatabaseRestart(OutageCase):
    maxDiff = None

    def poll(self, s, started, stop, answers):
        """Polls a few routes of every replica until `stop` is set; appends (time, who, route,
        status, retry_after or the exception) to `answers`."""
        tids = [r["thread_id"] for r in started]
        pids = [r["proposal_id"] for r in started]
        i = 0
        while not stop.is_set():
            i += 1
            o = s.orchs[i % len(s.orchs)]
            e = s.engines[i % len(s.engines)]
            calls = [
                (o.name, "GET /api/workflows", lambda: curl(o.url, "GET", "/api/workflows", token=s.token, timeout=20)),
                (o.name, "GET /api/proposals/{id}",
                 lambda: curl(o.url, "GET", f"/api/proposals/{pids[i % len(pids)]}", token=s.token, timeout=20)),
                (o.name, "POST /api/workflows",
                 lambda: curl(o.url, "POST", "/api/workflows", {"name": f"poll {i}", "template": "multi-agent"},
                              token=s.token, timeout=20)),
                (e.replica_id, "GET /spec-engine/state/{id}",
                 lambda: http("GET", f"{e.base}/spec-engine/state/{tids[i % len(tids)]}", timeout=20)),
            ]
            for who, route, call in calls:
                at = time.monotonic()
                try:
                    r = call()
                    status, headers = (r.status, r.headers) if hasattr(r, "status") else (r[0], r[1])
                    answers.append((at, who, route, status, headers.get("retry-after")))
                except Exception as ex:  # noqa: BLE001 - a dropped connection is an answer we record
                    answers.append((at, who, route, None, repr(ex)))
            time.sleep(0.05)

    def test_postgres_restart_mid_run_both_services_recover(self):
        pg = PgCluster().start()
        self.addCleanup(pg.cleanup)
        turns = 6
        s = self.stack(pg.url(), turns, pace=0.1)
        started = [s.refine(s.orchs[i % 2], self.prompt(i)) for i in range(6)]
        wait_until(lambda: all(s.turns(r["prompt"]) for r in started), timeout=30, what="every run asking the model")
        answers, stop = [], threading.Event()
        poller = threading.Thread(target=self.poll, args=(s, started, stop, answers), daemon=True)
        poller.start()
        watchers = {}

        def watch():
            async def go():
                return await asyncio.gather(*(browse(s.browser(s.orchs[i % 2], r["thread_id"]), timeout=120)
                                              for i, r in enumerate(started[:2])))
            watchers["result"] = asyncio.run(go())
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        time.sleep(1.0)
        self.assertTrue(s.unfinished(), "every run ended before the restart: the test proves nothing")
        restart_at = time.monotonic()
        pg.restart("immediate")
        up_at = time.monotonic()
        try:
            for r in started:
                st = s.wait_thread(r["thread_id"], timeout=90)
                self.assertEqual(st["status"], "completed", st)
            engine_done = time.monotonic()
            proposals = {}
            for r in started:
                left = max(1.0, engine_done + 45 - time.monotonic())
                try:
                    proposals[r["proposal_id"]] = s.wait_proposal(s.orchs[0], r["proposal_id"], timeout=left)
                except AssertionError as ex:
                    proposals[r["proposal_id"]] = {"status": f"unfinished: {ex}"}
            proposals_done = time.monotonic()
        finally:
            time.sleep(1.0)
            stop.set()
            poller.join(30)
        watcher.join(60)
        orch_503 = sum(1 for a in answers if a[1].startswith("orch") and a[3] == 503)
        print(f"\n[outage] PostgreSQL restart took {up_at - restart_at:.1f} s; every run completed "
              f"{engine_done - up_at:.1f} s later, every proposal {proposals_done - up_at:.1f} s later; "
              f"{len(answers)} answers polled ({orch_503} orchestrator 503s)", file=sys.stderr)
        for e in s.engines:
            self.assertTrue(e.proc.alive(), f"{e.replica_id} exited:\n{e.log()[-3000:]}")
        for o in s.orchs:
            self.assertTrue(o.proc.alive(), f"{o.name} exited:\n{o.tail()}")

        def bad(who_prefix):
            """Answers other than success or 503 + Retry-After, summarised: (who, route, status or
            exception) -> [count, first and last second relative to the restart]."""
            out = {}
            for at, who, route, status, extra in answers:
                if who.startswith(who_prefix) and not ((status is not None and 200 <= status < 300) or
                                                       (status == 503 and extra)):
                    key = (who, route, status if status is not None else extra[:120])
                    rel = round(at - restart_at, 1)
                    n, first, _ = out.get(key, (0, rel, rel))
                    out[key] = [n + 1, first, rel]
            return out
        during = [a for a in answers if restart_at - 0.5 <= a[0] <= up_at + 2]
        self.assertTrue(during, "nothing was polled during the outage")
        self.assertEqual(bad("engine"), {}, "engine answers other than success or 503 + Retry-After")
        self.assert_resumed_from_checkpoints(s, started, turns)
        self.assertEqual(s.unfinished(), {})
        # The orchestrator side.
        if not ORCHESTRATOR_RIDES_OUT_DB_RESTART:
            unfinished = sorted(p["status"][:40] for p in proposals.values() if p["status"] != "completed")
            self.skipTest("engine side passed; orchestrator side not checked (ORCHESTRATOR_RIDES_OUT_DB_RESTART): "
                          f"observed {sum(v[0] for v in bad('orch').values())} answers other than success or "
                          f"503 + Retry-After ({sorted(set((k[1], k[2]) for k in bad('orch')))}), "
                          f"{len(unfinished)} of {len(proposals)} proposals not completed")
        self.assertEqual(bad("orch"), {}, "orchestrator answers other than success or 503 + Retry-After")
        for pid, p in proposals.items():
            self.assertEqual(p["status"], "completed", (pid, p))
        for r, (events, code) in zip(started, watchers.get("result") or []):
            check_stream(self, events, code, s.state(r["thread_id"]), f"browser of {r['thread_id']} through the restart")


if __name__ == "__main__":
    unittest.main()
