// The one API client of the console: typed calls for every ide-orchestrator endpoint the
// console uses (docs/openapi.json). Same origin as the page, so no CORS; the bearer token
// goes in the Authorization header. A 401 ends the session (back to sign-in with a message);
// every other failure becomes an ApiError carrying the RFC 9457 problem details.

import { expire, getSession } from "../session";
import type {
  Deployment,
  Draft,
  FileMap,
  LoginResponse,
  Member,
  Page,
  Problem,
  Profile,
  Proposal,
  RefinementRequest,
  RefinementStarted,
  RetryStarted,
  Role,
  Run,
  RunStarted,
  RunTarget,
  Template,
  Version,
  Workflow,
} from "./types";

/** A failed API call: `status` 0 means the server could not be reached. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Problem,
    /** Seconds from Retry-After (429/503), if the server sent it. */
    readonly retryAfter?: number,
  ) {
    super(problem.detail || problem.title);
    this.name = "ApiError";
  }

  /** True for 503 problem type engine-unavailable: the Spec Engine is down or its breaker is open. */
  get engineUnavailable(): boolean {
    return this.status === 503 && (this.problem.type ?? "").endsWith("/engine-unavailable");
  }
  get conflict(): boolean {
    return this.status === 409;
  }
}

/** Words a person can act on, for statuses whose problem details say nothing better. */
function fallbackDetail(status: number): string {
  switch (status) {
    case 0:
      return "The server cannot be reached. Check your network connection and try again.";
    case 403:
      return "You do not have permission to do this on this workflow.";
    case 404:
      return "This item no longer exists, or it is not shared with you.";
    case 413:
      return "That is too large for the server to accept.";
    case 429:
      return "Too many requests; wait a moment and try again.";
    default:
      return status >= 500
        ? `The server had a problem (HTTP ${status}). Try again; if it keeps happening, tell your operator.`
        : `The request was refused (HTTP ${status}).`;
  }
}

interface CallOptions {
  body?: unknown;
  accept?: string;
  /** No token (sign-in). */
  anonymous?: boolean;
  signal?: AbortSignal;
  /** Sent as Idempotency-Key (refinement and run starts). */
  idempotencyKey?: string;
}

async function call(method: string, path: string, opts: CallOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { Accept: opts.accept ?? "application/json" };
  const session = getSession();
  if (!opts.anonymous) {
    if (!session) {
      throw new ApiError(401, { title: "Unauthorized", status: 401, detail: "Sign in first." });
    }
    headers.Authorization = `Bearer ${session.token}`;
  }
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  if (opts.idempotencyKey) headers["Idempotency-Key"] = opts.idempotencyKey;
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: opts.signal,
      credentials: "omit",
      cache: "no-store",
    });
  } catch (e) {
    if ((e as Error).name === "AbortError") throw e;
    throw new ApiError(0, { title: "Network error", status: 0, detail: fallbackDetail(0) });
  }
  if (res.ok) return res;

  let problem: Problem;
  try {
    problem = (await res.json()) as Problem;
    if (typeof problem !== "object" || problem === null) throw new Error("not an object");
  } catch {
    problem = { title: res.statusText || "Error", status: res.status };
  }
  problem.status = res.status;
  if (!problem.detail) problem.detail = fallbackDetail(res.status);
  const retry = Number(res.headers.get("Retry-After") ?? problem.retry_after_seconds);
  if (res.status === 401 && !opts.anonymous) {
    expire("Your session has expired or was signed out elsewhere. Sign in again to continue.");
  }
  throw new ApiError(res.status, problem, Number.isFinite(retry) && retry > 0 ? retry : undefined);
}

async function json<T>(method: string, path: string, opts?: CallOptions): Promise<T> {
  const res = await call(method, path, opts);
  return (await res.json()) as T;
}

function pageQuery(cursor?: string | null, limit = 50): string {
  const q = new URLSearchParams({ limit: String(limit) });
  if (cursor) q.set("cursor", cursor);
  return `?${q}`;
}

const enc = encodeURIComponent;

