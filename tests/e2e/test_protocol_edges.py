"""What a first-time user meets at the edges of the HTTP and WebSocket protocols and in the error
texts, against the real binaries (engine + orchestrator, scripted model):
- HEAD is answered wherever GET is, on both services (RFC 9110 §9.3.2);
- only JSON media types are accepted as JSON (RFC 9110 §8.3.1): application/json and
  application/*+json, charset utf-8 if any; anything else is 415;
- a WebSocket message over the limit gets close 1009 "message too big" on the orchestrator's
  proxy and on the engine's stream (RFC 6455 §7.4.1), also for a client that writes the whole
  message before reading;
- X-Forwarded-Host / -Proto shape the refinement's websocket_url only from --trusted-proxies;
- blank workflow names are refused, text limits are stated in bytes, the field is named once;
- 401 texts advise signing in again only where that helps, and once; after_seq states its
  bound; an empty file path is called empty; an out-of-range exp is named; expired tokens are
  accepted within the documented 30 s leeway and not after;
- the CLI names an unknown subcommand; `make up` prints the credentials without trailing spaces.
"""
import http.client
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
import uuid

from e2ekit import Orchestrator, Stack, create_workflow, curl, jwt_claims, make_jwt, refine, ws_url
from testkit import BIN_DIR, PROJECT_SOURCE_DIR, free_port, new_job, single_agent_definition, ws_send_blocking, \
    write_json

MIB = 1 << 20
# Runs stay `processing` long enough for the streams to be open while a test talks to them.
SLOW = {"turns": [{"content": "Thinking for a while.", "delay_ms": 60000}, {"content": "Done."}]}


def raw(base, method, path, headers=None, body=None, conn=None):
    """One request with http.client (which knows a HEAD answer has no body); returns
    (status, headers as a lower-cased dict, body bytes, the connection for the next request)."""
    if conn is None:
        host, port = base.split("//")[1].split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=15)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data, conn


