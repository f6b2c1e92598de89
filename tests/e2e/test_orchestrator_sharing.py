"""Sharing end to end on the real binaries: the members routes, who may call them, viewers
refused (403) on every route that changes something while strangers get 404, GET /api/me,
and the admin commands `ide-orchestrator user list|disable|enable|set-password` (disabled
users and tokens older than a password change get 401)."""
import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import unittest
import uuid

import testkit
from e2ekit import Stack, create_workflow, curl, refine, slow_script, wait_proposal, ws_url


class StreamsEndWhenAccessEnds(unittest.TestCase):
    """An open browser stream's access is checked again (--ws-recheck-seconds 1): removing the
    member who watches it ends it with an `error` event and close code 1008, while the run goes on."""

    def test_a_removed_members_stream_is_closed_with_1008(self):
        d = tempfile.mkdtemp(prefix="e2e-recheck-")
        stack = Stack(script=slow_script(os.path.join(d, "slow.json"), turns=40), orch_extra=("--ws-recheck-seconds", "1"))
        try:
            owner = stack.user()
            editor_email = f"editor-{uuid.uuid4().hex[:6]}@example.com"
            editor_id = stack.orch.add_user(editor_email)
            editor = stack.orch.login(editor_email)
            wf = create_workflow(stack.orch, owner)
            r = curl(stack.orch.url, "PUT", f"/api/workflows/{wf['id']}/members/{editor_email}", {"role": "editor"},
                     token=owner)
            self.assertEqual(r.status, 201, r.text)
            started = refine(stack.orch, editor, wf["id"])
            self.assertEqual(started.status, 202, started.text)
            thread_id = started.json()["thread_id"]

            async def watch_then_remove():
                connected = asyncio.Event()
                watcher = asyncio.create_task(testkit.browse(
                    (ws_url(stack.orch, thread_id), {"Authorization": "Bearer " + editor}), timeout=60,
                    on_open=connected))
                await asyncio.wait_for(connected.wait(), 30)
                await asyncio.sleep(1.5)  # at least one re-check that still allows it
                removed = await asyncio.to_thread(
                    curl, stack.orch.url, "DELETE", f"/api/workflows/{wf['id']}/members/{editor_id}", None,
                    token=owner)
                self.assertEqual(removed.status, 204, removed.text)
                return await asyncio.wait_for(watcher, 30)

            events, code = asyncio.run(watch_then_remove())
            self.assertEqual(code, 1008)
            self.assertGreater(len(events), 1, "it streamed while the editor was a member")
            self.assertEqual(events[-1]["event_type"], "error")
            self.assertIn("no longer watch", events[-1]["data"]["error"])
            # The run goes on: the proxy is only a view.
            st = stack.engine.state(thread_id)[2]
            self.assertIn(st.get("status"), ("queued", "running", "completed"), st)
        finally:
            stack.close()
            shutil.rmtree(d, ignore_errors=True)


