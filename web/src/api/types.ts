// Shapes of the ide-orchestrator API (docs/openapi.json, components/schemas). Timestamps are
// RFC 3339 strings; ids are UUIDs. File contents travel as arrays of lines.

export interface User {
  id: string;
  email: string;
  name: string;
}

export interface LoginResponse {
  token: string;
  /** RFC 3339 instant after which the token is refused. */
  expires_at: string;
  user: User;
}

/** One file of a draft, version or proposal: its lines, without line terminators. */
export interface FileEntry {
  content: string[];
  created_at?: string;
  modified_at?: string;
}

/** Absolute path ("/THE_SPEC/plan.md") -> file. */
export type FileMap = Record<string, FileEntry>;

export type Role = "owner" | "editor" | "viewer";

export interface Draft {
  id: string;
  workflow_id: string;
  /** Incremented by every change; edits send it back as base_revision (optimistic locking). */
  revision: number;
  files: FileMap;
  created_at: string;
  updated_at: string;
}

export interface Workflow {
  id: string;
  name: string;
  description: string;
  owner_id: string;
  /** The caller's role on this workflow. */
  role: Role;
  created_at: string;
  updated_at: string;
  draft?: Draft;
}

export interface Template {
  name: string;
  /** Number of files the template seeds. */
  files: number;
}

export interface Version {
  id: string;
  workflow_id?: string;
  number: number;
  created_by: string;
  created_at: string;
  files?: FileMap;
  /** Publish only: false when the draft equalled the latest version, which came back instead. */
  created?: boolean;
}

export interface Deployment {
  workflow_id: string;
  version: Version;
  /** The version's /definition.json, checked to be runnable by the engine. */
  definition: { name?: string; version?: string; graph?: { nodes?: unknown[] } } & Record<string, unknown>;
  deployed_at: string;
  deployed_by: string;
  /** "deployed": runs without a version now execute this one. */
  status: string;
}

export type ProposalStatus = "processing" | "completed" | "failed" | "cancelled" | "approved" | "rejected";

export interface FileChange {
  path: string;
  change: "added" | "modified" | "deleted" | "unchanged";
  lines_added: number;
  lines_removed: number;
}

export interface Proposal {
  id: string;
  workflow_id: string;
  draft_id: string | null;
  thread_id: string;
  status: ProposalStatus;
  user_prompt: string;
  context_file_path: string | null;
  context_selection: string | null;
  generated_files?: FileMap | null;
  changes?: FileChange[];
  error: string | null;
  created_at: string;
  completed_at: string | null;
  resolved_at: string | null;
  created_by_user_id: string;
  resolved_by_user_id: string | null;
}

export interface RefinementRequest {
  user_prompt: string;
  context_file_path?: string;
  context_selection?: string;
}

export interface RefinementStarted {
  proposal_id: string;
  thread_id: string;
  status: ProposalStatus;
  websocket_url: string;
  created_at: string;
}

export interface Page<T> {
  items: T[];
  /** Opaque cursor of the next page; null on the last page. */
  next_cursor: string | null;
}

/** RFC 9457 problem details as the API sends them, with this API's extension members. */
export interface Problem {
  type?: string;
  title: string;
  status: number;
  detail?: string;
  /** 400: one entry per offending field. */
  errors?: { field: string; message: string }[];
  /** 409 on approve: the files changed both in the draft and in the proposal. */
  paths?: string[];
  /** 503 engine-unavailable: seconds until a retry may succeed (also in Retry-After). */
  retry_after_seconds?: number;
  /** 409 on retry: the proposal was already re-run as this one. */
  retry_proposal_id?: string;
  /** 409 on draft edits. */
  base_revision?: number;
  current_revision?: number;
}

/** One event of a refinement stream (the engine's event envelope, forwarded unchanged). */
export interface StreamEvent {
  event_type: "on_llm_stream" | "on_tool_start" | "on_tool_end" | "on_state_update" | "error" | "end" | string;
  /** Gapless, increasing per thread; resume with ?after_seq=<last seen>. */
  seq?: number;
  thread_id?: string;
  ts?: string;
  data: Record<string, unknown>;
}

/** The signed-in account (GET /api/me). */
export interface Profile extends User {
  created_at: string;
  /** External identities (OpenID Connect issuer and subject) linked to the account. */
  identities: { issuer: string; subject: string; email?: string; linked_at?: string }[];
}

/** A member of a workflow (GET /api/workflows/{id}/members). */
export interface Member {
  user_id: string;
  email: string;
  name: string;
  role: Role;
  added_at: string;
}

/** POST /api/proposals/{id}/retry: the new refinement, and the proposal that was re-run. */
export interface RetryStarted extends RefinementStarted {
  retry_of: Proposal;
}

export type RunStatus = "processing" | "completed" | "failed" | "cancelled";

/** One run of a workflow version (or of the draft) on the Spec Engine. */
export interface Run {
  id: string;
  workflow_id: string;
  /** The version number that ran; null for a run of the draft. */
  version: number | null;
  /** The draft revision a draft run executed. */
  draft_revision?: number | null;
  /** Engine thread; its live events are at /api/ws/runs/{thread_id}. */
  thread_id: string;
  status: RunStatus;
  /** The user's message to the entry agent. */
  input: string;
  /** The entry agent's final message (completed runs). */
  output: string | null;
  error: string | null;
  /** Why a failed run failed: engine_failed, engine_gone, engine_unreachable, engine_rejected, expired, invalid_result. */
  failure_kind: string | null;
  /** False once the engine thread is deleted (cancelled runs; finished runs after the retention): no activity to replay. */
  stream_available: boolean;
  created_by_user_id: string;
  created_at: string;
  completed_at: string | null;
  /** Detail form only: files the run added or changed; null until completed. */
  files?: FileMap | null;
}

/** POST /api/workflows/{id}/runs answers 202 with the run and where to follow it. */
export interface RunStarted extends Run {
  run_id: string;
  websocket_url: string;
}

/** Which version a run executes: a number, the current draft, or (omitted) the deployed one. */
export type RunTarget = number | "draft";
