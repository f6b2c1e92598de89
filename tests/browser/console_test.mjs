// Browser test of the web console (issue 11): Debian's Chromium, headless, driven by
// playwright-core (no browser download) against the real binaries on loopback ports. The engine
// first talks to paced-model-server (an OpenAI-compatible server that streams a fixed script at a
// fixed pace, so the page sees text and tool calls arrive before the end through the real
// WebSocket proxy), and after the engine-down step it restarts on the offline scripted model
// (config/demo/refinement-script.json: todos, a sub-agent, a new FactChecker agent). Every step saves screenshots at 1280x800 and 390x844 under
// $TEST_OUTPUT_DIR (build/test-output/console) and runs axe-core on the page: no serious or
// critical violations allowed. Any Content-Security-Policy violation or page error fails it.
//
// Environment (set by tests/CMakeLists.txt): BIN_DIR (ide-orchestrator, spec-engine,
// paced-model-server), PROJECT_SOURCE_DIR, WEB_DIR (the built
// console), WEB_PACKAGE_DIR (web/, for node_modules), TEST_OUTPUT_DIR, CHROMIUM (/usr/bin/chromium).
//
// Prints "ok N - step" per step and closes with "N passed, M failed".

import { spawn, spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

const env = process.env;
const SRC = env.PROJECT_SOURCE_DIR ?? path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
const BIN = env.BIN_DIR ?? path.join(SRC, "build/bin");
const WEB_DIR = env.WEB_DIR ?? path.join(SRC, "build/web");
const WEB_PKG = env.WEB_PACKAGE_DIR ?? path.join(SRC, "web");
const OUT = env.TEST_OUTPUT_DIR ?? path.join(SRC, "build/test-output/console");
const CHROMIUM = env.CHROMIUM ?? "/usr/bin/chromium";
const SCRIPT = path.join(SRC, "config/demo/refinement-script.json");

const require = createRequire(path.join(WEB_PKG, "package.json"));
const { chromium } = require("playwright-core");
const AXE_SOURCE = fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const USERS = {
  ada: { email: "ada@example.com", name: "Ada Lovelace", password: "correct horse battery staple" },
  grace: { email: "grace@example.com", name: "Grace Hopper", password: "another long passphrase" },
};
const script = JSON.parse(fs.readFileSync(SCRIPT, "utf8"));
const SCRIPT_TOOL_CALLS = script.turns.reduce((n, t) => n + (t.tool_calls?.length ?? 0), 0);
const SCRIPT_TEXT_TURNS = script.turns.filter((t) => t.content).length;
// The paced model's script: PACED.turns turns of PACED.chunks text chunks at PACED.rate chunks/s,
// each ending in a write_file of /THE_SPEC/paced-<n>.md, then a final "Done" answer.
const PACED = { turns: 2, chunks: 6, rate: 8 };

// ------------------------------------------------------------------ small helpers
function fail(msg) {
  throw new Error(msg);
}
function assert(cond, msg) {
  if (!cond) fail(msg);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

async function waitHealthy(url, proc, name, timeoutMs = 30000) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (proc.exitCode !== null) fail(`${name} exited during start-up (code ${proc.exitCode}); see ${proc.logPath}`);
    try {
      const r = await fetch(`${url}/health`);
      if (r.ok) return;
    } catch {
      /* not yet */
    }
    await sleep(100);
  }
  fail(`${name} did not answer ${url}/health within ${timeoutMs / 1000} s`);
}

const children = new Set();

/** A child process with its output in a log file under the work dir. */
function startProcess(name, cmd, args, extraEnv, workdir) {
  const logPath = path.join(workdir, `${name}.log`);
  const log = fs.openSync(logPath, "a");
  const childEnv = { ...process.env, ...extraEnv };
  delete childEnv.OPENAI_API_KEY;
  const p = spawn(cmd, args, { env: childEnv, stdio: ["ignore", log, log] });
  fs.closeSync(log);
  p.logPath = logPath;
  children.add(p);
  p.once("exit", () => children.delete(p));
  return p;
}

async function stopProcess(p, timeoutMs = 10000) {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const done = new Promise((r) => p.once("exit", r));
  p.kill("SIGTERM");
  const t = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
  await done;
  clearTimeout(t);
}

function tail(file, n = 25) {
  try {
    return fs.readFileSync(file, "utf8").trimEnd().split("\n").slice(-n).join("\n");
  } catch {
    return "(no log)";
  }
}