class Sharing(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stack = Stack()
        cls.orch = cls.stack.orch
        cls.emails = {}
        cls.tokens = {}
        cls.ids = {}
        for who in ("owner", "editor", "viewer", "stranger", "demoted"):
            email = f"{who}-{uuid.uuid4().hex[:6]}@example.com"
            cls.ids[who] = cls.orch.add_user(email, name=who.capitalize())
            cls.emails[who] = email
            cls.tokens[who] = cls.orch.login(email)

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()

    def call(self, who, method, path, body=None):
        return curl(self.orch.url, method, path, body, token=self.tokens[who] if who else None)

    def assert_problem(self, r, status, words=()):
        self.assertEqual(r.status, status, r.text)
        self.assertTrue(r.header("content-type").startswith("application/problem+json"), r.headers)
        for w in words:
            self.assertIn(w.lower(), r.json()["detail"].lower())
        return r.json()

    def audit_actions(self, subject_id):
        db = sqlite3.connect(os.path.join(self.stack.dir, "orch-data", "orchestrator.db"), timeout=30)
        try:
            return [a for (a,) in db.execute("SELECT action FROM audit_log WHERE subject_id = ? ORDER BY at", (subject_id,))]
        finally:
            db.close()

    def shared_workflow(self):
        """A workflow of `owner` with `editor` (added by e-mail) and `viewer` (added by id)."""
        wf = create_workflow(self.orch, self.tokens["owner"], name="Shared")
        r = self.call("owner", "PUT", f"/api/workflows/{wf['id']}/members/{self.emails['editor'].upper()}", {"role": "editor"})
        self.assertEqual(r.status, 201, r.text)
        r = self.call("owner", "PUT", f"/api/workflows/{wf['id']}/members/{self.ids['viewer']}", {"role": "viewer"})
        self.assertEqual(r.status, 201, r.text)
        return wf

    def test_members_add_change_list_remove(self):
        wf = self.shared_workflow()
        base = f"/api/workflows/{wf['id']}/members"
        added = self.call("owner", "GET", base).json()
        self.assertIsNone(added["next_cursor"])
        roles = {m["email"]: m["role"] for m in added["items"]}
        self.assertEqual(roles, {self.emails["owner"]: "owner", self.emails["editor"]: "editor", self.emails["viewer"]: "viewer"})
        for m in added["items"]:
            self.assertEqual(set(m), {"user_id", "email", "name", "role", "added_at"})
        # Every member may list, strangers may not even see that the workflow exists.
        for who in ("editor", "viewer"):
            self.assertEqual(self.call(who, "GET", base).status, 200)
        self.assert_problem(self.call("stranger", "GET", base), 404)
        page = self.call("owner", "GET", base + "?limit=2").json()
        self.assertEqual(len(page["items"]), 2)
        rest = self.call("owner", "GET", base + "?limit=2&cursor=" + page["next_cursor"]).json()
        self.assertEqual(len(rest["items"]), 1)
        self.assertEqual(rest["items"][0]["role"], "owner")

        # Idempotent PUT (200, nothing audited), role change (200), %40-encoded e-mail.
        viewer = f"{base}/{self.emails['viewer'].replace('@', '%40')}"
        again = self.call("owner", "PUT", viewer, {"role": "viewer"})
        self.assertEqual(again.status, 200, again.text)
        self.assertEqual(again.json()["user_id"], self.ids["viewer"])
        up = self.call("owner", "PUT", viewer, {"role": "editor"})
        self.assertEqual((up.status, up.json()["role"]), (200, "editor"))
        self.assertEqual(self.call("viewer", "GET", f"/api/workflows/{wf['id']}").json()["role"], "editor")
        self.assertEqual(self.audit_actions(self.ids["viewer"]).count("workflow.member"), 2)

        # Bad input names the field; unknown users are 404.
        for body in ({"role": "owner"}, {"role": ""}, {}):
            p = self.assert_problem(self.call("owner", "PUT", viewer, body), 400)
            self.assertEqual(p["errors"][0]["field"], "role")
        self.assert_problem(self.call("owner", "PUT", f"{base}/nobody@example.com", {"role": "viewer"}), 404, ["user"])
        self.assert_problem(self.call("owner", "PUT", f"{base}/{uuid.uuid4()}", {"role": "viewer"}), 404)
        self.assert_problem(self.call("owner", "PUT", f"{base}/not-a-user", {"role": "viewer"}), 400, ["e-mail"])

        # Removal: the user loses the workflow; a second removal is 404.
        r = self.call("owner", "DELETE", viewer)
        self.assertEqual(r.status, 204, r.text)
        self.assert_problem(self.call("viewer", "GET", f"/api/workflows/{wf['id']}"), 404)
        self.assertNotIn(wf["id"], [w["id"] for w in self.call("viewer", "GET", "/api/workflows").json()["items"]])
        self.assert_problem(self.call("owner", "DELETE", viewer), 404)
        self.assertIn("workflow.member_remove", self.audit_actions(self.ids["viewer"]))

    def test_only_the_owner_shares_and_the_owner_stays(self):
        wf = self.shared_workflow()
        base = f"/api/workflows/{wf['id']}/members"
        for who in ("editor", "viewer"):
            self.assert_problem(self.call(who, "PUT", f"{base}/{self.ids['stranger']}", {"role": "viewer"}), 403, ["owner"])
            other = "viewer" if who == "editor" else "editor"
            self.assert_problem(self.call(who, "DELETE", f"{base}/{self.ids[other]}"), 403, ["owner"])
        self.assert_problem(self.call("stranger", "PUT", f"{base}/{self.ids['stranger']}", {"role": "editor"}), 404)
        self.assert_problem(self.call("stranger", "DELETE", f"{base}/{self.ids['editor']}"), 404)
        # The owner can be neither demoted nor removed: a workflow is never ownerless.
        self.assert_problem(self.call("owner", "PUT", f"{base}/{self.ids['owner']}", {"role": "editor"}), 409, ["owner"])
        self.assert_problem(self.call("owner", "DELETE", f"{base}/{self.emails['owner']}"), 409, ["owner"])
        self.assert_problem(self.call("editor", "DELETE", f"{base}/{self.ids['owner']}"), 403)
        self.assertEqual(self.call("owner", "GET", f"/api/workflows/{wf['id']}").json()["role"], "owner")
        # A member may leave on their own.
        self.assertEqual(self.call("viewer", "DELETE", f"{base}/{self.ids['viewer']}").status, 204)
        self.assert_problem(self.call("viewer", "GET", f"/api/workflows/{wf['id']}"), 404)

    def test_viewers_get_403_and_strangers_404_on_every_changing_route(self):
        wf = self.shared_workflow()
        wid = wf["id"]
        # A proposal started by someone who was an editor and is now a viewer: they still have
        # access to it (so the refusal is 403, not 404) but may no longer decide it.
        r = self.call("owner", "PUT", f"/api/workflows/{wid}/members/{self.ids['demoted']}", {"role": "editor"})
        self.assertEqual(r.status, 201, r.text)
        started = refine(self.orch, self.tokens["demoted"], wid).json()
        prop = wait_proposal(self.orch, self.tokens["demoted"], started["proposal_id"])
        self.assertEqual(prop["status"], "completed", prop)
        self.assertEqual(self.call("owner", "POST", f"/api/workflows/{wid}/versions").status, 201)
        r = self.call("owner", "PUT", f"/api/workflows/{wid}/members/{self.ids['demoted']}", {"role": "viewer"})
        self.assertEqual(r.status, 200, r.text)
        draft = self.call("owner", "GET", f"/api/workflows/{wid}/draft").json()
        pid = prop["id"]
        routes = [
            ("PATCH", f"/api/workflows/{wid}", {"name": "Taken over"}),
            ("DELETE", f"/api/workflows/{wid}", None),
            ("PUT", f"/api/workflows/{wid}/members/{self.ids['stranger']}", {"role": "editor"}),
            ("DELETE", f"/api/workflows/{wid}/members/{self.ids['editor']}", None),
            ("PUT", f"/api/workflows/{wid}/draft/files", {"files": {"/x.md": {"content": ["x"]}}, "base_revision": draft["revision"]}),
            ("DELETE", f"/api/drafts/{draft['id']}", None),
            ("POST", f"/api/workflows/{wid}/refinements", {"user_prompt": "Add a critic."}),
            ("POST", f"/api/workflows/{wid}/versions", {}),
            ("POST", f"/api/workflows/{wid}/deploy", {}),
            ("POST", f"/api/proposals/{pid}/approve", {}),
            ("POST", f"/api/proposals/{pid}/reject", {}),
            ("POST", f"/api/proposals/{pid}/cancel", {}),
            ("POST", f"/api/proposals/{pid}/retry", {}),
        ]
        for method, path, body in routes:
            with self.subTest(route=f"{method} {path}"):
                self.assert_problem(self.call("demoted", method, path, body), 403, ["viewer"])
                # A viewer who never had access to the proposal cannot even see it (404, as for strangers).
                on_proposal = path.startswith("/api/proposals/")
                self.assert_problem(self.call("viewer", method, path, body), 404 if on_proposal else 403)
                self.assert_problem(self.call("stranger", method, path, body), 404)
        # ... and nothing changed.
        after = self.call("owner", "GET", f"/api/workflows/{wid}").json()
        self.assertEqual(after["name"], "Shared")
        self.assertEqual(after["draft"]["revision"], draft["revision"])
        self.assertEqual(after["draft"]["id"], draft["id"])
        self.assertEqual(len(self.call("owner", "GET", f"/api/workflows/{wid}/versions").json()["items"]), 1)
        self.assertEqual(len(self.call("owner", "GET", f"/api/workflows/{wid}/members").json()["items"]), 4)
        self.assertEqual(self.call("demoted", "GET", f"/api/proposals/{pid}").json()["status"], "completed")
        self.assertEqual(len(self.call("owner", "GET", f"/api/workflows/{wid}/proposals").json()["items"]), 1)
        # Reads still work for viewers.
        for path in (f"/api/workflows/{wid}", f"/api/workflows/{wid}/draft", f"/api/workflows/{wid}/versions",
                     f"/api/workflows/{wid}/versions/1", f"/api/workflows/{wid}/members", f"/api/proposals/{pid}",
                     f"/api/proposals/{pid}/diff"):
            self.assertEqual(self.call("demoted", "GET", path).status, 200, path)
        # The editor may rename (and the owner may everything).
        r = self.call("editor", "PATCH", f"/api/workflows/{wid}", {"name": "Renamed by the editor"})
        self.assertEqual((r.status, r.json()["name"]), (200, "Renamed by the editor"))
        self.assert_problem(self.call("editor", "DELETE", f"/api/workflows/{wid}"), 403, ["owner"])

    def test_me(self):
        r = self.call("editor", "GET", "/api/me")
        self.assertEqual(r.status, 200, r.text)
        me = r.json()
        self.assertEqual(me["id"], self.ids["editor"])
        self.assertEqual(me["email"], self.emails["editor"])
        self.assertEqual(me["name"], "Editor")
        self.assertTrue(me["created_at"].endswith("Z"))
        self.assertEqual(me["identities"], [])
        self.assertNotIn("password_hash", r.text)
        self.assert_problem(self.call(None, "GET", "/api/me"), 401)


class UserAdministration(unittest.TestCase):
    """`ide-orchestrator user list|disable|enable|set-password` against a running service."""

    @classmethod
    def setUpClass(cls):
        cls.stack = Stack()
        cls.orch = cls.stack.orch

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()

    def user(self):
        email = f"admin-{uuid.uuid4().hex[:6]}@example.com"
        uid = self.orch.add_user(email, name="Grace Hopper")
        return uid, email, self.orch.login(email)

    def status(self, token, path="/api/workflows"):
        return curl(self.orch.url, "GET", path, token=token).status

    def login(self, email, password="s3cret-passw0rd!"):
        return curl(self.orch.url, "POST", "/api/auth/login", {"email": email, "password": password})

    def test_help_lists_the_subcommands(self):
        r = subprocess.run([self.orch.exe, "user", "--help"], capture_output=True, text=True, timeout=30)
        for word in ("add", "list", "disable", "enable", "set-password"):
            self.assertIn(word, r.stdout)
        r = self.orch.cli("user set-password", "--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--password-file", r.stdout)
        self.assertNotIn("--password ", r.stdout)  # never from argv

    def test_list(self):
        uid, email, _ = self.user()
        r = self.orch.cli("user list")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split("\t"), ["ID", "EMAIL", "NAME", "CREATED", "STATUS"])
        row = [line.split("\t") for line in lines[1:] if line.startswith(uid)]
        self.assertEqual(len(row), 1)
        self.assertEqual(row[0][1:3], [email, "Grace Hopper"])
        self.assertEqual(row[0][4], "active")
        j = self.orch.cli("user list", "--json")
        users = {u["id"]: u for u in json.loads(j.stdout)}
        self.assertEqual(users[uid]["email"], email)
        self.assertIsNone(users[uid]["disabled_at"])
        self.assertNotIn("password", j.stdout)

    def test_disable_and_enable(self):
        uid, email, token = self.user()
        r = self.orch.cli("user disable", email)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("disabled", r.stdout)
        # Every token of theirs is refused, on every route; signing in is refused with a reason.
        self.assertEqual(self.status(token), 401)
        self.assertEqual(self.status(token, "/api/me"), 401)
        login = self.login(email)
        self.assertEqual(login.status, 401, login.text)
        self.assertIn("disabled", login.json()["detail"])
        wrong = self.login(email, "not-the-password")
        self.assertNotIn("disabled", wrong.json()["detail"], "a guesser learns nothing")
        self.assertEqual(self.orch.cli("user disable", uid).returncode, 0, "idempotent")
        listed = {u["id"]: u for u in json.loads(self.orch.cli("user list", "--json").stdout)}
        self.assertIsNotNone(listed[uid]["disabled_at"])
        # Enabled again: the old token works again (nothing about it changed), and so does sign-in.
        self.assertEqual(self.orch.cli("user enable", uid).returncode, 0)
        self.assertEqual(self.status(token), 200)
        self.assertEqual(self.login(email).status, 200)

    def test_set_password_from_stdin_and_file_ends_older_sessions(self):
        uid, email, token = self.user()
        r = self.orch.cli("user set-password", email, stdin="a-brand-new-password\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.status(token), 401, "a token issued before the change is refused")
        self.assertEqual(self.login(email).status, 401, "the old password no longer works")
        new = self.login(email, "a-brand-new-password")
        self.assertEqual(new.status, 200, new.text)
        self.assertEqual(self.status(new.json()["token"]), 200, "a token issued right after the change works")
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
            f.write("password-from-a-file\n")
            f.flush()
            r = self.orch.cli("user set-password", uid, "--password-file", f.name)
            self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.login(email, "password-from-a-file").status, 200)
        short = self.orch.cli("user set-password", uid, stdin="short\n")
        self.assertNotEqual(short.returncode, 0)
        self.assertIn("password", short.stderr)
        self.assertEqual(self.login(email, "password-from-a-file").status, 200, "a refused change changes nothing")

    def test_unknown_users_are_named(self):
        for cmd in ("user disable", "user enable"):
            r = self.orch.cli(cmd, "nobody@example.com")
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("nobody@example.com", r.stderr)
        r = self.orch.cli("user set-password", str(uuid.uuid4()), stdin="long-enough-password\n")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("not found", r.stderr)


if __name__ == "__main__":
    unittest.main()
