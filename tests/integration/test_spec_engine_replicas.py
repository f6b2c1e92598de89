"""Engine replicas (issue 7 items 1-3; docs/event-path-and-replicas.md): two or three real
`spec-engine` processes on one PostgreSQL database, without NATS (LISTEN/NOTIFY link) and with
NATS (`--nats-url`), against a local OpenAI-compatible server that paces its tokens and counts
model requests per conversation (= per thread). Each test proves one mechanism:

- a stream opened on a replica that does not run the thread is complete and gapless;
- a replica started mid-run takes nothing owned by a live replica;
- kill -9 of the owner: another replica completes the thread within lease TTL + 10 s from its
  last checkpoint (completed turns are not asked again), streams reconnect elsewhere with
  after_seq, and no thread is left running; the time to takeover is printed;
- SIGTERM of the owner releases its leases: another replica takes over within a renew period;
- DELETE on a non-owner stops the run on the owner;
- a second process on the same SQLite data directory refuses to start.
"""
import json
import os
import subprocess
import sys
import time
import unittest
import uuid

import testkit
from testkit import Engine, collect_many, http, wait_until, ws_collect

sys.path.insert(0, os.path.join(testkit.FIXTURES, "spec_engine"))
from fake_openai import FakeOpenAI, file_script  # noqa: E402

# Short leases keep the suite fast; set these to measure other values (e.g. the defaults,
# 15000 and 5000): the tests' time limits follow them.
TTL_MS = int(os.environ.get("REPLICA_TEST_LEASE_TTL_MS", "3000"))
RENEW_MS = int(os.environ.get("REPLICA_TEST_LEASE_RENEW_MS", "1000"))
TURNS = 4
PACE = 0.05  # seconds between 5-character content pieces


def script(turns=TURNS, text_len=60):
    """`turns` model turns; each but the last writes one file (fake_openai.file_script)."""
    return file_script(turns, text_len)


class ReplicaCase(unittest.TestCase):
    """Engines on one fresh PostgreSQL database; subclasses add NATS."""

    def extra_args(self):
        return []

    def setUp(self):
        if not os.environ.get("TEST_PG_URL"):
            self.skipTest("TEST_PG_URL not set")
        self.db_url = testkit.make_pg_database("se_rep")
        self.fake = FakeOpenAI(script=script(), pace=PACE).start()
        self.engines = []

    def tearDown(self):
        for e in self.engines:
            e.cleanup()
        self.fake.stop()

    def engine(self, *extra, start=True):
        e = Engine(["--model-override", "openai:test-model", "--lease-ttl-ms", str(TTL_MS),
                    "--lease-renew-ms", str(RENEW_MS), "--shutdown-grace-ms", "500", *self.extra_args(), *extra],
                   database_url=self.db_url,
                   env={"OPENAI_BASE_URL": self.fake.base_url, "OPENAI_API_KEY": "sk-test-not-secret"})
        self.engines.append(e)
        return e.start() if start else e

    def invoke(self, engine, n):
        """Invokes n jobs on `engine`; returns their ids (each its own conversation)."""
        ids = []
        for _ in range(n):
            job = testkit.new_job(testkit.single_agent_definition())
            job["input_payload"]["messages"] = "Refine thread " + job["job_id"]
            st, _, body = engine.invoke(job)
            self.assertEqual(st, 202, body)
            ids.append(job["job_id"])
        return ids

    def turns(self, thread_id):
        """Turn indices the model was asked for in this thread's conversation, in order."""
        return list(self.fake.turns.get("Refine thread " + thread_id, []))

    def owner(self, thread_id):
        out = subprocess.run(["psql", self.db_url, "-tAc",
                              f"SELECT owner || ' ' || epoch FROM threads WHERE thread_id = '{thread_id}'"],
                             check=True, capture_output=True, text=True).stdout.strip()
        return out.split(" ") if out else None

    def replica_id(self, engine):
        for line in engine.proc.output().splitlines():
            if '"msg":"listening"' in line:
                return json.loads(line)["replica_id"]
        raise AssertionError("no listening line in the engine log")

    def check_stream(self, events, code, state):
        self.assertEqual(code, 1000)
        self.assertEqual([e["seq"] for e in events], list(range(1, len(events) + 1)), "gap or duplicate")
        self.assertEqual(events[-1]["event_type"], "end")
        self.assertEqual(events[-1]["data"]["status"], state["status"])
        self.assertEqual(state["last_seq"], events[-1]["seq"])
        self.assertEqual(testkit.last_files(events), state["generated_files"])