/** Typed calls, one per endpoint. */
export const api = {
  // ------------------------------------------------------------------ auth
  login: (email: string, password: string) =>
    json<LoginResponse>("POST", "/api/auth/login", { body: { email, password }, anonymous: true }),

  // ------------------------------------------------------------------ workflows
  templates: () => json<{ items: Template[] }>("GET", "/api/templates").then((r) => r.items),
  listWorkflows: (cursor?: string | null) => json<Page<Workflow>>("GET", `/api/workflows${pageQuery(cursor)}`),
  createWorkflow: (body: { name: string; description?: string; template?: string; files?: FileMap }) =>
    json<Workflow>("POST", "/api/workflows", { body }),
  getWorkflow: (id: string) => json<Workflow>("GET", `/api/workflows/${enc(id)}`),
  /** Renames a workflow or changes its description (owner, editor). */
  updateWorkflow: (id: string, body: { name?: string; description?: string }) =>
    json<Workflow>("PATCH", `/api/workflows/${enc(id)}`, { body }),
  /** Deletes a workflow (owner only; 204). */
  deleteWorkflow: (id: string) => call("DELETE", `/api/workflows/${enc(id)}`).then(() => undefined),

  // ------------------------------------------------------------------ the caller and members
  me: () => json<Profile>("GET", "/api/me"),
  listMembers: (workflowId: string, cursor?: string | null) =>
    json<Page<Member>>("GET", `/api/workflows/${enc(workflowId)}/members${pageQuery(cursor, 100)}`),
  /** Adds a member (201) or changes their role (200); `user` is a user id or an e-mail (owner only). */
  putMember: (workflowId: string, user: string, role: Exclude<Role, "owner">) =>
    json<Member>("PUT", `/api/workflows/${enc(workflowId)}/members/${enc(user)}`, { body: { role } }),
  /** Removes a member (owner), or the caller leaves (any member). */
  removeMember: (workflowId: string, user: string) =>
    call("DELETE", `/api/workflows/${enc(workflowId)}/members/${enc(user)}`).then(() => undefined),

  // ------------------------------------------------------------------ drafts
  getDraft: (workflowId: string) => json<Draft>("GET", `/api/workflows/${enc(workflowId)}/draft`),
  /** Writes files (null deletes one); 409 with current_revision when base_revision is stale. */
  putDraftFiles: (workflowId: string, baseRevision: number, files: Record<string, FileMap[string] | null>) =>
    json<Draft>("PUT", `/api/workflows/${enc(workflowId)}/draft/files`, { body: { base_revision: baseRevision, files } }),

  // ------------------------------------------------------------------ refinements and proposals
  /** Starts a refinement; 503 engine-unavailable (with Retry-After) when the engine is down. The
   *  same `idempotencyKey` with the same body replays the refinement it started (202 again). */
  startRefinement: (workflowId: string, body: RefinementRequest, idempotencyKey?: string) =>
    json<RefinementStarted>("POST", `/api/workflows/${enc(workflowId)}/refinements`, { body, idempotencyKey }),
  listProposals: (workflowId: string, cursor?: string | null) =>
    json<Page<Proposal>>("GET", `/api/workflows/${enc(workflowId)}/proposals${pageQuery(cursor)}`),
  /** The caller's proposals in every workflow they are a member of, newest first. */
  myProposals: (cursor?: string | null) => json<Page<Proposal>>("GET", `/api/proposals${pageQuery(cursor)}`),
  /** Re-runs a refinement with the same prompt on the current draft (failed, cancelled, rejected,
   *  or completed after a conflicting approve); 503 engine-unavailable like a new refinement. */
  retry: (id: string) => json<RetryStarted>("POST", `/api/proposals/${enc(id)}/retry`, { body: {} }),
  getProposal: (id: string) => json<Proposal>("GET", `/api/proposals/${enc(id)}`),
  /** Unified diff (text/x-diff) of the proposal against the current draft. */
  proposalDiff: (id: string) =>
    call("GET", `/api/proposals/${enc(id)}/diff`, { accept: "text/x-diff" }).then((r) => r.text()),
  /** Applies the proposal; 409 with `paths` when the draft changed the same files meanwhile. */
  approve: (id: string) => json<{ proposal: Proposal; draft: Draft }>("POST", `/api/proposals/${enc(id)}/approve`, { body: {} }),
  reject: (id: string) => json<{ proposal: Proposal }>("POST", `/api/proposals/${enc(id)}/reject`, { body: {} }),
  cancel: (id: string) => json<{ proposal: Proposal }>("POST", `/api/proposals/${enc(id)}/cancel`, { body: {} }),

  // ------------------------------------------------------------------ versions and deployment
  listVersions: (workflowId: string, cursor?: string | null) =>
    json<Page<Version>>("GET", `/api/workflows/${enc(workflowId)}/versions${pageQuery(cursor)}`),
  /** Publishes the draft as the next immutable version. */
  publish: (workflowId: string, baseRevision?: number) =>
    json<Version>("POST", `/api/workflows/${enc(workflowId)}/versions`, {
      body: baseRevision === undefined ? {} : { base_revision: baseRevision },
    }),
  /** One version with its files. */
  getVersion: (workflowId: string, number: number) =>
    json<Version>("GET", `/api/workflows/${enc(workflowId)}/versions/${number}`),
  /** Deploys version `number` (default: the latest; 409 when there is none). */
  deploy: (workflowId: string, number?: number) =>
    json<Deployment>("POST", `/api/workflows/${enc(workflowId)}/deploy`, { body: number ? { version: number } : {} }),

  // ------------------------------------------------------------------ runs
  /** Runs a version, the draft, or (no target) the deployed version with `input` as the user's
   *  message; 202 with the run and its thread. 409 when nothing is deployed; 503 engine down. */
  startRun: (workflowId: string, input: string, target?: RunTarget, idempotencyKey?: string) =>
    json<RunStarted>("POST", `/api/workflows/${enc(workflowId)}/runs`, {
      body: target === undefined ? { input } : { input, version: target },
      idempotencyKey,
    }),
  listRuns: (workflowId: string, cursor?: string | null) =>
    json<Page<Run>>("GET", `/api/workflows/${enc(workflowId)}/runs${pageQuery(cursor)}`),
  getRun: (workflowId: string, runId: string) => json<Run>("GET", `/api/workflows/${enc(workflowId)}/runs/${enc(runId)}`),
  cancelRun: (workflowId: string, runId: string) =>
    json<Run>("POST", `/api/workflows/${enc(workflowId)}/runs/${enc(runId)}/cancel`, { body: {} }),
};

/** The message to show for any error thrown by an api call: a sentence, field errors named. */
export function describeError(e: unknown): string {
  let msg: string;
  if (e instanceof ApiError) {
    const fields = e.problem.errors?.map((f) => `${f.field} ${f.message}`) ?? [];
    const missing = fields.filter((f) => !e.message.includes(f));
    msg = missing.length ? `${e.message} (${missing.join("; ")})` : e.message;
  } else {
    msg = e instanceof Error ? e.message : String(e);
  }
  msg = msg.charAt(0).toUpperCase() + msg.slice(1);
  return /[.!?)]$/.test(msg) ? msg : `${msg}.`;
}
