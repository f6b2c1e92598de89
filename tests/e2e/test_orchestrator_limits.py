"""Limits and identities against the real binaries: per-user, per-IP, login and refinement
token buckets (429 + Retry-After + RateLimit/RateLimit-Policy), the per-user cap on
refinements in progress (also across two replicas on one database), external RS256 identities
linked by (iss, sub) and only by a verified e-mail, 401 on every route for a user that no
longer exists, and the engine-thread clean-up of proposals left failed past the orphan TTL."""
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
import unittest
import uuid

from e2ekit import (Orchestrator, b64url, create_workflow, curl, jwt_claims, make_jwt, refine, scripted_engine,
                    slow_script, wait_proposal)
from testkit import PROJECT_SOURCE_DIR, pg_url_for, wait_until, write_json

PROBLEM_BASE = "https://agentic-ide.dev/problems/"


class Limits(unittest.TestCase):
    """One slow scripted engine for the class; each test starts its own orchestrator(s)."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="e2e-limits-")
        cls.engine = scripted_engine(cls.dir, script=slow_script(os.path.join(cls.dir, "slow.json"))).start()

    @classmethod
    def tearDownClass(cls):
        cls.engine.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        self.orchs = []

    def tearDown(self):
        for o in self.orchs:
            o.stop()

    def orch(self, *flags, workdir=None, jwt_secret=None, database_url=None):
        workdir = workdir or tempfile.mkdtemp(dir=self.dir)
        o = Orchestrator(workdir, self.engine.base, extra=list(flags), jwt_secret=jwt_secret, database_url=database_url)
        o.logs = len(self.orchs) * 10  # distinct log files when two replicas share a workdir
        self.orchs.append(o.start())
        return o

    def user(self, orch):
        email = f"u-{uuid.uuid4().hex[:8]}@example.com"
        orch.add_user(email)
        return orch.login(email)

    def exhaust(self, send, most=200):
        """Calls send() until it answers 429; returns (passed, the 429 response)."""
        for i in range(most):
            r = send()
            if r.status == 429:
                return i, r
        self.fail(f"no 429 after {most} requests")

    def assert_429(self, r, policy, quota=None, window=60):
        self.assertEqual(r.status, 429, r.text)
        self.assertTrue(r.header("content-type").startswith("application/problem+json"), r.headers)
        body = r.json()
        self.assertIn(policy, body["violated-policies"], body)
        retry = int(r.header("retry-after"))
        self.assertGreaterEqual(retry, 1)
        policies = r.header("ratelimit-policy")
        if quota is not None:
            self.assertIn(f'"{policy}";q={quota};w={window}', policies)
        m = re.search(rf'"{policy}";r=(\d+);t=(\d+)', r.header("ratelimit"))
        self.assertTrue(m, r.headers)
        self.assertEqual(int(m.group(1)), 0)
        self.assertLessEqual(int(m.group(2)), retry, "Retry-After must not point before the end of the window")
        return body, retry

    def test_per_user_bucket_on_every_api_route(self):
        orch = self.orch("--user-rate-limit", "20")
        alice, bob = self.user(orch), self.user(orch)
        first = curl(orch.url, "GET", "/api/workflows", token=alice)
        self.assertEqual(first.status, 200, first.text)
        self.assertEqual(first.header("ratelimit-policy"), '"user";q=20;w=60')
        self.assertRegex(first.header("ratelimit"), r'^"user";r=19;t=\d+$')
        routes = ["/api/workflows", "/api/templates", f"/api/workflows/{uuid.uuid4()}", f"/api/proposals/{uuid.uuid4()}"]
        count = [0]

        def send():
            count[0] += 1
            return curl(orch.url, "GET", routes[count[0] % len(routes)], token=alice)
        passed, limited = self.exhaust(send)
        self.assertIn(passed, (19, 20), "19 tokens were left (20 per minute refill one per 3 s)")
        body, retry = self.assert_429(limited, "user", quota=20)
        self.assertEqual(body["type"], PROBLEM_BASE + "rate-limited")
        self.assertLessEqual(retry, 3)
        self.assertEqual(curl(orch.url, "GET", "/api/workflows", token=bob).status, 200, "buckets are per user")
        time.sleep(retry)
        self.assertEqual(curl(orch.url, "GET", "/api/workflows", token=alice).status, 200, "refilled after Retry-After")

    def test_per_ip_bucket_on_unauthenticated_requests(self):
        orch = self.orch("--ip-rate-limit", "15")
        token = self.user(orch)  # the login counts for this address too
        passed, limited = self.exhaust(lambda: curl(orch.url, "GET", "/api/openapi.json"))
        self.assertLessEqual(passed, 14)
        _, retry = self.assert_429(limited, "ip", quota=15)
        self.assertLessEqual(retry, 4)
        # probes, a missing token and a forged one are charged to the same address (429, not 401)
        self.assert_429(curl(orch.url, "GET", "/health"), "ip")
        self.assert_429(curl(orch.url, "GET", "/api/workflows"), "ip")
        self.assert_429(curl(orch.url, "GET", "/api/workflows", token=token[:-4] + "AAAA"), "ip")
        # X-Forwarded-For from a peer that is not a trusted proxy changes nothing
        self.assert_429(curl(orch.url, "GET", "/health", headers={"X-Forwarded-For": "198.51.100.9"}), "ip")
        # a signed-in user is limited per account, not per address
        r = curl(orch.url, "GET", "/api/workflows", token=token)
        self.assertEqual(r.status, 200, r.text)
        self.assertTrue(r.header("ratelimit-policy").startswith('"user";'), r.headers)

    def test_login_bucket(self):
        orch = self.orch("--login-rate-limit", "3")
        orch.add_user("login@example.com")
        bad = {"email": "login@example.com", "password": "wrong-password!"}
        passed, limited = self.exhaust(lambda: curl(orch.url, "POST", "/api/auth/login", bad))
        self.assertEqual(passed, 3)
        body, retry = self.assert_429(limited, "login", quota=3)
        self.assertIn("sign-in attempts", body["detail"])
        self.assertTrue(15 <= retry <= 20, retry)  # one attempt per 20 s, minus what refilled meanwhile
        self.assertIn('"ip";q=300;w=60', limited.header("ratelimit-policy"))

    def test_refinement_bucket_and_cap_on_refinements_in_progress(self):
        orch = self.orch("--refinement-rate-limit", "3", "--max-concurrent-runs-per-user", "1")
        alice, bob = self.user(orch), self.user(orch)
        wf = create_workflow(orch, alice)
        first = refine(orch, alice, wf["id"])
        self.assertEqual(first.status, 202, first.text)
        self.assertIn('"refinement";q=3;w=60', first.header("ratelimit-policy"))
        # a second one while the first is processing: the cap (counted in the database)
        second = refine(orch, alice, wf["id"])
        self.assertEqual(second.status, 429, second.text)
        body = second.json()
        self.assertEqual(body["type"], PROBLEM_BASE + "limit-exceeded")
        self.assertEqual(body["violated-policies"], ["concurrent-runs"])
        self.assertEqual(body["limit"], 1)
        self.assertIn("in progress", body["detail"])
        self.assertGreaterEqual(int(second.header("retry-after")), 1)
        self.assertRegex(second.header("ratelimit-policy"),
                         r'^"user";q=600;w=60, "refinement";q=3;w=60, "concurrent-runs";q=1;qu="concurrent-requests"$')
        self.assertRegex(second.header("ratelimit"), r'^"user";r=\d+;t=\d+, "refinement";r=1;t=\d+, "concurrent-runs";r=0$')
        listed = curl(orch.url, "GET", f"/api/workflows/{wf['id']}/proposals", token=alice).json()["items"]
        self.assertEqual(len(listed), 1, "the refused refinement left nothing behind")
        # another user has their own slot
        bob_wf = create_workflow(orch, bob)
        self.assertEqual(refine(orch, bob, bob_wf["id"]).status, 202)
        # cancelling frees the slot
        pid = first.json()["proposal_id"]
        self.assertEqual(curl(orch.url, "POST", f"/api/proposals/{pid}/cancel", token=alice).status, 200)
        third = refine(orch, alice, wf["id"])
        self.assertEqual(third.status, 202, third.text)
        # the request the cap refused gave its token back: a third refinement still starts
        pid = third.json()["proposal_id"]
        self.assertEqual(curl(orch.url, "POST", f"/api/proposals/{pid}/cancel", token=alice).status, 200)
        fourth = refine(orch, alice, wf["id"])
        self.assertEqual(fourth.status, 202, "the refused request must not have spent a token: " + fourth.text)
        pid = fourth.json()["proposal_id"]
        self.assertEqual(curl(orch.url, "POST", f"/api/proposals/{pid}/cancel", token=alice).status, 200)
        # three refinements started: the stricter bucket is spent
        body, _ = self.assert_429(refine(orch, alice, wf["id"]), "refinement", quota=3)
        self.assertEqual(body["type"], PROBLEM_BASE + "rate-limited")
        self.assertEqual(curl(orch.url, "GET", "/api/workflows", token=alice).status, 200, "other routes still work")

    def test_replayed_refinements_spend_no_token_and_pass_the_cap(self):
        orch = self.orch("--refinement-rate-limit", "2", "--max-concurrent-runs-per-user", "1")
        alice = self.user(orch)
        wf = create_workflow(orch, alice)
        path = f"/api/workflows/{wf['id']}/refinements"
        body = {"user_prompt": "Add a web-search specialist agent."}
        key = {"Idempotency-Key": str(uuid.uuid4())}
        first = curl(orch.url, "POST", path, body, token=alice, headers=key)
        self.assertEqual(first.status, 202, first.text)
        # Resent five times while it is processing (the cap of 1 is taken by it): each is replayed,
        # none refused by the cap, and none spends one of the 2 refinement tokens.
        for _ in range(5):
            again = curl(orch.url, "POST", path, body, token=alice, headers=key)
            self.assertEqual(again.status, 202, again.text)
            self.assertEqual(again.header("idempotent-replayed"), "true")
            self.assertEqual(again.json()["proposal_id"], first.json()["proposal_id"])
        pid = first.json()["proposal_id"]
        self.assertEqual(curl(orch.url, "POST", f"/api/proposals/{pid}/cancel", token=alice).status, 200)
        second = refine(orch, alice, wf["id"])
        self.assertEqual(second.status, 202, "replays must not have spent the second token: " + second.text)

    @unittest.skipUnless(os.environ.get("TEST_PG_URL"), "TEST_PG_URL not set (replicas need PostgreSQL)")
    def test_cap_counts_across_replicas(self):
        shared, secret = tempfile.mkdtemp(dir=self.dir), "s" * 64
        db = pg_url_for("orch_cap_" + uuid.uuid4().hex[:8])  # one SQLite directory serves one process only
        a = self.orch("--max-concurrent-runs-per-user", "1", workdir=shared, jwt_secret=secret, database_url=db)
        b = self.orch("--max-concurrent-runs-per-user", "1", workdir=shared, jwt_secret=secret, database_url=db)
        token = self.user(a)
        wf = create_workflow(a, token)
        self.assertEqual(refine(a, token, wf["id"]).status, 202)
        r = refine(b, token, wf["id"])
        self.assertEqual(r.status, 429, "the other replica must see the refinement in progress: " + r.text)
        self.assertEqual(r.json()["type"], PROBLEM_BASE + "limit-exceeded")


def openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True).stdout


class ExternalIdentities(unittest.TestCase):
    """--jwt-public-key-file: RS256 tokens of an identity provider, signed here with openssl."""
    ISS, AUD = "https://idp.example.test/", "ide-e2e"

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="e2e-idp-")
        cls.key = os.path.join(cls.dir, "idp.key")
        pub = os.path.join(cls.dir, "idp.pub")
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", cls.key)
        openssl("pkey", "-in", cls.key, "-pubout", "-out", pub)
        cls.engine = scripted_engine(cls.dir).start()
        cls.orch = Orchestrator(cls.dir, cls.engine.base, extra=["--jwt-public-key-file", pub, "--jwt-issuer", cls.ISS,
                                                                 "--jwt-audience", cls.AUD]).start()
        cls.ada_email = "ada@example.com"
        cls.orch.add_user(cls.ada_email)
        cls.ada = cls.orch.login(cls.ada_email)
        cls.ada_wf = create_workflow(cls.orch, cls.ada, name="Ada's workflow")

    @classmethod
    def tearDownClass(cls):
        cls.orch.stop()
        cls.engine.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def idp_token(self, sub, email, verified=None):
        now = int(time.time())
        claims = {"iss": self.ISS, "aud": self.AUD, "sub": sub, "email": email, "iat": now, "exp": now + 600}
        if verified is not None:
            claims["email_verified"] = verified
        signing = b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode()) + "." + b64url(json.dumps(claims).encode())
        return signing + "." + b64url(openssl("dgst", "-sha256", "-sign", self.key, data=signing.encode()))

    def workflows(self, token):
        return curl(self.orch.url, "GET", "/api/workflows", token=token)

    def test_unverified_email_of_an_existing_account_is_refused(self):
        for verified in (None, False, "false"):
            r = self.workflows(self.idp_token("idp|mallory", self.ada_email, verified))
            self.assertEqual(r.status, 403, r.text)
            body = r.json()
            self.assertEqual(body["type"], PROBLEM_BASE + "email-not-verified")
            self.assertIn("not verified", body["detail"])
            self.assertNotIn(self.ada_wf["name"], r.text)
        # nothing was linked: the same subject with a verified address of its own is a new account
        own = self.workflows(self.idp_token("idp|mallory", "mallory@example.com", True))
        self.assertEqual(own.status, 200, own.text)
        self.assertEqual(own.json()["items"], [])

    def test_verified_email_links_and_the_subject_decides_afterwards(self):
        linked = self.workflows(self.idp_token("idp|ada", self.ada_email, True))
        self.assertEqual(linked.status, 200, linked.text)
        self.assertEqual([w["id"] for w in linked.json()["items"]], [self.ada_wf["id"]])
        # the address changes at the provider: still Ada
        moved = self.workflows(self.idp_token("idp|ada", "ada.lovelace@example.org", False))
        self.assertEqual([w["id"] for w in moved.json()["items"]], [self.ada_wf["id"]])
        # another subject of the provider now claims Ada's (verified) address: refused
        other = self.workflows(self.idp_token("idp|ada-2", self.ada_email, True))
        self.assertEqual(other.status, 403, other.text)
        self.assertEqual(other.json()["type"], PROBLEM_BASE + "identity-conflict")
        # password sign-in keeps working for the linked account
        self.assertEqual(self.workflows(self.orch.login(self.ada_email)).status, 200)


class DeletedUser(unittest.TestCase):
    """A token whose account is gone is 401 on every route of the OpenAPI document."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="e2e-gone-")
        cls.engine = scripted_engine(cls.dir).start()
        cls.orch = Orchestrator(cls.dir, cls.engine.base).start()

    @classmethod
    def tearDownClass(cls):
        cls.orch.stop()
        cls.engine.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def operations(self, ids):
        with open(os.path.join(PROJECT_SOURCE_DIR, "docs", "openapi.json")) as f:
            doc = json.load(f)
        ids = {"user": "someone@example.com", "number": "1", **ids}
        for path, item in doc["paths"].items():
            for method, op in item.items():
                if method not in ("get", "post", "put", "patch", "delete") or op.get("security") == []:
                    continue
                if path in ("/health", "/ready", "/metrics"):
                    continue
                # Parameters not given (e.g. a run id) get a fresh UUID: the 401 comes before any lookup.
                yield method.upper(), re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), str(uuid.uuid4())), path)

    def assert_401_everywhere(self, token, ids):
        seen = 0
        for method, path in self.operations(ids):
            r = curl(self.orch.url, method, path, {"name": "x", "user_prompt": "x", "files": {}, "base_revision": 1}
                     if method in ("POST", "PUT", "PATCH") else None, token=token)
            self.assertEqual(r.status, 401, f"{method} {path}: {r.text}")
            self.assertIn("no longer exists", r.json()["detail"])
            seen += 1
        self.assertGreaterEqual(seen, 15)

    def test_token_of_a_user_that_was_never_there(self):
        email = "gone-1@example.com"
        self.orch.add_user(email)
        claims = jwt_claims(self.orch.login(email))
        claims["sub"] = str(uuid.uuid4())
        self.assert_401_everywhere(make_jwt(claims, self.orch.jwt_secret),
                                   {"id": str(uuid.uuid4()), "thread_id": str(uuid.uuid4())})

    def test_token_of_a_deleted_user(self):
        email = "gone-2@example.com"
        self.orch.add_user(email)
        token = self.orch.login(email)
        wf = create_workflow(self.orch, token)
        started = refine(self.orch, token, wf["id"]).json()
        wait_proposal(self.orch, token, started["proposal_id"])
        db = sqlite3.connect(os.path.join(self.dir, "orch-data", "orchestrator.db"), timeout=30)
        with db:
            db.execute("DELETE FROM users WHERE email = ?", (email,))
        db.close()
        self.assert_401_everywhere(token, {"id": wf["id"], "thread_id": started["thread_id"]})