class ReplicaTests(ReplicaCase):
    def test_streams_opened_on_a_non_owner_are_complete_and_gapless(self):
        a, b = self.engine(), self.engine()
        on_a, on_b = self.invoke(a, 4), self.invoke(b, 2)
        urls = [f"{b.ws_base}/spec-engine/stream/{t}" for t in on_a] + \
               [f"{a.ws_base}/spec-engine/stream/{t}" for t in on_b]
        results = collect_many(urls, timeout=60)
        for tid, (events, code) in zip(on_a + on_b, results):
            state = a.state(tid)[2]
            self.assertEqual(state["status"], "completed", state)
            self.check_stream(events, code, state)
            # Deltas were coalesced (each turn's ~13 paced pieces in fewer events) and nothing lost.
            text = "".join(e["data"]["delta"] for e in events if e["event_type"] == "on_llm_stream")
            self.assertEqual(text, "".join(t["content"] for t in script()))
        # Every run stayed on the replica that accepted it.
        for tid in on_a:
            self.assertEqual(self.owner(tid), [self.replica_id(a), "1"])
        for tid in on_b:
            self.assertEqual(self.owner(tid), [self.replica_id(b), "1"])

    def test_a_replica_started_mid_run_takes_nothing_owned_by_a_live_replica(self):
        a = self.engine()
        ids = self.invoke(a, 4)
        wait_until(lambda: all(len(self.turns(t)) >= 1 for t in ids), timeout=20, what="runs started")
        b = self.engine()
        c = self.engine()
        for t in ids:
            self.assertEqual(a.wait_terminal(t, timeout=60)["status"], "completed")
            self.assertEqual(self.turns(t), list(range(TURNS)), f"model requests of {t}")
            self.assertEqual(self.owner(t), [self.replica_id(a), "1"])
        for e in (b, c):
            self.assertNotIn("thread claimed", e.log())

    def test_kill9_of_the_owner_another_replica_completes_from_the_last_checkpoint(self):
        a, b = self.engine(), self.engine()
        ids = self.invoke(a, 3)
        wait_until(lambda: all(len(self.turns(t)) >= 2 for t in ids), timeout=30, what="two turns asked per thread")
        # A stream open on the owner when it dies, resumed elsewhere with after_seq.
        before = ws_collect(f"{a.ws_base}/spec-engine/stream/{ids[0]}", stop_after=3, timeout=10)[0]
        asked_before = {t: len(self.turns(t)) for t in ids}
        killed_at = time.monotonic()
        a.kill9()
        wait_until(lambda: all(self.owner(t)[1] == "2" for t in ids), timeout=TTL_MS / 1000 + 10, interval=0.1,
                   what="the other replica to claim every thread")
        claimed_after = time.monotonic() - killed_at
        for t in ids:
            state = b.wait_terminal(t, timeout=TTL_MS / 1000 + 10)
            self.assertEqual(state["status"], "completed", state)
            self.assertEqual(self.owner(t)[0], self.replica_id(b))
            self.assertEqual(self.owner(t)[1], "2")
            asked = self.turns(t)
            # From the checkpoint: turns finished before the kill are never asked again; at most
            # the turn in flight at the kill is asked twice.
            self.assertEqual(sorted(set(asked)), list(range(TURNS)), asked)
            repeated = [i for i in set(asked) if asked.count(i) > 1]
            self.assertLessEqual(len(repeated), 1, asked)
            for i in repeated:
                self.assertGreaterEqual(i, asked_before[t] - 1, asked)
        total = time.monotonic() - killed_at
        print(f"\n[takeover] kill -9: all {len(ids)} threads claimed by the other replica after "
              f"{claimed_after:.1f} s, completed after {total:.1f} s (lease TTL {TTL_MS / 1000:.0f} s, "
              f"renew {RENEW_MS / 1000:.0f} s)", file=sys.stderr)
        self.assertLess(total, TTL_MS / 1000 + 10)
        # The stream resumes on the survivor after what it had, and the whole is gapless.
        last = before[-1]["seq"]
        rest, code, _ = ws_collect(f"{b.ws_base}/spec-engine/stream/{ids[0]}?after_seq={last}", timeout=30,
                                   until_close=True)
        self.check_stream(before + rest, code, b.state(ids[0])[2])
        # Nothing is left running.
        for t in ids:
            self.assertIn(b.state(t)[2]["status"], ("completed", "failed"))

    def test_sigterm_releases_leases_so_another_replica_resumes_at_once(self):
        a, b = self.engine(), self.engine()
        ids = self.invoke(a, 2)
        wait_until(lambda: all(len(self.turns(t)) >= 2 for t in ids), timeout=30, what="two turns asked")
        stopped_at = time.monotonic()
        self.assertEqual(a.stop(), 0)
        stop_took = time.monotonic() - stopped_at
        wait_until(lambda: all(self.owner(t)[1] == "2" for t in ids), timeout=RENEW_MS / 1000 + 10, interval=0.1,
                   what="the other replica to claim every thread")
        claimed_after = time.monotonic() - stopped_at
        for t in ids:
            self.assertEqual(b.wait_terminal(t, timeout=RENEW_MS / 1000 + 20)["status"], "completed")
            self.assertEqual(self.owner(t)[0], self.replica_id(b))
        took = time.monotonic() - stopped_at
        print(f"\n[takeover] SIGTERM: the engine stopped in {stop_took:.1f} s (grace 0.5 s), its threads were "
              f"claimed after {claimed_after:.1f} s and completed after {took:.1f} s", file=sys.stderr)
        self.assertLess(claimed_after - stop_took, RENEW_MS / 1000 + 1.5)
        self.assertIn("leases released", a.log())

    def test_delete_on_a_non_owner_stops_the_run(self):
        slow = FakeOpenAI(script=script(turns=30, text_len=200), pace=0.05).start()
        try:
            env = {"OPENAI_BASE_URL": slow.base_url, "OPENAI_API_KEY": "sk-test-not-secret"}
            a = self.engine(start=False)
            a.env.update(env)
            a.start()
            b = self.engine(start=False)
            b.env.update(env)
            b.start()
            tid = self.invoke(a, 1)[0]
            key = "Refine thread " + tid
            wait_until(lambda: len(slow.turns.get(key, [])) >= 2, timeout=30, what="the run going")
            st, _, _ = http("DELETE", f"{b.base}/spec-engine/threads/{tid}")
            self.assertEqual(st, 204)
            wait_until(lambda: "run stopped: thread deleted on another replica" in a.log() or
                       "writes fenced" in a.log(), timeout=10, what="the owner to stop the run")
            asked = len(slow.turns.get(key, []))
            time.sleep(2.0)
            self.assertLessEqual(len(slow.turns.get(key, [])), asked + 1, "the owner kept asking the model")
            self.assertEqual(a.state(tid)[0], 404)
            self.assertEqual(b.state(tid)[0], 404)
        finally:
            slow.stop()


