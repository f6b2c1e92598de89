"""Replicas end to end (issue 7, "Must show" 1-4): 3 `spec-engine` replicas behind a round-robin
balancer and 2 `ide-orchestrator` replicas, all real binaries on loopback ports, on one
PostgreSQL server (both databases) and NATS, against a local OpenAI-compatible model server that
paces its tokens and counts model requests per thread (tests/lib/replicakit.py).

1. 30 refinements on random orchestrators, each followed by a browser-style stream on a replica
   that neither accepted it nor runs it: every stream complete and gapless, its last `files` the
   state's generated_files.
2. An engine replica started mid-run takes nothing owned by a live replica: model requests per
   thread equal the script's turns.
3. kill -9 of an engine replica with runs in flight: its threads complete on other replicas
   within lease TTL + 10 s from their last checkpoint (completed turns not asked again), streams
   open on it reconnect elsewhere with after_seq and complete, no thread is left running. Prints
   the time to takeover.
4. kill -9 of an orchestrator replica mid-refinement: the other finalises its proposals (and the
   workflow runs it tracked) within lease TTL + 30 s; browsers reconnect there with after_seq
   and miss nothing.

Run: scripts/with-test-services.sh ctest --preset default -R replicas_acceptance
(ACCEPT_LEASE_TTL_MS / ACCEPT_LEASE_RENEW_MS / ACCEPT_ORCH_LEASE_TTL_S change the lease flags.)
"""
import asyncio
import os
import random
import signal
import sys
import time
import unittest
import uuid

from replicakit import file_script, ENGINE_TTL_MS, ORCH_TTL_S, ReplicaStack, check_stream
from testkit import browse, collect_many, file_text, wait_until