// ------------------------------------------------------------------ the services
class Services {
  async start() {
    this.work = fs.mkdtempSync(path.join(os.tmpdir(), "console-test-"));
    this.enginePort = await freePort();
    this.orchPort = await freePort();
    this.engineUrl = `http://127.0.0.1:${this.enginePort}`;
    this.url = `http://127.0.0.1:${this.orchPort}`;
    this.jwt = Array.from({ length: 64 }, () => "0123456789abcdef"[Math.floor(Math.random() * 16)]).join("");
    this.pacedPort = await freePort();
    this.paced = startProcess(
      "paced-model",
      path.join(BIN, "paced-model-server"),
      ["--host", "127.0.0.1", "--port", String(this.pacedPort), "--turns", String(PACED.turns), "--chunks",
        String(PACED.chunks), "--rate", String(PACED.rate)],
      {},
      this.work,
    );
    await waitHealthy(`http://127.0.0.1:${this.pacedPort}`, this.paced, "paced-model-server");
    await this.startEngine("paced");
    this.orch = startProcess(
      "orchestrator",
      path.join(BIN, "ide-orchestrator"),
      [
        "serve", "--data-dir", path.join(this.work, "orch"), "--host", "127.0.0.1", "--port", String(this.orchPort),
        "--engine-url", this.engineUrl, "--web-dir", WEB_DIR, "--engine-breaker-open-seconds", "2",
      ],
      { JWT_SECRET: this.jwt },
      this.work,
    );
    await waitHealthy(this.url, this.orch, "ide-orchestrator");
    for (const u of Object.values(USERS)) {
      const r = spawnSync(
        path.join(BIN, "ide-orchestrator"),
        ["user", "add", "--data-dir", path.join(this.work, "orch"), "--email", u.email, "--name", u.name],
        { input: `${u.password}\n`, env: { ...process.env, JWT_SECRET: this.jwt }, encoding: "utf8", timeout: 60000 },
      );
      assert(r.status === 0, `user add ${u.email} failed: ${r.stderr}`);
    }
  }

  /** `model`: "paced" (every agent on paced-model-server) or "scripted" (the refinement script). */
  async startEngine(model) {
    const exe = path.join(BIN, "spec-engine");
    const help = spawnSync(exe, ["--help"], { encoding: "utf8" });
    const args = /^\s+serve\b/m.test(`${help.stdout}${help.stderr}`) ? ["serve"] : [];
    args.push("--host", "127.0.0.1", "--port", String(this.enginePort), "--data-dir", path.join(this.work, "engine"));
    const extra = {};
    if (model === "paced") {
      args.push("--model-override", "openai:paced", "--openai-base-url", `http://127.0.0.1:${this.pacedPort}/v1`);
    } else {
      args.push("--model-override", `scripted:${SCRIPT}`);
    }
    this.engine = startProcess("engine", exe, args, extra, this.work);
    await waitHealthy(this.engineUrl, this.engine, "spec-engine");
  }

  async stopEngine() {
    await stopProcess(this.engine);
  }

  async login(user) {
    const r = await fetch(`${this.url}/api/auth/login`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email: user.email, password: user.password }),
    });
    assert(r.ok, `API login of ${user.email}: HTTP ${r.status}`);
    return (await r.json()).token;
  }

  async api(token, method, p, body) {
    const r = await fetch(`${this.url}/api${p}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    assert(r.ok, `${method} ${p}: HTTP ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
  }

  async stop() {
    await stopProcess(this.orch);
    await stopProcess(this.engine);
    await stopProcess(this.paced);
  }

  logs() {
    return `---- spec-engine log\n${tail(this.engine?.logPath)}\n---- ide-orchestrator log\n${tail(this.orch?.logPath)}`;
  }
}

// ------------------------------------------------------------------ the browser
const LAUNCH_ARGS = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync",
];

/** A fresh Chromium profile (its own --user-data-dir); headless adds --headless. */
async function openBrowser(name) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `console-chromium-${name}-`));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    args: LAUNCH_ARGS,
    viewport: DESKTOP,
    locale: "en-GB",
    timezoneId: "UTC",
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (/Content[- ]Security[- ]Policy|Refused to/i.test(m.text())) problems.push(`CSP: ${m.text()}`);
  });
  // Report CSP violations from inside the page as well (init scripts run outside the policy).
  await context.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      console.error(`Refused to load: Content Security Policy violation ${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  page.setDefaultTimeout(20000);
  return { context, page, problems, dir };
}

let shotNo = 0;
/** Screenshots at both sizes, axe at both sizes, and no sideways scrolling on the phone. */
async function checkpoint(page, name, { axe = true, show } = {}) {
  shotNo += 1;
  const base = `${String(shotNo).padStart(2, "0")}-${name}`;
  const saved = [];
  for (const [label, size] of [["1280x800", DESKTOP], ["390x844", PHONE]]) {
    await page.setViewportSize(size);
    await sleep(250); // layout and diff re-render after the media query flips
    if (show) await show.scrollIntoViewIfNeeded();
    const file = path.join(OUT, `${base}-${label}.png`);
    await page.screenshot({ path: file });
    saved.push(path.basename(file));
    if (axe) await axeCheck(page, `${name} at ${label}`);
    if (size === PHONE) {
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert(overflow <= 1, `${name} at 390x844 scrolls sideways by ${overflow}px`);
    }
  }
  await page.setViewportSize(DESKTOP);
  await sleep(150);
  console.log(`#   screenshots: ${saved.join(", ")}`);
}

async function axeCheck(page, where) {
  const hasAxe = await page.evaluate(() => typeof window.axe !== "undefined");
  if (!hasAxe) await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(() =>
    window.axe.run(document, { resultTypes: ["violations"] }).then((r) =>
      r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")) })),
    ),
  );
  const bad = result.filter((v) => v.impact === "serious" || v.impact === "critical");
  for (const v of result.filter((x) => !bad.includes(x))) console.log(`#   axe (${v.impact}) ${v.id}: ${v.help} [${where}]`);
  assert(!bad.length, `axe found serious/critical violations on ${where}: ${JSON.stringify(bad, null, 1)}`);
}

