"""The `openai` provider against a local OpenAI-compatible server (issue 2 "Must show" 3):
tool-call arguments split mid-JSON across SSE chunks, 429/500 retried, a server that
never answers (clear failure within the timeout), HTTPS with a throwaway CA made here
with the openssl CLI. Also: the bounded queue (429 + Retry-After, /ready 503) and
cancelling a running thread with DELETE."""
import os
import shutil
import subprocess
import tempfile
import time
import unittest

import testkit
from testkit import http

WRITE_ARGS = {"file_path": "/notes/ünïcode.md",
              "content": "héllo wörld — \"quoted\" {\"json\": [1, 2]}\nsecond line\n"}


class OpenAiProviderTests(testkit.FakeOpenAiCase):
    def test_tool_call_arguments_split_mid_json(self):
        fake = self.fake([{"content": "I will write the notes.",
                           "tool_calls": [{"id": "call_a", "name": "write_file", "arguments": WRITE_ARGS}]},
                          {"content": "Finished."}], split=5)
        engine = self.engine(fake)
        job, events, state = self.run_to_end(engine)
        self.assertEqual(state["status"], "completed", (state, engine.log()))
        self.assertEqual(testkit.file_text(state["generated_files"]["/notes/ünïcode.md"]).rstrip("\n"),
                         WRITE_ARGS["content"].rstrip("\n"))
        self.assertEqual(len(fake.requests), 2)
        first = fake.requests[0]
        self.assertTrue(first["stream"])
        self.assertEqual(first["model"], "test-model")
        self.assertIn("write_file", [t["function"]["name"] for t in first.get("tools", [])])
        # The second call carries the tool result back to the model.
        self.assertIn("tool", [m["role"] for m in fake.requests[1]["messages"]])
        deltas = "".join(e["data"].get("delta", "") for e in events if e["event_type"] == "on_llm_stream")
        self.assertIn("I will write the notes.", deltas)

    def test_invalid_tool_arguments_are_a_tool_error(self):
        fake = self.fake([{"tool_calls": [{"id": "bad", "name": "write_file", "arguments": '{"file_path": "/x.md", '}]},
                          {"tool_calls": [{"id": "dots", "name": "write_file",
                                           "arguments": {"file_path": "/a/../../etc/x", "content": "x"}}]},
                          {"content": "ok"}])
        engine = self.engine(fake)
        _, events, state = self.run_to_end(engine)
        self.assertEqual(state["status"], "completed", state)
        outs = {e["data"]["tool_call_id"]: e["data"]["output"] for e in events if e["event_type"] == "on_tool_end"}
        self.assertIn("rror", outs["bad"])
        self.assertIn("rror", outs["dots"])
        self.assertEqual(len(fake.requests), 3)  # the model saw both errors and was called again

    def test_429_and_500_are_retried(self):
        fake = self.fake([{"status": 429, "retry_after": "0"}, {"status": 500}, {"content": "Recovered."}])
        engine = self.engine(fake, "--model-max-attempts", "3")
        _, events, state = self.run_to_end(engine)
        self.assertEqual(state["status"], "completed", (state, engine.log()))
        self.assertEqual(len(fake.requests), 3)

    def test_server_that_never_answers_fails_within_timeout(self):
        fake = self.fake([{"hang": True}, {"hang": True}])
        engine = self.engine(fake, "--model-timeout-ms", "1500", "--model-idle-timeout-ms", "1000",
                             "--model-max-attempts", "2")
        t0 = time.monotonic()
        _, events, state = self.run_to_end(engine, timeout=30)
        elapsed = time.monotonic() - t0
        self.assertEqual(state["status"], "failed")
        self.assertLess(elapsed, 15, "the run must fail within the configured timeouts")
        self.assertIn("time", state["error"].lower(), state["error"])
        self.assertEqual(events[-1]["data"]["status"], "failed")
        self.assertTrue(events[-1]["data"]["error"])
        self.assertIn("error", [e["event_type"] for e in events])
        self.assertEqual(http("GET", engine.base + "/health")[0], 200)

    def test_https_with_a_throwaway_ca(self):
        tmp = tempfile.mkdtemp(prefix="se-tls-")
        self.addCleanup(shutil.rmtree, tmp, True)
        ca_key, ca_pem = os.path.join(tmp, "ca.key"), os.path.join(tmp, "ca.pem")
        key, csr, crt, ext = (os.path.join(tmp, n) for n in ("srv.key", "srv.csr", "srv.pem", "ext.cnf"))

        def sh(*cmd):
            subprocess.run(cmd, check=True, capture_output=True)
        sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_pem,
           "-days", "2", "-subj", "/CN=spec-engine test CA")
        sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                    "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
        sh("openssl", "x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key, "-CAcreateserial",
           "-out", crt, "-days", "2", "-extfile", ext)
        fake = self.fake([{"content": "over TLS",
                           "tool_calls": [{"id": "t1", "name": "write_file", "arguments": WRITE_ARGS}]},
                          {"content": "done"}], certfile=crt, keyfile=key)
        engine = self.engine(fake, ca_file=ca_pem)
        _, _, state = self.run_to_end(engine)
        self.assertEqual(state["status"], "completed", (state, engine.log()))
        self.assertIn("/notes/ünïcode.md", state["generated_files"])
        # Without the CA the certificate is not trusted: a clear failure, not a hang.
        untrusted = self.engine(fake, "--model-max-attempts", "1")
        _, _, state2 = self.run_to_end(untrusted)
        self.assertEqual(state2["status"], "failed")
        self.assertTrue(state2["error"])

    def test_queue_full_gives_429_and_ready_503(self):
        fake = self.fake([{"delay": 3, "content": "slow"}] * 3)
        engine = self.engine(fake, "--max-concurrent-runs", "1", "--max-queue", "1")
        a = testkit.new_job(testkit.single_agent_definition())
        b = testkit.new_job(testkit.single_agent_definition())
        c = testkit.new_job(testkit.single_agent_definition())
        self.assertEqual(engine.invoke(a)[0], 202)
        testkit.wait_until(lambda: engine.state(a["job_id"])[2]["status"] == "running", what="a running")
        self.assertEqual(engine.invoke(b)[0], 202)
        st, h, body = engine.invoke(c)
        self.assertEqual(st, 429, body)
        self.assertTrue(h.get("retry-after", "").isdigit())
        self.assertEqual(h.get("content-type"), "application/problem+json")
        self.assertEqual(engine.state(c["job_id"])[0], 404)
        st, _, ready = http("GET", engine.base + "/ready")
        self.assertEqual(st, 503)
        self.assertTrue(ready["reasons"])
        self.assertEqual(engine.invoke(a)[0], 202)  # a duplicate is not rejected by the full queue
        self.assertEqual(engine.wait_terminal(b["job_id"], timeout=30)["status"], "completed")
        self.assertEqual(http("GET", engine.base + "/ready")[0], 200)

    def test_delete_cancels_a_running_thread(self):
        fake = self.fake([{"delay": 2, "tool_calls": [{"id": "w", "name": "write_file", "arguments": WRITE_ARGS}]},
                          {"delay": 2, "content": "never reached"}])
        engine = self.engine(fake)
        job = testkit.new_job(testkit.single_agent_definition())
        self.assertEqual(engine.invoke(job)[0], 202)
        testkit.wait_until(lambda: len(fake.requests) >= 1, what="first model call")
        t0 = time.monotonic()
        st, _, _ = http("DELETE", f"{engine.base}/spec-engine/threads/{job['job_id']}", timeout=30)
        self.assertEqual(st, 204)
        self.assertLess(time.monotonic() - t0, 12)
        self.assertEqual(engine.state(job["job_id"])[0], 404)
        self.assertEqual(http("GET", engine.base + "/health")[0], 200)


if __name__ == "__main__":
    unittest.main()