@unittest.skipUnless(os.environ.get("TEST_NATS_URL"), "TEST_NATS_URL not set")
class ReplicaNatsTests(ReplicaTests):
    """The same with NATS carrying events and control messages between replicas."""

    def extra_args(self):
        name = "T" + uuid.uuid4().hex[:8]
        if not hasattr(self, "_nats_args"):
            # A job stream of this test's own (subjects must not overlap with another stream's).
            self._nats_args = ["--nats-url", os.environ["TEST_NATS_URL"], "--nats-stream", "EXEC_" + name,
                               "--nats-subjects", f"agent.execute.{name}.*", "--nats-consumer", "c_" + name]
        return self._nats_args

    def test_events_travel_over_nats(self):
        a, b = self.engine(), self.engine()
        tid = self.invoke(a, 1)[0]
        events, code = collect_many([f"{b.ws_base}/spec-engine/stream/{tid}"])[0]
        self.check_stream(events, code, a.state(tid)[2])
        self.assertIn('"replica_link":"nats"', a.log())


class SqliteSingleProcessTests(unittest.TestCase):
    def test_a_second_process_on_the_same_sqlite_data_dir_refuses_to_start(self):
        first = Engine(["--model-override", "scripted:" + os.path.join(testkit.PROJECT_SOURCE_DIR, "config", "demo",
                                                                        "refinement-script.json")]).start()
        try:
            second = Engine(list(first.args), data_dir=first.data_dir)
            second.start(wait=False)
            self.assertEqual(second.proc.p.wait(20), 1)
            out = second.proc.output()
            self.assertIn("only one engine may use an SQLite data directory", out)
            self.assertIn(f"pid {first.proc.p.pid}", out)
            self.assertEqual(http("GET", first.base + "/health")[0], 200)
        finally:
            first.cleanup()
        # Once the first is gone, the directory is free again.
        third = Engine(list(first.args), data_dir=first.data_dir)
        third.own_dir = True
        os.makedirs(first.data_dir, exist_ok=True)
        try:
            third.start()
        finally:
            third.cleanup()


if __name__ == "__main__":
    unittest.main()