/** Records when stream text, a tool call and the end first appear on the page. */
async function watchStream(page) {
  await page.evaluate(() => {
    const w = (window.__streamTimes = { text: 0, tool: 0, end: 0, subagent: "" });
    const check = () => {
      const now = performance.now();
      if (!w.text && [...document.querySelectorAll('[data-testid="stream-text"] .entry-body')].some((e) => e.textContent.trim()))
        w.text = now;
      if (!w.tool && document.querySelector('[data-testid="stream-tool"]')) w.tool = now;
      const st = document.querySelector('[data-testid="stream-status"]');
      if (!w.end && st && /Finished|Ended/.test(st.textContent)) w.end = now;
      const agent = document.querySelector('[data-testid="stream-agent"]');
      if (!w.subagent && agent && /sub-agent of/.test(agent.textContent)) w.subagent = agent.textContent;
    };
    new MutationObserver(check).observe(document.body, { subtree: true, childList: true, characterData: true });
  });
}

/**
 * Routes the refinement WebSocket through the test to cut the first connection after
 * `dropAfter` events, as a network drop would (the events themselves pass unchanged, at the
 * server's pace). Returns the URLs the page connected to.
 */
async function routeStreamDrop(page, dropAfter) {
  const urls = [];
  await page.routeWebSocket(/\/api\/ws\/refinements\//, (ws) => {
    urls.push(ws.url());
    const drop = urls.length === 1;
    const server = ws.connectToServer();
    let sent = 0;
    let closed = false;
    server.onMessage((m) => {
      if (closed) return;
      ws.send(m);
      sent += 1;
      if (drop && sent === dropAfter) {
        closed = true;
        ws.close({ code: 4000, reason: "test: network drop" });
        server.close();
      }
    });
    server.onClose((code, reason) => {
      if (!closed) {
        closed = true;
        ws.close({ code, reason });
      }
    });
    ws.onMessage((m) => server.send(m));
  });
  return urls;
}

/** Records the URL of every WebSocket the page opens (the real connection, not routed). */
function recordSockets(page) {
  const urls = [];
  page.on("websocket", (ws) => urls.push(ws.url()));
  return urls;
}

async function signIn(page, user, { keyboard = false, landing } = {}) {
  if (keyboard) {
    // Keyboard only: the e-mail field is the first stop, Enter submits.
    await page.keyboard.press("Tab");
    assert(await page.evaluate(() => document.activeElement?.getAttribute("name") === "email"), "Tab does not reach the e-mail field first");
    await page.keyboard.type(user.email);
    await page.keyboard.press("Tab");
    await page.keyboard.type(user.password);
    await page.keyboard.press("Enter");
  } else {
    await page.getByLabel("E-mail").fill(user.email);
    await page.getByLabel("Password").fill(user.password);
    await page.getByRole("button", { name: "Sign in" }).click();
  }
  await (landing ?? page.getByRole("heading", { name: "Workflows", exact: true })).waitFor();
}

