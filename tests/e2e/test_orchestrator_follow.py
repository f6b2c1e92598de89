"""Following engine threads end to end, with the real spec-engine and ide-orchestrator binaries
(docs/event-path-and-replicas.md "IDE Orchestrator"). The model is a local OpenAI-compatible
server (tests/fixtures/spec_engine/fake_openai.py) whose delayed replies keep runs going long
enough to connect browsers, stop the engine, or kill an orchestrator mid-run.

  - many browsers on one thread share one upstream stream (counted in the engine's log); a late
    joiner and an after_seq resume get every event once, in order;
  - 300 browsers on 30 threads: the orchestrator's thread count stays below 64, and the engine
    sees one stream per thread;
  - the engine stopped (SIGTERM) and started again 22 s later: the proposal ends `completed`,
    a browser watching through the outage gets the whole run, and new refinements meanwhile
    open the circuit breaker without stopping the tracker;
  - the orchestrator stopped (SIGTERM) while refinement starts wait for the engine's answer:
    it waits for them, and after a restart no proposal stays `processing`;
  - two orchestrators on one PostgreSQL, one killed with SIGKILL mid-refinement: the other
    finalises its proposals within lease TTL + 30 s and browsers resume there with after_seq.
"""
import asyncio
import json
import os
import signal
import sys
import tempfile
import threading
import time
import unittest
import uuid

import testkit
from e2ekit import Orchestrator, create_workflow, curl, refine, stop_and_clean, wait_proposal, ws_url
from testkit import Engine, pg_url_for, wait_until

sys.path.insert(0, os.path.join(testkit.FIXTURES, "spec_engine"))
from fake_openai import FakeOpenAI  # noqa: E402


def todo_turn(i, delay):
    return {"delay": delay, "content": f"Step {i}.",
            "tool_calls": [{"id": f"t{i}", "name": "write_todos",
                            "arguments": {"todos": [{"content": f"step {i}", "status": "in_progress"}]}}]}


def write_turn(tag, delay=0):
    return {"delay": delay, "content": "Writing the fact checker.",
            "tool_calls": [{"id": f"w{tag}", "name": "write_file",
                            "arguments": {"file_path": "/THE_CAST/FactChecker.md",
                                          "content": "# FactChecker\nChecks every claim.\n"}}]}