class ProtocolEdges(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="e2e-edges-")
        cls.stack = Stack(script=write_json(os.path.join(cls.tmp, "slow.json"), SLOW))
        cls.orch, cls.engine = cls.stack.orch, cls.stack.engine
        cls.email = f"edge-{uuid.uuid4().hex[:8]}@example.com"
        cls.orch.add_user(cls.email)
        cls.token = cls.orch.login(cls.email)

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def fresh_token(self):
        """A user of its own, so refinements of one test never count against another's cap."""
        email = f"edge-{uuid.uuid4().hex[:8]}@example.com"
        self.orch.add_user(email)
        return self.orch.login(email)

    def auth(self, token=None):
        return {"Authorization": "Bearer " + (token or self.token)}

    def problem(self, r, status):
        self.assertEqual(r.status, status, r.text)
        return r.json()

    # ------------------------------------------------------------ HEAD
    def test_head_is_answered_wherever_get_is(self):
        for base, path, headers in [(self.orch.url, "/", {}), (self.orch.url, "/health", {}),
                                    (self.orch.url, "/api/openapi.json", {}),
                                    (self.orch.url, "/api/workflows", self.auth()),
                                    (self.orch.url, "/api/workflows", {}),  # 401 without a token
                                    (self.orch.url, "/nowhere", {}),
                                    (self.engine.base, "/health", {}), (self.engine.base, "/ready", {})]:
            st_get, h_get, body, conn = raw(base, "GET", path, headers)
            # HEAD, then GET again on the same connection: a HEAD answer with a body would
            # corrupt the response that follows it.
            st_head, h_head, head_body, conn = raw(base, "HEAD", path, headers, conn=conn)
            st_again, _, body_again, conn = raw(base, "GET", path, headers, conn=conn)
            conn.close()
            what = f"HEAD {base}{path}"
            self.assertEqual(st_head, st_get, what)
            self.assertEqual(head_body, b"", what)
            self.assertEqual(h_head.get("content-type"), h_get.get("content-type"), what)
            self.assertEqual(int(h_head["content-length"]), len(body), what)
            self.assertEqual(st_again, st_get, what)
            self.assertEqual(len(body_again), len(body), what)
        # 405 lists HEAD next to GET; POST-only routes do not list it.
        st, h, _, conn = raw(self.orch.url, "DELETE", "/api/templates", self.auth())
        self.assertEqual((st, h.get("allow")), (405, "GET, HEAD"))
        st, h, _, conn = raw(self.orch.url, "GET", "/api/auth/login", conn=conn)
        conn.close()
        self.assertEqual((st, h.get("allow")), (405, "POST"))

    # ------------------------------------------------------------ media types
    def test_only_json_media_types_are_json(self):
        body = json.dumps({"name": "Media types"})
        for ct in ["application/jsonx", "text/json", "application/json; charset=latin1", "application/x-json",
                   "text/plain; x=application/json"]:
            r = curl(self.orch.url, "POST", "/api/workflows", raw=body, token=self.token, headers={"Content-Type": ct})
            p = self.problem(r, 415)
            self.assertEqual(p["type"], "https://agentic-ide.dev/problems/unsupported-media-type", ct)
            self.assertIn(ct, p["detail"])
        for ct in ["application/json", "Application/JSON; Charset=UTF-8", "application/vnd.workflow+json"]:
            r = curl(self.orch.url, "POST", "/api/workflows", raw=body, token=self.token, headers={"Content-Type": ct})
            self.assertEqual(r.status, 201, (ct, r.text))
        job = json.dumps(new_job(single_agent_definition()))
        for ct, want in [("application/jsonx", 415), ("application/json; charset=utf-16", 415),
                         ("APPLICATION/JSON; charset=\"utf-8\"", 202)]:
            r = curl(self.engine.base, "POST", "/spec-engine/invoke", raw=job, headers={"Content-Type": ct})
            self.assertEqual(r.status, want, (ct, r.text))

    def test_routes_without_input_refuse_a_body_that_is_not_json(self):
        # approve, reject, cancel and retry take nothing; a body, if any, is held to the same rules.
        pid = str(uuid.uuid4())
        for action in ["approve", "reject", "cancel", "retry"]:
            path = f"/api/proposals/{pid}/{action}"
            r = curl(self.orch.url, "POST", path, raw="garbage", token=self.token, headers={"Content-Type": "text/plain"})
            self.assertEqual(self.problem(r, 415)["type"], "https://agentic-ide.dev/problems/unsupported-media-type")
            r = curl(self.orch.url, "POST", path, raw="{", token=self.token, headers={"Content-Type": "application/json"})
            self.problem(r, 400)
            for body in ["{}", None]:  # what the console sends, and nothing
                r = curl(self.orch.url, "POST", path, raw=body, token=self.token,
                         headers={"Content-Type": "application/json"})
                self.problem(r, 404)

    # ------------------------------------------------------------ WebSocket 1009
    def test_websocket_message_too_big_is_closed_1009(self):
        token = self.fresh_token()
        wf = create_workflow(self.orch, token, template="single-agent")
        r = refine(self.orch, token, wf["id"])
        self.assertEqual(r.status, 202, r.text)
        thread = r.json()["thread_id"]
        for url, headers in [(ws_url(self.orch, thread), self.auth(token)),
                             (f"{self.engine.ws_base}/spec-engine/stream/{thread}", {})]:
            write_error, code, reason = ws_send_blocking(url, 20 * MIB, headers=headers)
            self.assertIsNone(write_error, url)  # the server read the whole message
            self.assertEqual(code, 1009, url)
            self.assertIn("message too big", reason)
        self.assertIsNone(self.orch.proc.returncode)
        self.assertEqual(curl(self.orch.url, "GET", f"/api/workflows/{wf['id']}", token=token).status, 200)

    # ------------------------------------------------------------ X-Forwarded-*
    def test_forwarded_host_and_proto_only_from_trusted_proxies(self):
        token = self.fresh_token()
        wf = create_workflow(self.orch, token, template="single-agent")
        spoof = {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}
        r = curl(self.orch.url, "POST", f"/api/workflows/{wf['id']}/refinements", {"user_prompt": "Hi."},
                 token=token, headers=spoof)
        self.assertEqual(r.status, 202, r.text)
        self.assertTrue(r.json()["websocket_url"].startswith(f"ws://127.0.0.1:{self.orch.port}/api/ws/refinements/"),
                        r.json()["websocket_url"])
        # Behind a trusted proxy (here: loopback) they are believed.
        workdir = tempfile.mkdtemp(dir=self.tmp)
        proxied = Orchestrator(workdir, self.engine.base, extra=["--trusted-proxies", "127.0.0.1"]).start()
        try:
            email = f"proxy-{uuid.uuid4().hex[:8]}@example.com"
            proxied.add_user(email)
            token = proxied.login(email)
            wf2 = create_workflow(proxied, token, template="single-agent")
            r = curl(proxied.url, "POST", f"/api/workflows/{wf2['id']}/refinements", {"user_prompt": "Hi."},
                     token=token, headers=spoof)
            self.assertEqual(r.status, 202, r.text)
            self.assertTrue(r.json()["websocket_url"].startswith("wss://evil.example/api/ws/refinements/"), r.text)
        finally:
            proxied.stop()

    # ------------------------------------------------------------ names and descriptions
    def test_blank_names_and_byte_limits(self):
        for name in ["   ", "\u00a0\u3000 "]:
            p = self.problem(curl(self.orch.url, "POST", "/api/workflows", {"name": name}, token=self.token), 400)
            self.assertEqual([e["field"] for e in p["errors"]], ["name"], p)
            self.assertIn("blank", p["detail"])
        wf = create_workflow(self.orch, self.token, template="single-agent")
        p = self.problem(curl(self.orch.url, "PATCH", f"/api/workflows/{wf['id']}", {"name": "  "}, token=self.token),
                         400)
        self.assertEqual(p["detail"], "Field 'name' must not be blank: give it at least one visible character.")
        self.assertEqual(curl(self.orch.url, "GET", f"/api/workflows/{wf['id']}", token=self.token).json()["name"],
                         wf["name"])
        # 1500 "é" are 3000 bytes: over the 2000-byte limit, said in bytes, the field named once.
        p = self.problem(curl(self.orch.url, "POST", "/api/workflows", {"name": "W", "description": "é" * 1500},
                              token=self.token), 400)
        self.assertEqual(p["detail"], "Field 'description' must be at most 2000 bytes of UTF-8 (it has 3000).")
        self.assertEqual(p["errors"], [{"field": "description", "message": "must be at most 2000 bytes of UTF-8 "
                                                                            "(it has 3000)"}])
        r = curl(self.orch.url, "POST", "/api/workflows", {"name": "W", "description": "é" * 1000}, token=self.token)
        self.assertEqual(r.status, 201, r.text)

    # ------------------------------------------------------------ error texts
    def test_rejected_tokens_advise_signing_in_only_where_it_helps(self):
        email = f"texts-{uuid.uuid4().hex[:8]}@example.com"
        self.orch.add_user(email)
        token = self.orch.login(email)
        self.assertEqual(self.orch.cli("user disable", email).returncode, 0)
        p = self.problem(curl(self.orch.url, "GET", "/api/workflows", token=token), 401)
        self.assertEqual(p["detail"], "Your sign-in token was rejected (this account is disabled; ask an "
                                      "administrator to enable it).")
        self.assertEqual(self.orch.cli("user enable", email).returncode, 0)
        self.assertEqual(curl(self.orch.url, "GET", "/api/workflows", token=token).status, 200)
        r = self.orch.cli("user set-password", email, stdin="another-passw0rd!\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        p = self.problem(curl(self.orch.url, "GET", "/api/workflows", token=token), 401)
        self.assertEqual(p["detail"], "Your sign-in token was rejected (this token was issued before the account's "
                                      "password changed); sign in again.")

    def test_expiry_leeway_and_out_of_range_exp(self):
        claims = jwt_claims(self.token)
        now = int(time.time())
        for exp, status in [(now - 10, 200), (now - 45, 401)]:  # the leeway is 30 s
            c = dict(claims, exp=exp)
            r = curl(self.orch.url, "GET", "/api/workflows", token=make_jwt(c, self.orch.jwt_secret))
            self.assertEqual(r.status, status, (exp - now, r.text))
        for exp in [2 ** 63, 2 ** 64 - 1]:
            c = dict(claims, exp=exp)
            p = self.problem(curl(self.orch.url, "GET", "/api/workflows", token=make_jwt(c, self.orch.jwt_secret)), 401)
            self.assertIn("the token's exp claim is out of range", p["detail"])
            self.assertNotIn("signature", p["detail"])

    def test_after_seq_and_empty_path_texts(self):
        token = self.fresh_token()
        wf = create_workflow(self.orch, token, template="single-agent")
        thread = refine(self.orch, token, wf["id"]).json()["thread_id"]
        r = curl(self.orch.url, "GET", f"/api/ws/refinements/{thread}?after_seq=1000000000000000000",
                 token=token, headers={"Connection": "Upgrade", "Upgrade": "websocket",
                                            "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        p = self.problem(r, 400)
        self.assertEqual(p["errors"][0]["field"], "after_seq")
        self.assertIn("from 0 to 999999999999999999", p["detail"])
        r = curl(self.engine.base, "GET", f"/spec-engine/stream/{thread}?after_seq=1000000000000000000",
                 headers={"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                          "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        self.assertEqual(r.status, 400, r.text)
        self.assertIn("from 0 to 999999999999999999", r.json()["detail"])
        draft = curl(self.orch.url, "GET", f"/api/workflows/{wf['id']}/draft", token=token).json()
        p = self.problem(curl(self.orch.url, "PUT", f"/api/workflows/{wf['id']}/draft/files",
                              {"files": {"": {"content": "x"}}, "base_revision": draft["revision"]},
                              token=token), 400)
        self.assertIn("file path is empty", p["detail"])

    # ------------------------------------------------------------ CLI and make up
    def test_cli_names_an_unknown_subcommand(self):
        exe = os.path.join(BIN_DIR, "ide-orchestrator")
        for args, want in [(["frob"], "unknown subcommand 'frob'; expected one of: serve, migrate, user"),
                           (["user", "frob"], "unknown subcommand 'user frob'; expected one of: add, list, disable, "
                                              "enable, set-password")]:
            r = subprocess.run([exe, *args], capture_output=True, text=True, timeout=30)
            self.assertNotEqual(r.returncode, 0, args)
            self.assertIn(want, r.stderr, args)
            self.assertNotIn("A subcommand is required", r.stderr, args)
        r = subprocess.run([exe], capture_output=True, text=True, timeout=30)  # nothing given: CLI11's own words
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("subcommand", r.stderr)

    def test_make_up_prints_credentials_without_trailing_spaces(self):
        data = tempfile.mkdtemp(dir=self.tmp)
        env = dict(os.environ, BIN_DIR=BIN_DIR, UP_DATA_DIR=data, UP_PORT=str(free_port()),
                   UP_ENGINE_PORT=str(free_port()))
        env.pop("OPENAI_API_KEY", None)
        for run, note in [(1, ""), (2, " (existing user; its password is the one it was created with)")]:
            p = subprocess.Popen([os.path.join(PROJECT_SOURCE_DIR, "scripts", "up.sh")], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
            lines = []
            try:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    line = p.stdout.readline()
                    if not line:
                        break
                    lines.append(line.rstrip("\n"))
                    if "Press Ctrl-C" in line:
                        break
            finally:
                os.killpg(p.pid, signal.SIGINT)
                p.communicate(timeout=60)
            self.assertIn("    password      correct horse battery staple" + note, lines, (run, lines))
            for line in lines:
                self.assertEqual(line, line.rstrip(), (run, line))
            self.assertEqual(p.returncode, 0, (run, lines))


if __name__ == "__main__":
    unittest.main()