async function createWorkflow(page, name, description) {
  await page.getByRole("link", { name: "Agentic IDE" }).click(); // the top bar's home link
  await page.getByRole("heading", { name: "Workflows", exact: true }).waitFor();
  await page.getByTestId("workflow-list").or(page.getByTestId("create-workflow")).first().waitFor();
  const form = page.getByTestId("create-workflow");
  if (!(await form.isVisible())) await page.getByRole("button", { name: "New workflow" }).click();
  await form.getByLabel("Name").fill(name);
  await form.getByLabel(/Description/).fill(description);
  await form.getByLabel("Start from").selectOption("multi-agent");
  await form.getByRole("button", { name: "Create workflow" }).click();
  await page.getByTestId("file-tree").waitFor();
  return page.url().match(/#\/w\/([0-9a-f-]{36})/)[1];
}

async function refine(page, prompt) {
  await page.getByLabel("What should change?").fill(prompt);
  await page.getByRole("button", { name: "Refine", exact: true }).click();
}

async function waitStatus(page, text, timeout = 30000) {
  await page.getByTestId("proposal-status").filter({ hasText: text }).waitFor({ timeout });
}

// ------------------------------------------------------------------ the steps
const results = { passed: 0, failed: 0 };
async function step(name, fn) {
  try {
    await fn();
    results.passed += 1;
    console.log(`ok ${results.passed + results.failed} - ${name}`);
  } catch (e) {
    results.failed += 1;
    console.log(`not ok ${results.passed + results.failed} - ${name}\n# ${String(e.stack ?? e).split("\n").join("\n# ")}`);
    throw e;
  }
}

async function main() {
  fs.rmSync(OUT, { recursive: true, force: true });
  fs.mkdirSync(OUT, { recursive: true });
  assert(fs.existsSync(CHROMIUM), `${CHROMIUM} not found: install Debian's chromium (scripts/install-deps.sh does)`);
  assert(fs.existsSync(path.join(WEB_DIR, "index.html")), `${WEB_DIR}/index.html not found: build the console (make build)`);
  console.log(`# output: ${OUT}`);
  const svc = new Services();
  const browsers = [];
  try {
    await svc.start();
    let ada, wfId, secondWf;

    await step("the orchestrator serves the console with its content types, caching and CSP", async () => {
      const r = await fetch(`${svc.url}/`);
      assert(r.status === 200, `GET / answered ${r.status}`);
      assert(r.headers.get("content-type") === "text/html; charset=utf-8", `GET / content-type ${r.headers.get("content-type")}`);
      assert(r.headers.get("cache-control") === "no-cache", `GET / cache-control ${r.headers.get("cache-control")}`);
      const csp = r.headers.get("content-security-policy") ?? "";
      assert(/script-src 'self'/.test(csp) && /style-src 'self'/.test(csp) && !/unsafe/.test(csp), `CSP ${csp}`);
      const html = await r.text();
      const js = html.match(/src="(\/assets\/[^"]+\.js)"/)?.[1];
      const css = html.match(/href="(\/assets\/[^"]+\.css)"/)?.[1];
      assert(js && css, "index.html does not reference hashed /assets/*.js and *.css");
      assert(!/<script>|<script type="module">[^<]|style=/.test(html), "index.html has inline script or style");
      for (const [p, type] of [[js, "text/javascript; charset=utf-8"], [css, "text/css; charset=utf-8"]]) {
        const a = await fetch(svc.url + p);
        assert(a.status === 200 && a.headers.get("content-type") === type, `${p}: ${a.status} ${a.headers.get("content-type")}`);
        assert(a.headers.get("cache-control") === "public, max-age=31536000, immutable", `${p} cache-control ${a.headers.get("cache-control")}`);
        const again = await fetch(svc.url + p, { headers: { "If-None-Match": a.headers.get("etag") } });
        assert(again.status === 304, `${p} with If-None-Match answered ${again.status}`);
      }
      const trav = await fetch(`${svc.url}/assets/..%2f..%2fetc%2fpasswd`);
      assert(trav.status === 404, `path traversal answered ${trav.status}`);
    });

    const a = await openBrowser("ada");
    browsers.push(a);
    const page = a.page;

    await step("sign-in page: a wrong password is explained; sign in with the keyboard only", async () => {
      await page.goto(`${svc.url}/`);
      await page.getByRole("heading", { name: "Sign in" }).waitFor();
      await checkpoint(page, "sign-in");
      await page.getByLabel("E-mail").fill(USERS.ada.email);
      await page.getByLabel("Password").fill("not the password");
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByRole("alert").filter({ hasText: /password|credentials|invalid/i }).waitFor();
      await checkpoint(page, "sign-in-wrong-password");
      await page.reload();
      await page.getByRole("heading", { name: "Sign in" }).waitFor();
      await signIn(page, USERS.ada, { keyboard: true });
      assert((await page.getByTestId("user-name").textContent()) === USERS.ada.name, "the top bar does not name the user");
      await page.getByText("No workflows yet").waitFor();
      const token = await page.evaluate(() => JSON.parse(sessionStorage.getItem("agentic-ide.session")).token);
      assert(token && !page.url().includes(token), "the token must stay out of the URL");
      await checkpoint(page, "workflows-empty");
    });

    await step("create a workflow from the multi-agent template", async () => {
      wfId = await createWorkflow(page, "Market Briefings", "Weekly competitor briefings for the sales team");
      await page.getByRole("heading", { name: /Market Briefings/ }).waitFor();
      const files = await page.getByTestId("file-tree").locator("a").allTextContents();
      assert(files.length === 7 && files.includes("definition.json"), `file tree: ${files}`);
      await page.locator(".markdown h1", { hasText: "Plan" }).waitFor(); // Markdown rendered
      await checkpoint(page, "draft-markdown");
      await page.getByTestId("file-tree").getByRole("link", { name: "definition.json" }).click();
      const json = await page.getByTestId("file-view").textContent();
      assert(json.includes('"graph": {') && json.includes('  "name": "BriefingWorkflow"'), "definition.json is not pretty-printed");
      await checkpoint(page, "draft-json");
    });

    await step("edit a file; a save over someone else's newer save is explained (409)", async () => {
      ada = await svc.login(USERS.ada);
      await page.getByTestId("file-tree").getByRole("link", { name: "requirements.md" }).click();
      await page.getByRole("button", { name: "Edit" }).click();
      await page.getByLabel("Contents of /THE_SPEC/requirements.md").fill("# Requirements\n\nMine.\n");
      const draft = await svc.api(ada, "GET", `/workflows/${wfId}/draft`);
      await svc.api(ada, "PUT", `/workflows/${wfId}/draft/files`, {
        base_revision: draft.revision,
        files: { "/THE_SPEC/requirements.md": { content: ["# Requirements", "", "Theirs."] } },
      });
      await page.getByRole("button", { name: "Save" }).click();
      const banner = page.getByTestId("draft-conflict");
      await banner.waitFor();
      assert(/revision 1.*revision 2/s.test(await banner.textContent()), "the conflict does not name the revisions");
      await checkpoint(page, "draft-edit-conflict");
      await page.getByRole("button", { name: "Discard mine, load theirs" }).click();
      await page.getByTestId("file-view").filter({ hasText: "Theirs." }).waitFor();
      await page.getByTestId("draft-revision").filter({ hasText: "revision 2" }).waitFor();
    });

    await step("refine: streamed text and a tool call appear before the end, through the real proxy (paced model)", async () => {
      const sockets = recordSockets(page);
      await page.getByTestId("file-tree").getByRole("link", { name: "plan.md" }).click();
      await page.getByRole("heading", { name: "/THE_SPEC/plan.md" }).waitFor();
      await watchStream(page);
      await refine(page, "Write the briefing plan down in more detail.");
      await page.getByTestId("stream-text").first().waitFor();
      await checkpoint(page, "refine-live", { axe: false });
      await page.getByTestId("stream-status").filter({ hasText: "Finished" }).waitFor({ timeout: 60000 });
      const t = await page.evaluate(() => window.__streamTimes);
      assert(t.text > 0 && t.tool > 0 && t.end > 0, `stream timings ${JSON.stringify(t)}`);
      assert(t.text < t.end && t.tool < t.end, `text and a tool call must appear before the end: ${JSON.stringify(t)}`);
      const streams = sockets.filter((u) => /\/api\/ws\/refinements\//.test(u));
      assert(streams.length === 1 && !/token|after_seq/.test(streams[0]), `stream connections: ${streams.join(" , ")}`);
      const tools = await page.getByTestId("stream-tool").count();
      assert(tools === PACED.turns, `${tools} tool calls shown, the paced model makes ${PACED.turns}`);
      await page.getByTestId("stream-tool").filter({ hasText: "/THE_SPEC/paced-1.md" }).first().waitFor();
      const first = await page.getByTestId("stream-text").first().locator(".entry-body").textContent();
      assert(first.split(/\s+/).filter(Boolean).length >= PACED.chunks, `first text block: ${first}`);
      await checkpoint(page, "refine-finished", { show: page.getByTestId("stream") });
    });

    await step("see the change summary and the diff (side by side wide, unified narrow)", async () => {
      await waitStatus(page, "Ready for review");
      const diff = page.getByTestId("diff");
      await diff.waitFor();
      assert((await diff.getAttribute("data-format")) === "side-by-side", "the wide diff is not side by side");
      assert((await diff.textContent()).includes("Paced turn 1"), "the diff does not show the new file's text");
      const summary = await page.getByTestId("change-summary").textContent();
      assert(summary.includes("/THE_SPEC/paced-1.md") && summary.includes("added"), `summary: ${summary}`);
      await checkpoint(page, "proposal-diff");
      await page.setViewportSize(PHONE);
      await page.locator('[data-testid="diff"][data-format="line-by-line"]').waitFor();
      await page.setViewportSize(DESKTOP);
    });

    await step("approve, and see the draft updated", async () => {
      await page.getByRole("button", { name: "Approve and apply" }).click();
      await page.getByText(/Applied to the draft: it is now at revision \d+/).waitFor();
      await waitStatus(page, "Approved");
      await checkpoint(page, "proposal-approved");
      await page.getByRole("link", { name: "Open the draft" }).click();
      await page.getByTestId("file-tree").getByRole("link", { name: "paced-1.md" }).click();
      await page.locator(".markdown h1", { hasText: "Paced turn 1" }).waitFor();
      await page.getByTestId("draft-revision").filter({ hasText: "revision 3" }).waitFor();
      await checkpoint(page, "draft-updated");
    });

    await step("publish the draft as a version, deploy it, and view it", async () => {
      await page.getByRole("link", { name: "Versions", exact: true }).click();
      await page.getByText("Nothing published yet").waitFor();
      await page.getByRole("button", { name: /Publish the draft as version 1/ }).click();
      await page.getByText("Published version 1.").waitFor();
      await page.getByTestId("version-list").getByText("v1").waitFor();
      await page.getByRole("button", { name: "Deploy version 1" }).click();
      const dep = page.getByTestId("deployment");
      await dep.waitFor();
      assert(/Version 1 deployed/.test(await dep.textContent()), await dep.textContent());
      assert(/with \d+ agents/.test(await dep.textContent()), `deployment: ${await dep.textContent()}`);
      await checkpoint(page, "versions-deployed");
      await page.getByRole("link", { name: "View version 1" }).click();
      await page.getByTestId("version-view").getByRole("link", { name: "paced-1.md" }).click();
      await page.locator(".markdown h1", { hasText: "Paced turn 1" }).waitFor();
      await checkpoint(page, "version-view");
    });

    await step("run the draft with a message and see its output", async () => {
      await page.getByRole("link", { name: "Runs", exact: true }).click();
      const form = page.getByTestId("start-run");
      await form.waitFor();
      await checkpoint(page, "runs-empty");
      const sockets = recordSockets(page);
      await form.getByLabel("What runs").selectOption("draft");
      await form.getByLabel("Message").fill("Prepare this week's briefing on our three main competitors.");
      await watchStream(page);
      await form.getByRole("button", { name: "Start the run" }).click();
      await page.getByTestId("stream-text").first().waitFor();
      await checkpoint(page, "run-live", { axe: false });
      const output = page.getByTestId("run-output");
      await output.waitFor({ timeout: 60000 });
      await page.getByTestId("run-status").filter({ hasText: "Completed" }).waitFor();
      assert(/Done/.test(await output.textContent()), `run output: ${await output.textContent()}`);
      await output.getByRole("link", { name: "paced-1.md" }).waitFor();
      const t = await page.evaluate(() => window.__streamTimes);
      assert(t.text > 0 && t.tool > 0 && t.text < t.end && t.tool < t.end, `run stream timings ${JSON.stringify(t)}`);
      assert(sockets.some((u) => /\/api\/ws\/runs\//.test(u) && !/token/.test(u)), `run stream: ${sockets.join(" , ")}`);
      await checkpoint(page, "run-output", { show: output });
      await page.getByRole("link", { name: "All runs" }).click();
      await page.getByTestId("run-list").getByText("Completed").waitFor();
      await checkpoint(page, "runs-list");
    });

    await step("engine down: 'the refinement engine is unavailable; retry in N s', then a successful retry", async () => {
      await createWorkflow(page, "Release Notes", "Summarise each release for customers");
      await page.getByTestId("refine-panel").waitFor();
      await svc.stopEngine();
      await refine(page, "Add a fact-checking specialist.");
      const notice = page.getByTestId("engine-unavailable");
      await notice.waitFor({ timeout: 30000 });
      const text = await notice.textContent();
      assert(/The refinement engine is unavailable; retry in \d+ s/.test(text), `notice: ${text}`);
      await checkpoint(page, "engine-unavailable", { show: notice });
      // It comes back on the scripted model, whose script the next steps check in detail.
      await svc.startEngine("scripted");
      // The countdown retries by itself once the breaker lets calls through again.
      await page.getByTestId("stream").waitFor({ timeout: 90000 });
      await waitStatus(page, "Ready for review", 60000);
      await checkpoint(page, "engine-retry-succeeded");
    });

    await step("refine on a file and a selection: todos, the working sub-agent, each tool call (scripted model)", async () => {
      await page.getByRole("link", { name: "Draft", exact: true }).click();
      await page.getByTestId("file-tree").getByRole("link", { name: "plan.md" }).click();
      await page.getByRole("heading", { name: "/THE_SPEC/plan.md" }).waitFor();
      await page.locator(".markdown h1", { hasText: "Plan" }).waitFor();
      // Select the first paragraph of the rendered plan, as a user would with the mouse.
      await page.evaluate(() => {
        const el = document.querySelector('[data-testid="file-view"] ol li, [data-testid="file-view"] p');
        const r = document.createRange();
        r.selectNodeContents(el);
        getSelection().removeAllRanges();
        getSelection().addRange(r);
        el.dispatchEvent(new MouseEvent("mouseup", { bubbles: true }));
      });
      await page.getByTestId("refine-selection").waitFor();
      await watchStream(page);
      await refine(page, "Add a fact-checking specialist: before the Writer drafts the report, a FactChecker verifies each finding.");
      await page.getByTestId("stream-status").filter({ hasText: "Finished" }).waitFor({ timeout: 60000 });
      const tools = await page.getByTestId("stream-tool").count();
      const texts = await page.getByTestId("stream-text").count();
      assert(tools === SCRIPT_TOOL_CALLS, `${tools} tool calls shown, the script makes ${SCRIPT_TOOL_CALLS}`);
      assert(texts === SCRIPT_TEXT_TURNS, `${texts} text blocks shown, the script has ${SCRIPT_TEXT_TURNS}`);
      const first = await page.getByTestId("stream-text").first().locator(".entry-body").textContent();
      assert(first === script.turns[0].content, `first text block: ${first}`);
      const todos = await page.getByTestId("todos").locator("li").count();
      assert(todos === 4, `todo checklist has ${todos} items`);
      const t = await page.evaluate(() => window.__streamTimes);
      assert(/reviewer.*sub-agent of orchestrator/.test(t.subagent), `the working sub-agent was never named: ${JSON.stringify(t)}`);
      await page.getByTestId("stream-tool").filter({ hasText: "/THE_CAST/FactChecker.md" }).first().waitFor();
      await page.getByTestId("stream-text").filter({ hasText: "reviewer" }).first().waitFor();
      await page.getByText("Focused on /THE_SPEC/plan.md (a selection in it)").waitFor();
      await waitStatus(page, "Ready for review");
      await checkpoint(page, "refine-scripted", { show: page.getByTestId("stream") });
    });

    await step("proposals list", async () => {
      await page.getByRole("link", { name: "Proposals", exact: true }).click();
      const list = page.getByTestId("proposal-list");
      await list.waitFor();
      assert((await list.locator("li").count()) >= 3, "the proposals list misses entries");
      await list.getByText("Failed").first().waitFor(); // the attempt while the engine was down
      await checkpoint(page, "proposals");
    });

    await step("the live stream reconnects after a drop with after_seq and shows no duplicates", async () => {
      secondWf = await createWorkflow(page, "Support Triage", "Sort incoming tickets");
      const urls = await routeStreamDrop(page, 40);
      await page.reload(); // WebSocket routes apply to documents loaded after they are set
      await page.getByTestId("refine-panel").waitFor();
      await refine(page, "Add a fact-checking specialist.");
      await page.getByTestId("stream-status").filter({ hasText: "Finished" }).waitFor({ timeout: 60000 });
      await page.unrouteAll({ behavior: "ignoreErrors" });
      assert(urls.length >= 2, `expected a reconnect, saw ${urls.length} connection(s)`);
      assert(!/after_seq/.test(urls[0]) && /after_seq=40$/.test(urls[1]), `connections: ${urls.join(" , ")}`);
      assert(urls.every((u) => !/token/.test(u)), "the WebSocket URL must not carry the token");
      const tools = await page.getByTestId("stream-tool").count();
      const texts = await page.getByTestId("stream-text").count();
      assert(tools === SCRIPT_TOOL_CALLS && texts === SCRIPT_TEXT_TURNS, `after the reconnect: ${tools} tools, ${texts} texts`);
      const first = await page.getByTestId("stream-text").first().locator(".entry-body").textContent();
      assert(first === script.turns[0].content, `first text block after the reconnect: ${first}`);
      await waitStatus(page, "Ready for review");
      await checkpoint(page, "stream-reconnected", { show: page.getByTestId("stream") });
    });

    await step("a conflicting approve (409) names the files; refine again on the current draft", async () => {
      const draft = await svc.api(ada, "GET", `/workflows/${secondWf}/draft`);
      await svc.api(ada, "PUT", `/workflows/${secondWf}/draft/files`, {
        base_revision: draft.revision,
        files: { "/THE_SPEC/plan.md": { content: ["# Plan", "", "Changed by a colleague meanwhile."] } },
      });
      const before = page.url();
      await page.getByRole("button", { name: "Approve and apply" }).click();
      const banner = page.getByTestId("approve-conflict");
      await banner.waitFor();
      assert((await banner.textContent()).includes("/THE_SPEC/plan.md"), `conflict banner: ${await banner.textContent()}`);
      await checkpoint(page, "approve-conflict", { show: banner });
      await page.getByRole("button", { name: "Refine again on the current draft" }).click();
      await page.waitForURL((u) => u.href !== before && /live=1/.test(u.href));
      await waitStatus(page, "Ready for review", 60000);
      // Based on the current draft, this one applies cleanly and keeps the colleague's edit.
      await page.getByRole("button", { name: "Approve and apply" }).click();
      await waitStatus(page, "Approved");
      const after = await svc.api(ada, "GET", `/workflows/${secondWf}/draft`);
      assert(after.files["/THE_SPEC/plan.md"].content.includes("Changed by a colleague meanwhile."), "the colleague's edit was lost");
      assert(after.files["/THE_CAST/FactChecker.md"], "the refined-again proposal was not applied");
      // POST /retry rejected the conflicting proposal as superseded.
      const old = await svc.api(ada, "GET", `/proposals/${before.match(/proposals\/([0-9a-f-]{36})/)[1]}`);
      assert(old.status === "rejected", `the superseded proposal is ${old.status}`);
    });

    await step("your proposals across workflows", async () => {
      await page.getByRole("link", { name: "Your proposals" }).click();
      await page.getByRole("heading", { name: "Your proposals" }).waitFor();
      const list = page.getByTestId("my-proposal-list");
      await list.waitFor();
      for (const name of ["Market Briefings", "Release Notes", "Support Triage"]) await list.getByText(name).first().waitFor();
      await checkpoint(page, "your-proposals");
    });

    await step("a start whose answer was lost, sent again, is replayed by its Idempotency-Key: one refinement", async () => {
      const wf = await createWorkflow(page, "Idempotent Starts", "One refinement per request, however often it is sent");
      await page.getByTestId("refine-panel").waitFor();
      const keys = [];
      const start = /\/api\/workflows\/[0-9a-f-]{36}\/refinements$/;
      await page.route(start, async (route) => {
        keys.push(route.request().headers()["idempotency-key"]);
        if (keys.length > 1) return route.continue();
        await route.fetch(); // the orchestrator starts the refinement ...
        await route.abort("connectionreset"); // ... and its answer never reaches the browser
      });
      await refine(page, "Add a glossary of release terms.");
      await page.getByRole("alert").filter({ hasText: "could not start" }).waitFor();
      await page.getByRole("button", { name: "Refine", exact: true }).click(); // the user tries again
      await page.getByTestId("stream").waitFor({ timeout: 30000 });
      await page.unroute(start);
      assert(keys.length === 2 && /^[0-9a-f]{32}$/.test(keys[0]) && keys[0] === keys[1],
        `the two sends must carry one Idempotency-Key: ${keys.join(", ")}`);
      const proposals = await svc.api(ada, "GET", `/workflows/${wf}/proposals`);
      assert(proposals.items.length === 1, `proposals after the resend: ${proposals.items.length}`);
    });

    await step("an expired or revoked session goes back to sign-in with a message", async () => {
      await page.getByRole("link", { name: "Agentic IDE" }).click();
      await page.getByTestId("workflow-list").waitFor();
      await page.evaluate(() => {
        const s = JSON.parse(sessionStorage.getItem("agentic-ide.session"));
        s.token = `${s.token.slice(0, -6)}AAAAAA`;
        sessionStorage.setItem("agentic-ide.session", JSON.stringify(s));
      });
      await page.reload(); // the tab's next start reads the revoked token
      await page.getByRole("heading", { name: "Sign in" }).waitFor();
      await page.getByText(/session has expired/).waitFor();
      await checkpoint(page, "session-expired");
      // Signing in again returns to the page the session ended on.
      await signIn(page, USERS.ada, { landing: page.getByTestId("workflow-list") });
      await page.getByTestId("workflow-list").getByText("Market Briefings").waitFor();
      await checkpoint(page, "workflows");
    });

    let grace;
    await step("a second user sees none of the first user's workflows", async () => {
      grace = await openBrowser("grace");
      browsers.push(grace);
      const g = grace;
      await g.page.goto(`${svc.url}/`);
      await signIn(g.page, USERS.grace);
      await g.page.getByText("No workflows yet").waitFor();
      assert(!(await g.page.getByText("Market Briefings").count()), "Grace sees Ada's workflow");
      await checkpoint(g.page, "second-user-workflows");
      await g.page.goto(`${svc.url}/#/w/${wfId}/draft`);
      await g.page.getByText("This workflow could not be opened").waitFor();
      await checkpoint(g.page, "second-user-no-access");
      const token = await svc.login(USERS.grace);
      const list = await svc.api(token, "GET", "/workflows");
      assert(list.items.length === 0, "the API lists Ada's workflows to Grace");
    });

    await step("settings: rename, share with a viewer (read-only in the console), remove, delete", async () => {
      await page.goto(`${svc.url}/#/w/${secondWf}/settings`);
      const rename = page.getByTestId("rename-workflow");
      await rename.waitFor();
      await rename.getByLabel("Name").fill("Support Triage (EU)");
      await rename.getByRole("button", { name: "Save" }).click();
      await page.getByRole("heading", { name: /Support Triage \(EU\)/ }).waitFor();
      const add = page.getByTestId("add-member");
      await add.getByLabel("Their e-mail").fill(USERS.grace.email);
      await add.getByLabel("Role").selectOption("viewer");
      await add.getByRole("button", { name: "Add member" }).click();
      await page.getByText(`${USERS.grace.name} (${USERS.grace.email}) is now a viewer.`).waitFor();
      await page.getByTestId("member-list").getByText(USERS.grace.email).waitFor();
      await checkpoint(page, "settings-members");

      // Grace, a viewer: she sees it, reads it, and cannot change it.
      const g = grace.page;
      await g.goto(`${svc.url}/#/`);
      await g.reload();
      await g.getByTestId("workflow-list").getByText("Support Triage (EU)").click();
      await g.getByTestId("file-tree").waitFor();
      await g.getByText("You can view this workflow; only its owner and editors can change or refine it.").waitFor();
      assert(!(await g.getByRole("button", { name: "Edit" }).count()), "a viewer is offered Edit");
      assert(!(await g.getByLabel("What should change?").count()), "a viewer is offered Refine");
      await checkpoint(g, "viewer-draft");
      await g.getByRole("link", { name: "Settings", exact: true }).click();
      await g.getByTestId("member-list").waitFor();
      assert(!(await g.getByTestId("add-member").count()), "a viewer is offered sharing");
      assert(!(await g.getByRole("button", { name: /Delete workflow/ }).count()), "a viewer is offered delete");

      // Ada removes her again, then deletes the workflow.
      await page.getByRole("button", { name: `Remove ${USERS.grace.name}` }).click();
      await page.getByTestId("member-list").getByText(USERS.grace.email).waitFor({ state: "detached" });
      await page.getByRole("button", { name: "Delete workflow…" }).click();
      await checkpoint(page, "settings-delete-confirm");
      await page.getByRole("button", { name: "Yes, delete it" }).click();
      await page.getByRole("heading", { name: "Workflows", exact: true }).waitFor();
      await page.getByTestId("workflow-list").getByText("Market Briefings").waitFor();
      assert(!(await page.getByText("Support Triage (EU)").count()), "the deleted workflow is still listed");
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.getByText("You signed out.").waitFor();
    });

    await step("no Content-Security-Policy violation and no page error in the whole session", async () => {
      const all = browsers.flatMap((b) => b.problems);
      assert(all.length === 0, all.join("\n"));
    });
  } catch (e) {
    console.log(svc.logs().replace(/^/gm, "# "));
    throw e;
  } finally {
    for (const b of browsers) {
      await b.context.close().catch(() => {});
      fs.rmSync(b.dir, { recursive: true, force: true });
    }
    await svc.stop();
    if (svc.work && !results.failed) fs.rmSync(svc.work, { recursive: true, force: true });
    else if (svc.work) console.log(`# service logs kept in ${svc.work}`);
  }
}

// Interrupted (Ctrl-C, ctest timeout): never leave the services running.
const stopOnSignal = (sig) =>
  process.on(sig, () => {
    for (const p of children) p.kill("SIGKILL");
    process.exit(130);
  });
stopOnSignal("SIGINT");
stopOnSignal("SIGTERM");
main()
  .then(() => {
    console.log(`${results.passed} passed, ${results.failed} failed`);
  })
  .catch(() => {
    console.log(`${results.passed} passed, ${results.failed || 1} failed`);
    process.exitCode = 1;
  });