def metric(orch, name, labels=""):
    for line in curl(orch.url, "GET", "/metrics").text.splitlines():
        if line.startswith(name + labels + " ") or (not labels and line.startswith(name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return None


def engine_streams(engine, thread_id):
    """Stream connections the engine opened for `thread_id` (its "stream opened" log lines)."""
    n = 0
    for line in engine.proc.output().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("msg") == "stream opened" and rec.get("thread_id") == thread_id:
            n += 1
    return n


def threads_of(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return -1


async def browse(url, token, after_seq=None, stop_after=None, connected=None, timeout=120):
    """One browser through the orchestrator (testkit.browse with the bearer token): reads events
    until the server closes (or `stop_after` events); returns (events, close code). `connected`
    (an asyncio.Event) is set once the upgrade succeeded."""
    q = "" if after_seq is None else f"?after_seq={after_seq}"
    return await testkit.browse((url + q, {"Authorization": "Bearer " + token}), stop_after=stop_after,
                                timeout=timeout, on_open=connected)


def seqs(events):
    return [e["seq"] for e in events]


class FollowCase(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="e2e-follow-")
        self.procs = []
        self.fake = None

    def tearDown(self):
        stop_and_clean(self.procs, self.dir, tail_chars=4000)
        if self.fake:
            self.fake.stop()

    def model(self, replies):
        self.fake = FakeOpenAI(replies).start()
        return self.fake

    def engine(self, port=None, extra=()):
        e = Engine(["--model-override", "openai:test-model", "--shutdown-grace-ms", "300", *extra],
                   data_dir=os.path.join(self.dir, "engine-data"), port=port, log_dir=self.dir,
                   env={"OPENAI_BASE_URL": self.fake.base_url, "OPENAI_API_KEY": "sk-test-not-secret"}).start()
        self.procs.append(e)
        return e

    def orchestrator(self, engine_url, extra=(), database_url=None, jwt_secret=None, workdir=None):
        os.makedirs(workdir or self.dir, exist_ok=True)
        o = Orchestrator(workdir or self.dir, engine_url, extra=list(extra), database_url=database_url,
                         jwt_secret=jwt_secret).start()
        self.procs.append(o)
        return o

    def user(self, orch):
        email = f"f-{uuid.uuid4().hex[:8]}@example.com"
        orch.add_user(email)
        return orch.login(email)

    def assert_whole(self, events, what):
        self.assertTrue(events, f"{what}: no events")
        self.assertEqual(seqs(events), list(range(1, len(events) + 1)), f"{what}: gap, duplicate or reorder")
        self.assertEqual(events[-1]["event_type"], "end", f"{what}: the stream did not end with `end`")


class SharedUpstream(FollowCase):
    def test_many_browsers_one_upstream_late_joiner_and_resume(self):
        self.model([todo_turn(1, 1.0), todo_turn(2, 1.0), todo_turn(3, 1.0), todo_turn(4, 1.0),
                    write_turn(1, 1.0), {"content": "Done."}])
        eng = self.engine()
        orch = self.orchestrator(eng.base)
        token = self.user(orch)
        wf = create_workflow(orch, token)
        r = refine(orch, token, wf["id"])
        self.assertEqual(r.status, 202, r.text)
        started = r.json()
        url = ws_url(orch, started["thread_id"])

        async def scenario():
            watchers = [asyncio.create_task(browse(url, token)) for _ in range(30)]
            await asyncio.sleep(2.0)
            late = asyncio.create_task(browse(url, token))  # joins mid-run, from the start
            first, _ = await browse(url, token, stop_after=3)  # reads 3 events, goes away ...
            rest = await browse(url, token, after_seq=first[-1]["seq"])  # ... and resumes
            return await asyncio.gather(*watchers), await late, first, rest

        watched, late, first, rest = asyncio.run(scenario())
        for i, (events, code) in enumerate(watched):
            self.assert_whole(events, f"browser {i}")
            self.assertEqual(code, 1000)
        full = watched[0][0]
        for events, _ in watched:
            self.assertEqual(events, full, "every browser sees the same events")
        self.assertEqual(late[0], full, "the late joiner got everything, once, in order")
        self.assertEqual(first + rest[0], full, "resume with after_seq: no gap, no duplicate")
        self.assertEqual(rest[1], 1000)
        p = wait_proposal(orch, token, started["proposal_id"])
        self.assertEqual(p["status"], "completed", p)
        self.assertIn("/THE_CAST/FactChecker.md", p["generated_files"])
        # The tracker and 33 browser connections shared one upstream engine stream.
        self.assertEqual(engine_streams(eng, started["thread_id"]), 1, eng.log()[-3000:])

    def test_threads_do_not_grow_with_browsers_and_proposals(self):
        runs, per_run = 30, 10
        self.model([{"delay": 12, "content": "Done."} for _ in range(runs)])
        eng = self.engine(extra=["--max-concurrent-runs", "64"])
        # One user starts all 30 refinements: lift the per-user caps for this load.
        orch = self.orchestrator(eng.base, ["--max-concurrent-runs-per-user", "0", "--refinement-rate-limit", "1000",
                                            "--user-rate-limit", "100000"])
        token = self.user(orch)
        idle_threads = threads_of(orch.proc.p.pid)
        started = []
        for i in range(runs):
            wf = create_workflow(orch, token, name=f"Load {i}")
            r = refine(orch, token, wf["id"])
            self.assertEqual(r.status, 202, r.text)
            started.append(r.json())

        async def scenario():
            flags = [asyncio.Event() for _ in range(runs * per_run)]
            tasks = [asyncio.create_task(browse(ws_url(orch, s["thread_id"]), token, connected=flags[i * per_run + j]))
                     for i, s in enumerate(started) for j in range(per_run)]
            await asyncio.wait_for(asyncio.gather(*(f.wait() for f in flags)), 60)
            peak = threads_of(orch.proc.p.pid)
            return peak, await asyncio.gather(*tasks)

        peak, results = asyncio.run(scenario())
        print(f"\norchestrator threads: {idle_threads} idle, {peak} with {runs} proposals and "
              f"{runs * per_run} browsers", flush=True)
        self.assertLess(peak, 64, "thread count must not depend on the number of browsers or proposals")
        for events, code in results:
            self.assert_whole(events, "browser")
            self.assertEqual(code, 1000)
        for s in started:
            self.assertEqual(wait_proposal(orch, token, s["proposal_id"], timeout=60)["status"], "completed")
            self.assertEqual(engine_streams(eng, s["thread_id"]), 1, "one engine stream per thread")


class EngineOutage(FollowCase):
    def test_engine_down_22s_proposal_completes_and_the_breaker_does_not_stop_the_tracker(self):
        self.model([todo_turn(1, 0), write_turn(1, 5.0), write_turn(2, 0), {"content": "Done."}])
        eng = self.engine()
        orch = self.orchestrator(eng.base, extra=["--engine-breaker-open-seconds", "600"])
        token = self.user(orch)
        wf = create_workflow(orch, token)
        started = refine(orch, token, wf["id"]).json()
        url = ws_url(orch, started["thread_id"])

        async def scenario():
            watcher = asyncio.create_task(browse(url, token, timeout=180))
            # The first step is done and the second model call is in flight: stop the engine.
            await asyncio.to_thread(wait_until, lambda: len(self.fake.requests) >= 2, 30, 0.05, "second model call")
            eng.stop(signal.SIGTERM)
            down_at = time.monotonic()
            # New refinements fail while it is down, and open the breaker.
            for _ in range(3):
                r = await asyncio.to_thread(refine, orch, token, wf["id"])
                self.assertEqual(r.status, 503, r.text)
            self.assertEqual(metric(orch, "ide_orchestrator_circuit_breaker_state"), 2.0)
            mid = curl(orch.url, "GET", f"/api/proposals/{started['proposal_id']}", token=token).json()
            self.assertEqual(mid["status"], "processing", "an outage never fails live work")
            await asyncio.sleep(max(0.0, 22.0 - (time.monotonic() - down_at)))
            self.assertEqual(curl(orch.url, "GET", f"/api/proposals/{started['proposal_id']}",
                                  token=token).json()["status"], "processing")
            again = Engine(eng.args, data_dir=eng.data_dir, port=eng.port, log_dir=self.dir, env=eng.env)
            again.start()
            self.procs.append(again)
            return await watcher

        events, code = asyncio.run(scenario())
        p = wait_proposal(orch, token, started["proposal_id"], timeout=90)
        self.assertEqual(p["status"], "completed", p)
        self.assertIn("/THE_CAST/FactChecker.md", p["generated_files"])
        self.assert_whole(events, "browser watching through the outage")
        self.assertEqual(code, 1000)
        # The tracker finished the run although the breaker still refuses new refinements.
        self.assertEqual(metric(orch, "ide_orchestrator_circuit_breaker_state"), 2.0)
        self.assertEqual(refine(orch, token, wf["id"]).status, 503)


class StartsAtShutdown(FollowCase):
    def test_sigterm_while_starts_wait_for_the_engine_loses_no_proposal(self):
        """Starts still waiting for the engine's answer when the orchestrator is stopped (SIGTERM)
        are waited for before it exits (App::stop), also after the server gave up on their
        connections; after a restart on the same database every proposal completes, and the
        engine ran each proposal's thread once."""
        self.model([{"content": "Done."} for _ in range(6)])
        eng = self.engine()
        flags = ["--sweep-period-seconds", "1", "--lease-ttl-seconds", "3", "--engine-timeout-seconds", "10"]
        orch = self.orchestrator(eng.base, flags)
        token = self.user(orch)
        workflows = [create_workflow(orch, token, name=f"Shutdown {i}") for i in range(3)]

        def proposals_of(o):
            out = []
            for w in workflows:
                out += curl(o.url, "GET", f"/api/workflows/{w['id']}/proposals", token=token).json()["items"]
            return out

        answers = {}

        def start(i):
            try:
                answers[i] = refine(orch, token, workflows[i]["id"]).status
            except Exception as e:  # the connection may be closed at shutdown before the answer
                answers[i] = repr(e)

        posts = [threading.Thread(target=start, args=(i,)) for i in range(len(workflows))]
        os.kill(eng.proc.p.pid, signal.SIGSTOP)  # the engine takes the invokes but does not answer
        try:
            for t in posts:
                t.start()
            wait_until(lambda: len(proposals_of(orch)) == len(workflows), 15, 0.1, "every start recorded")
            time.sleep(0.3)  # and sent its invoke
            orch.proc.p.send_signal(signal.SIGTERM)
            # Past the server's 3 s wait for open streams (then it closes the connections, so the
            # starts' answers are lost): the starts still run and the process waits for them.
            time.sleep(3.6)
            self.assertIsNone(orch.proc.p.poll(), "the orchestrator exited without waiting for its starts")
        finally:
            os.kill(eng.proc.p.pid, signal.SIGCONT)
        self.assertEqual(orch.proc.p.wait(60), 0, orch.tail())
        for t in posts:
            t.join(30)
        print(f"\nstarts answered at shutdown: {sorted(answers.values(), key=str)}", flush=True)

        again = self.orchestrator(eng.base, flags, jwt_secret=orch.jwt_secret)
        ended = {}
        for p in proposals_of(again):
            ended[p["id"]] = wait_proposal(again, token, p["id"], timeout=60)
        self.assertEqual(len(ended), len(workflows))
        # Each start reached the engine and handed its proposal to the tracker before the
        # process exited, so the restarted orchestrator's sweeper finishes them all.
        self.assertEqual([p["status"] for p in ended.values()], ["completed"] * len(workflows), ended)
        threads = [p["thread_id"] for p in ended.values() if p["status"] == "completed"]
        self.assertEqual(len(set(threads)), len(threads))
        for tid in threads:
            self.assertEqual(
                sum(1 for line in eng.proc.output().splitlines() if '"run started"' in line and tid in line), 1,
                f"thread {tid}: one run")


@unittest.skipUnless(os.environ.get("TEST_PG_URL"), "TEST_PG_URL not set (run under scripts/with-test-services.sh)")
class OrchestratorReplicas(FollowCase):
    def test_kill9_one_replica_the_other_finalises_and_browsers_resume_there(self):
        ttl = 5
        self.model([todo_turn(i, 1.0) for i in range(1, 13)] + [write_turn(i, 0.5) for i in range(3)])
        eng = self.engine()
        db = pg_url_for("ide_orchestrator_replicas_" + uuid.uuid4().hex[:10])
        secret = "r" * 48
        flags = ["--lease-ttl-seconds", str(ttl), "--sweep-period-seconds", "1"]
        a = self.orchestrator(eng.base, flags, database_url=db, jwt_secret=secret,
                              workdir=os.path.join(self.dir, "a"))
        b = self.orchestrator(eng.base, flags, database_url=db, jwt_secret=secret,
                              workdir=os.path.join(self.dir, "b"))
        token = self.user(a)
        started = []
        for i in range(3):
            wf = create_workflow(a, token, name=f"Replica {i}")
            r = refine(a, token, wf["id"])
            self.assertEqual(r.status, 202, r.text)
            started.append(r.json())
        watched = started[0]

        async def scenario():
            import websockets
            events = []
            async with websockets.connect(ws_url(a, watched["thread_id"]),
                                          extra_headers={"Authorization": "Bearer " + token}) as ws:
                while len(events) < 3:
                    events.append(json.loads(await asyncio.wait_for(ws.recv(), 30)))
                a.stop(signal.SIGKILL)  # mid-refinement, while this browser is connected
                killed_at = time.monotonic()
                try:
                    while True:
                        events.append(json.loads(await asyncio.wait_for(ws.recv(), 30)))
                except websockets.ConnectionClosed:
                    pass
            rest, code = await browse(ws_url(b, watched["thread_id"]), token, after_seq=events[-1]["seq"])
            return events, rest, code, killed_at

        before, after, code, killed_at = asyncio.run(scenario())
        self.assert_whole(before + after, "browser moved from the killed replica to the other")
        self.assertEqual(code, 1000)
        for s in started:
            budget = ttl + 30 - (time.monotonic() - killed_at)
            p = wait_proposal(b, token, s["proposal_id"], timeout=max(1.0, budget))
            self.assertEqual(p["status"], "completed", p)
        took = time.monotonic() - killed_at
        print(f"\nreplica killed: the other finalised its {len(started)} proposals {took:.1f} s later "
              f"(lease TTL {ttl} s)", flush=True)
        self.assertLess(took, ttl + 30)


if __name__ == "__main__":
    unittest.main()