class FailedProposalCleanup(unittest.TestCase):
    def test_engine_thread_of_a_failed_proposal_is_deleted_after_the_orphan_ttl(self):
        d = tempfile.mkdtemp(prefix="e2e-failed-")
        engine = scripted_engine(d, script=write_json(os.path.join(d, "empty.json"), {"turns": []})).start()
        orch = Orchestrator(d, engine.base, extra=["--orphan-ttl", "0.001"]).start()  # 3.6 s
        try:
            orch.add_user("f@example.com")
            token = orch.login("f@example.com")
            wf = create_workflow(orch, token)
            started = refine(orch, token, wf["id"]).json()
            p = wait_proposal(orch, token, started["proposal_id"])
            self.assertEqual(p["status"], "failed", p)
            self.assertEqual(engine.state(started["thread_id"])[0], 200, "kept for inspection until the TTL")
            time.sleep(4)
            orch.stop()
            orch.start()  # the first sweep runs at start (then every minute)
            wait_until(lambda: engine.state(started["thread_id"])[0] == 404, timeout=30, what="engine thread deleted")
            after = curl(orch.url, "GET", f"/api/proposals/{started['proposal_id']}", token=token).json()
            self.assertEqual(after["status"], "failed", "the proposal itself is kept")
        finally:
            orch.stop()
            engine.stop()
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
