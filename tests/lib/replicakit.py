"""Several engine and orchestrator replicas on one PostgreSQL server (and NATS when given), the
production topology of deploy/README.md on loopback ports: N real `spec-engine` processes on one
engine database behind a round-robin TCP balancer (a Kubernetes Service), M real
`ide-orchestrator` processes on one orchestrator database pointing at that balancer, and a local
OpenAI-compatible model server (tests/fixtures/spec_engine/fake_openai.py, conversation mode)
that paces its tokens and counts model requests per thread (a refinement's prompt names its
conversation).

Lease flags are short so failures are taken over in seconds: ENGINE_TTL_MS / ENGINE_RENEW_MS
(env ACCEPT_LEASE_TTL_MS / ACCEPT_LEASE_RENEW_MS) and ORCH_TTL_S (ACCEPT_ORCH_LEASE_TTL_S).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

import testkit
from balancer import TcpBalancer
from e2ekit import Orchestrator, create_workflow, curl, refine, ws_url
from testkit import Engine, wait_until

sys.path.insert(0, os.path.join(testkit.FIXTURES, "spec_engine"))
from fake_openai import FakeOpenAI, file_script  # noqa: E402

__all__ = ["ENGINE_TTL_MS", "ENGINE_RENEW_MS", "ORCH_TTL_S", "ReplicaStack", "check_stream", "file_script"]

ENGINE_TTL_MS = int(os.environ.get("ACCEPT_LEASE_TTL_MS", "3000"))
ENGINE_RENEW_MS = int(os.environ.get("ACCEPT_LEASE_RENEW_MS", "1000"))
ORCH_TTL_S = int(os.environ.get("ACCEPT_ORCH_LEASE_TTL_S", "5"))
TERMINAL = ("completed", "failed", "cancelled")


class ReplicaStack:
    """`engines` engine replicas + `orchestrators` orchestrator replicas on `pg_url`'s server
    (fresh databases for both services), NATS when `nats_url`, model replies from `script`
    (FakeOpenAI conversation mode, tokens `pace` s apart). close() stops everything."""

    def __init__(self, pg_url, nats_url=None, engines=3, orchestrators=2, script=(), pace=0.05):
        self.dir = tempfile.mkdtemp(prefix="replicas-")
        head = pg_url.rpartition("/")[0]
        tag = uuid.uuid4().hex[:10]
        self.engine_db = f"{head}/se_acc_{tag}"
        self.orch_db = f"{head}/orch_acc_{tag}"
        self.nats_args = []
        if nats_url:
            name = "A" + tag
            self.nats_args = ["--nats-url", nats_url, "--nats-stream", "EXEC_" + name,
                              "--nats-subjects", f"agent.execute.{name}.*", "--nats-consumer", "c_" + name]
        self.fake = FakeOpenAI(script=list(script), pace=pace).start()
        self.engines, self.orchs, self.stopped = [], [], []
        self.secret = uuid.uuid4().hex * 2
        self.balancer = None
        try:
            for i in range(engines):
                self.engines.append(self.start_engine(f"engine-{i + 1}"))
            self.balancer = TcpBalancer([e.port for e in self.engines]).start()
            for i in range(orchestrators):
                self.orchs.append(self.start_orchestrator(i + 1))
            email = f"acc-{tag}@example.com"
            self.orchs[0].add_user(email)
            self.token = self.orchs[0].login(email)
        except BaseException:
            self.close()
            raise

    # --- processes ------------------------------------------------------------------------
    def start_engine(self, replica_id, port=None):
        """A started engine replica named `replica_id` (its lease owner id)."""
        e = Engine(["--model-override", "openai:test-model", "--replica-id", replica_id,
                    "--lease-ttl-ms", str(ENGINE_TTL_MS), "--lease-renew-ms", str(ENGINE_RENEW_MS),
                    "--shutdown-grace-ms", "500", *self.nats_args],
                   data_dir=os.path.join(self.dir, replica_id), database_url=self.engine_db, port=port,
                   log_dir=self.dir, env={"OPENAI_BASE_URL": self.fake.base_url, "OPENAI_API_KEY": "sk-test-not-secret"})
        e.replica_id = replica_id
        e.start(wait=False)
        try:
            e.wait_healthy(timeout=60)
        except BaseException:
            e.stop()
            raise
        return e

    def add_engine(self, replica_id):
        """Starts one more engine replica and puts it behind the balancer."""
        e = self.start_engine(replica_id)
        self.engines.append(e)
        self.balancer.set_backends([x.port for x in self.engines])
        return e

    def restart_engine(self, engine, replica_id):
        """The same port and data dir again, as a new process with a new replica id."""
        e = self.start_engine(replica_id, port=engine.port)
        self.engines[self.engines.index(engine)] = e
        self.stopped.append(engine)
        return e

    def start_orchestrator(self, n):
        workdir = os.path.join(self.dir, f"orch-{n}")
        os.makedirs(workdir, exist_ok=True)
        o = Orchestrator(workdir, self.balancer.url, database_url=self.orch_db, jwt_secret=self.secret,
                         extra=["--lease-ttl-seconds", str(ORCH_TTL_S), "--sweep-period-seconds", "1",
                                "--max-concurrent-runs-per-user", "0", "--refinement-rate-limit", "100000",
                                "--user-rate-limit", "1000000", "--ip-rate-limit", "1000000", "--log-level", "debug"])
        o.name = f"orch-{n}"
        try:
            return o.start(timeout=60)
        except BaseException:
            o.stop()
            raise

    def close(self):
        for o in self.orchs:
            o.stop()
        for e in self.engines + self.stopped:
            e.stop()
        if self.balancer:
            self.balancer.stop()
        self.fake.stop()
        if os.environ.get("E2E_SHOW_LOGS"):
            print(self.logs(), file=sys.stderr)
        if os.environ.get("E2E_KEEP_DIR"):
            print(f"logs kept in {self.dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def logs(self, tail_lines=40):
        """The last lines of every process log (for failure messages)."""
        out = []
        for root, _, files in os.walk(self.dir):
            for name in sorted(files):
                if name.endswith(".log"):
                    with open(os.path.join(root, name), "rb") as f:
                        lines = f.read().splitlines()[-tail_lines:]
                    out.append(f"---- {name}\n" + b"\n".join(lines).decode("utf-8", "replace"))
        return "\n".join(out)

    # --- the API ----------------------------------------------------------------------------
    def refine(self, orch, prompt):
        """A new workflow and a refinement of it on `orch`, asking `prompt` (unique: it names the
        model conversation). Returns {"proposal_id", "thread_id", "prompt", "orch"}."""
        wf = create_workflow(orch, self.token, name=prompt[:60])
        r = refine(orch, self.token, wf["id"], prompt=prompt)
        if r.status != 202:
            raise AssertionError(f"refinement on {orch.name}: {r.status} {r.text}")
        return dict(r.json(), prompt=prompt, orch=orch)

    def run(self, orch, message):
        """A new single-agent workflow, published and deployed, and a run of it on `orch` with
        `message` (unique: it names the model conversation). Returns the run (POST .../runs)
        with "workflow_id", "prompt" and "orch"."""
        wf = create_workflow(orch, self.token, name=message[:60], template="single-agent")
        for path, body in ((f"/api/workflows/{wf['id']}/versions", {}), (f"/api/workflows/{wf['id']}/deploy", {})):
            r = curl(orch.url, "POST", path, body, token=self.token)
            if r.status not in (200, 201):
                raise AssertionError(f"{path} on {orch.name}: {r.status} {r.text}")
        r = curl(orch.url, "POST", f"/api/workflows/{wf['id']}/runs", {"input": message}, token=self.token)
        if r.status != 202:
            raise AssertionError(f"run on {orch.name}: {r.status} {r.text}")
        return dict(r.json(), workflow_id=wf["id"], prompt=message, orch=orch)

    def get_run(self, orch, run):
        r = curl(orch.url, "GET", f"/api/workflows/{run['workflow_id']}/runs/{run['id']}", token=self.token)
        return r.json() if r.status == 200 else None

    def wait_run(self, orch, run, timeout):
        """The run once it left `processing` (as `orch` answers)."""
        def done():
            r = self.get_run(orch, run)
            return r if r and r["status"] != "processing" else None
        return wait_until(done, timeout=timeout, interval=0.2, what=f"run {run['id']} on {orch.name}")

    def proposal(self, orch, proposal_id):
        r = curl(orch.url, "GET", f"/api/proposals/{proposal_id}", token=self.token)
        return r.json() if r.status == 200 else None

    def wait_proposal(self, orch, proposal_id, timeout):
        """The proposal once it left `processing` (as `orch` answers)."""
        def done():
            p = self.proposal(orch, proposal_id)
            return p if p and p["status"] != "processing" else None
        return wait_until(done, timeout=timeout, interval=0.2, what=f"proposal {proposal_id} on {orch.name}")

    def state(self, thread_id, engine=None):
        """GET state on `engine` (default: through the balancer)."""
        base = engine.base if engine else self.balancer.url
        st, _, body = testkit.http("GET", f"{base}/spec-engine/state/{thread_id}")
        return body if st == 200 else None

    def wait_thread(self, thread_id, timeout):
        def done():
            s = self.state(thread_id)
            return s if s and s["status"] in TERMINAL else None
        return wait_until(done, timeout=timeout, interval=0.2, what=f"thread {thread_id} to end")

    def turns(self, prompt):
        """Turn indices the model was asked for in this refinement's conversation, in order."""
        with self.fake.lock:
            return list(self.fake.turns.get(prompt, []))

    def browser(self, where, thread_id, after_seq=None):
        """(URL, headers) of a browser-style stream of `thread_id` on an orchestrator or an engine."""
        q = "" if after_seq is None else f"?after_seq={after_seq}"
        if isinstance(where, Orchestrator):
            return ws_url(where, thread_id, q), {"Authorization": "Bearer " + self.token}
        return f"{where.ws_base}/spec-engine/stream/{thread_id}{q}", {}

    # --- the engine database ----------------------------------------------------------------
    def sql(self, query):
        """Rows of `query` on the engine database, as lists of strings."""
        out = subprocess.run(["psql", self.engine_db, "-tA", "-F", "\t", "-c", query], check=True,
                             capture_output=True, text=True, timeout=30).stdout
        return [line.split("\t") for line in out.splitlines() if line]

    def proposal_lease(self, proposal_id, table="proposals"):
        """lease_owner of a proposal (or, with table="runs", of a run) in the orchestrator
        database ("" when none)."""
        out = subprocess.run(["psql", self.orch_db, "-tAc",
                              f"SELECT coalesce(lease_owner, '') FROM {table} WHERE id = '{proposal_id}'"],
                             check=True, capture_output=True, text=True, timeout=30).stdout
        return out.strip()

    def run_lease(self, run_id):
        """lease_owner of a run in the orchestrator database ("" when none)."""
        return self.proposal_lease(run_id, table="runs")

    def owner(self, thread_id):
        """(owner, epoch, status) of the thread's row; owner "" when none."""
        rows = self.sql(f"SELECT coalesce(owner, ''), epoch, status FROM threads WHERE thread_id = '{thread_id}'")
        return (rows[0][0], int(rows[0][1]), rows[0][2]) if rows else None

    def unfinished(self):
        """thread_id -> status of every thread still queued or running."""
        return dict(self.sql("SELECT thread_id, status FROM threads WHERE status IN ('queued', 'running')"))

    def engine_claims(self, engine):
        """Thread ids `engine` claimed from another replica (its "thread claimed" log lines)."""
        out = []
        for line in engine.proc.output().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("msg") == "thread claimed":
                out.append(rec.get("thread_id"))
        return out


def check_stream(test, events, close_code, state, what):
    """A browser-style stream that is complete: closed normally, seq 1..n without gap or
    duplicate, `end` last with the run's status, and its last `files` the state's generated_files."""
    test.assertTrue(events, f"{what}: no events")
    test.assertEqual(close_code, 1000, f"{what}: close code")
    test.assertEqual([e["seq"] for e in events], list(range(1, len(events) + 1)), f"{what}: gap or duplicate")
    test.assertEqual(events[-1]["event_type"], "end", f"{what}: no end")
    test.assertEqual(events[-1]["data"]["status"], state["status"], what)
    test.assertEqual(events[-1]["seq"], state["last_seq"], what)
    test.assertEqual(testkit.last_files(events), state["generated_files"], f"{what}: files")