@unittest.skipUnless(os.environ.get("TEST_PG_URL"), "TEST_PG_URL not set (run under scripts/with-test-services.sh)")
class ReplicasAcceptance(unittest.TestCase):
    def stack(self, turns, pace=0.05, engines=3, script=None):
        s = ReplicaStack(os.environ["TEST_PG_URL"], os.environ.get("TEST_NATS_URL"), engines=engines,
                         script=script or file_script(turns), pace=pace)
        self.addCleanup(s.close)
        self.s = s
        return s

    def prompt(self, i):
        return f"Refinement {i} {uuid.uuid4().hex[:8]}: add a fact checker."

    def assert_turns_once(self, s, started, turns):
        for r in started:
            self.assertEqual(s.turns(r["prompt"]), list(range(turns)), f"model requests of {r['thread_id']}")

    # 1 -----------------------------------------------------------------------------------------
    def test_30_refinements_streams_on_other_replicas_complete_and_gapless(self):
        turns = 4
        s = self.stack(turns)
        seed = int(os.environ.get("ACCEPT_SEED", str(random.randrange(1 << 30))))
        rng = random.Random(seed)
        print(f"\n[acceptance] seed {seed}", file=sys.stderr)
        started = [s.refine(rng.choice(s.orchs), self.prompt(i)) for i in range(30)]
        streams, where = [], []
        for i, r in enumerate(started):
            owner = s.owner(r["thread_id"])[0]
            others = [o for o in s.orchs if o is not r["orch"]] + [e for e in s.engines if e.replica_id != owner]
            target = others[i % len(others)]
            where.append(getattr(target, "name", None) or target.replica_id)
            streams.append(s.browser(target, r["thread_id"]))
        results = collect_many(streams, timeout=60)
        # Both orchestrators and the engines that do not run a thread served streams (an
        # orchestrator's keep-alive connection to the balancer sends its invokes to one engine).
        self.assertTrue({o.name for o in s.orchs} <= set(where), where)
        self.assertGreaterEqual(len(set(where) - {o.name for o in s.orchs}), 2, where)
        for r, (events, code), w in zip(started, results, where):
            state = s.wait_thread(r["thread_id"], timeout=30)
            self.assertEqual(state["status"], "completed", state)
            check_stream(self, events, code, state, f"stream of {r['thread_id']} on {w}")
            for i in range(turns - 1):  # the files the model wrote, next to the workflow's own
                self.assertEqual(file_text(state["generated_files"][f"/step{i}.md"]), f"step {i}\n")
        for r in started:
            p = s.wait_proposal(rng.choice(s.orchs), r["proposal_id"], timeout=30)
            self.assertEqual(p["status"], "completed", p)
            state = s.state(r["thread_id"])
            for path in state["generated_files"]:
                self.assertIn(path, p["generated_files"])
        self.assert_turns_once(s, started, turns)
        self.assertEqual(s.unfinished(), {})

    # 2 -----------------------------------------------------------------------------------------
    def test_a_replica_started_mid_run_takes_nothing_owned_by_a_live_replica(self):
        turns = 5
        s = self.stack(turns, pace=0.1, engines=2)
        started = [s.refine(s.orchs[i % 2], self.prompt(i)) for i in range(6)]
        wait_until(lambda: all(s.turns(r["prompt"]) for r in started), timeout=30, what="every run asking the model")
        late = s.add_engine("engine-3")
        running = [r for r in started if r["thread_id"] in s.unfinished()]
        self.assertTrue(running, "the runs ended before the new replica was up: the test proves nothing")
        # The new replica is live: it serves a stream of a thread another replica runs.
        events, code = collect_many([s.browser(late, running[0]["thread_id"])])[0]
        for r in started:
            self.assertEqual(s.wait_proposal(s.orchs[0], r["proposal_id"], timeout=60)["status"], "completed")
        check_stream(self, events, code, s.state(running[0]["thread_id"]), "stream on the new replica")
        self.assert_turns_once(s, started, turns)
        for r in started:
            owner, epoch, status = s.owner(r["thread_id"])
            self.assertIn(owner, ("engine-1", "engine-2"))
            self.assertEqual((epoch, status), (1, "completed"), "claimed by another replica")
        self.assertEqual(s.engine_claims(late), [], "the new replica took threads of live replicas")

    # 3 -----------------------------------------------------------------------------------------
    def test_kill9_engine_threads_complete_elsewhere_from_their_checkpoint(self):
        turns, slow = 6, 3
        script = file_script(turns)
        script[slow]["delay"] = 3.0  # the kill lands while this turn is asked: turns 0-2 are done
        s = self.stack(turns, script=script)
        started = [s.refine(s.orchs[i % 2], self.prompt(i)) for i in range(9)]
        owners = {r["thread_id"]: s.owner(r["thread_id"])[0] for r in started}
        victim = max(s.engines, key=lambda e: list(owners.values()).count(e.replica_id))
        mine = [r for r in started if owners[r["thread_id"]] == victim.replica_id]
        others = [r for r in started if r not in mine]
        wait_until(lambda: all(len(s.turns(r["prompt"])) > slow for r in mine), timeout=30,
                   what=f"turn {slow} asked in each thread of the victim")
        survivors = [e for e in s.engines if e is not victim]

        async def scenario():
            # Streams open on the victim when it dies, and the same threads through the orchestrators.
            on_victim = [asyncio.create_task(browse(s.browser(victim, r["thread_id"]), timeout=30)) for r in mine]
            via_orch = [asyncio.create_task(browse(s.browser(s.orchs[i % 2], r["thread_id"]), timeout=60))
                        for i, r in enumerate(mine)]
            await asyncio.sleep(0.3)
            asked_before = {r["thread_id"]: len(s.turns(r["prompt"])) for r in mine}
            running = s.unfinished()
            killed_at = time.monotonic()
            victim.kill9()
            claims = asyncio.create_task(asyncio.to_thread(
                wait_until, lambda: all(s.owner(r["thread_id"])[1] >= 2 for r in mine) and time.monotonic(),
                budget, 0.05, "the survivors to claim the victim's threads"))
            completions = asyncio.create_task(asyncio.to_thread(
                wait_until, lambda: all(s.owner(r["thread_id"])[2] == "completed" for r in mine) and time.monotonic(),
                budget, 0.05, "the victim's threads to complete elsewhere"))
            broken = await asyncio.gather(*on_victim)
            # Reconnect to a surviving replica after the last event received.
            resumed = await asyncio.gather(*(
                browse(s.browser(survivors[i % len(survivors)], r["thread_id"],
                                 after_seq=events[-1]["seq"] if events else 0), timeout=60)
                for i, (r, (events, _)) in enumerate(zip(mine, broken))))
            return (asked_before, running, killed_at, await claims, await completions, broken, resumed,
                    await asyncio.gather(*via_orch))

        budget = ENGINE_TTL_MS / 1000 + 10
        asked_before, running, killed_at, claimed, done, broken, resumed, via_orch = asyncio.run(scenario())
        self.assertEqual({r["thread_id"]: running.get(r["thread_id"]) for r in mine},
                         {r["thread_id"]: "running" for r in mine}, "the victim's runs were in flight at the kill")
        print(f"\n[takeover] engine kill -9: {len(mine)} threads claimed after {claimed - killed_at:.1f} s, "
              f"completed after {done - killed_at:.1f} s (lease TTL {ENGINE_TTL_MS / 1000:g} s)", file=sys.stderr)
        self.assertLess(done - killed_at, budget)
        for r, (before, code), (after, code2), (proxied, code3) in zip(mine, broken, resumed, via_orch):
            tid = r["thread_id"]
            state = s.state(tid)
            self.assertNotEqual(code, 1000, "the stream on the killed replica cannot have ended normally")
            check_stream(self, before + after, code2, state, f"stream of {tid} resumed after the kill")
            check_stream(self, proxied, code3, state, f"stream of {tid} through an orchestrator")
            owner, epoch, _ = s.owner(tid)
            self.assertIn(owner, [e.replica_id for e in survivors])
            self.assertEqual(epoch, 2)
            # From the checkpoint: the turns finished before the kill are not asked again; the one
            # in flight at the kill is asked once more.
            self.assertEqual(asked_before[tid], slow + 1)
            self.assertEqual(s.turns(r["prompt"]), list(range(slow + 1)) + list(range(slow, turns)))
        # The other replicas' threads were not touched.
        for r in others:
            self.assertEqual(s.wait_thread(r["thread_id"], timeout=30)["status"], "completed")
            self.assertEqual(s.owner(r["thread_id"])[1], 1)
        self.assert_turns_once(s, others, turns)
        self.assertEqual(s.unfinished(), {}, "threads left queued or running")
        for r in started:
            self.assertEqual(s.wait_proposal(s.orchs[0], r["proposal_id"], timeout=30)["status"], "completed")

    # 4 -----------------------------------------------------------------------------------------
    def test_kill9_orchestrator_the_other_finalises_and_browsers_resume_there(self):
        turns = 8
        s = self.stack(turns, pace=0.1)
        victim, other = s.orchs
        started = [s.refine(victim, self.prompt(i)) for i in range(4)] + \
                  [s.refine(other, self.prompt(10 + i)) for i in range(2)]
        # Workflow runs are tracked like proposals: the victim's are taken over too.
        runs = [s.run(victim, f"Run {i} {uuid.uuid4().hex[:8]}: summarise the notes.") for i in range(2)]
        watched = started[:2]

        async def scenario():
            first = await asyncio.gather(*(browse(s.browser(victim, r["thread_id"]), stop_after=3, timeout=30)
                                           for r in watched))
            # Browsers still connected to the victim when it dies.
            open_ = [asyncio.create_task(browse(s.browser(victim, r["thread_id"],
                                                          after_seq=events[-1]["seq"]), timeout=30))
                     for r, (events, _) in zip(watched, first)]
            await asyncio.sleep(0.5)
            held = {r["proposal_id"]: s.proposal_lease(r["proposal_id"]) for r in started[:4]}
            held_runs = {r["id"]: s.run_lease(r["id"]) for r in runs}
            victim.stop(signal.SIGKILL)
            killed_at = time.monotonic()
            # The time to takeover: until the other replica holds the lease of every proposal the
            # victim tracked (or it ended).
            takeover = asyncio.create_task(asyncio.to_thread(
                wait_until, lambda: all(s.proposal_lease(p) not in ("", held[p]) or
                                        s.proposal(other, p)["status"] != "processing" for p in held)
                and time.monotonic(), ORCH_TTL_S + 30, 0.05, "the other replica to take the leases over"))
            run_takeover = asyncio.create_task(asyncio.to_thread(
                wait_until, lambda: all(s.run_lease(r["id"]) not in ("", held_runs[r["id"]]) or
                                        s.get_run(other, r)["status"] != "processing" for r in runs)
                and time.monotonic(), ORCH_TTL_S + 30, 0.05, "the other replica to take the runs' leases over"))
            cut = await asyncio.gather(*open_)
            rest = await asyncio.gather(*(
                browse(s.browser(other, r["thread_id"], after_seq=(a + b)[-1]["seq"]), timeout=60)
                for r, (a, _), (b, _) in zip(watched, first, cut)))
            return killed_at, await takeover, await run_takeover, first, cut, rest, held_runs

        killed_at, taken_over, runs_taken_over, first, cut, rest, held_runs = asyncio.run(scenario())
        self.assertTrue(all(held_runs.values()), f"the victim held its runs' leases from the start: {held_runs}")
        for r in started:
            p = s.proposal(other, r["proposal_id"])
            self.assertIn(p["status"], ("processing", "completed"), p)
        budget = ORCH_TTL_S + 30
        for r in started:
            left = budget - (time.monotonic() - killed_at)
            p = s.wait_proposal(other, r["proposal_id"], timeout=max(0.5, left))
            self.assertEqual(p["status"], "completed", p)
        for r in runs:
            left = budget - (time.monotonic() - killed_at)
            done = s.wait_run(other, r, timeout=max(0.5, left))
            self.assertEqual(done["status"], "completed", done)
            self.assertEqual(sorted(done["files"]), [f"/step{i}.md" for i in range(turns - 1)], done)
        took = time.monotonic() - killed_at
        print(f"\n[takeover] orchestrator kill -9: the other replica took over the victim's proposals after "
              f"{taken_over - killed_at:.1f} s (its runs after {runs_taken_over - killed_at:.1f} s) and finalised "
              f"all {len(started)} proposals and {len(runs)} runs after {took:.1f} s "
              f"(lease TTL {ORCH_TTL_S} s, sweep 1 s)", file=sys.stderr)
        self.assertLess(took, budget)
        for r, (a, _), (b, cut_code), (c, code) in zip(watched, first, cut, rest):
            self.assertNotEqual(cut_code, 1000, "the killed orchestrator cannot have closed normally")
            check_stream(self, a + b + c, code, s.state(r["thread_id"]), f"browser of {r['thread_id']} moved over")
        self.assert_turns_once(s, started + runs, turns)


if __name__ == "__main__":
    unittest.main()
