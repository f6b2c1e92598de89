// Turns the engine's refinement events into what the live view shows: the assistant's text
// per agent as it arrives, each tool call with its target and outcome, the todo checklist,
// and which agent (or sub-agent) is working. Pure functions; the view re-renders the result.

import type { StreamEvent } from "../api/types";

export interface TextEntry {
  kind: "text";
  key: string;
  node: string;
  text: string;
}

export interface ToolEntry {
  kind: "tool";
  key: string;
  node: string;
  tool: string;
  /** What the call is about: a path, a pattern, a sub-agent. */
  target: string;
  status: "running" | "ok" | "error";
  /** First line of the tool's answer (errors in full, up to 300 characters). */
  outcome?: string;
}

export interface ErrorEntry {
  kind: "error";
  key: string;
  message: string;
}

export type Entry = TextEntry | ToolEntry | ErrorEntry;

export interface Todo {
  content: string;
  status: "pending" | "in_progress" | "completed" | string;
}

export interface StreamView {
  entries: Entry[];
  todos: Todo[];
  /** The agent that produced the latest event, and its parent when it is a sub-agent. */
  agent?: { node: string; parent?: string };
  step?: number;
  model?: string;
  /** Set by the `end` event. */
  ended?: string;
  events: number;
  /** Sub-agent -> the agent that delegated to it (from `task` calls and state updates). */
  parents: Record<string, string>;
}

export const emptyView: StreamView = { entries: [], todos: [], events: 0, parents: {} };

function str(v: unknown): string {
  return typeof v === "string" ? v : v === undefined || v === null ? "" : JSON.stringify(v);
}

function parseInput(v: unknown): Record<string, unknown> {
  if (v && typeof v === "object") return v as Record<string, unknown>;
  if (typeof v === "string") {
    try {
      const o = JSON.parse(v);
      return o && typeof o === "object" ? o : {};
    } catch {
      return {};
    }
  }
  return {};
}

/** What a tool call is about, in a few words. */
export function toolTarget(tool: string, input: Record<string, unknown>): string {
  if (tool === "task") {
    const who = str(input.subagent_type) || "sub-agent";
    return `→ ${who}: ${str(input.description).slice(0, 120)}`;
  }
  if (tool === "write_todos") {
    const n = Array.isArray(input.todos) ? input.todos.length : 0;
    return `${n} todo${n === 1 ? "" : "s"}`;
  }
  const path = str(input.file_path) || str(input.path);
  const pattern = str(input.pattern);
  if (pattern && path) return `${pattern} in ${path}`;
  return path || pattern;
}

function firstLine(s: string, max: number): string {
  const line = s.split("\n").find((l) => l.trim()) ?? "";
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

function isErrorOutput(out: string): boolean {
  return /^\s*error\b/i.test(out);
}

/** The view after `ev`. Never mutates `v`. */
export function reduce(v: StreamView, ev: StreamEvent): StreamView {
  const d = ev.data ?? {};
  const node = str(d.node);
  const next: StreamView = { ...v, events: v.events + 1 };
  const parent = str(d.parent);
  if (node && parent && v.parents[node] !== parent) next.parents = { ...v.parents, [node]: parent };
  if (node) next.agent = { node, parent: parent || next.parents[node] };

  switch (ev.event_type) {
    case "on_llm_stream": {
      const delta = str(d.delta);
      if (!delta) return next;
      const last = v.entries[v.entries.length - 1];
      if (last && last.kind === "text" && last.node === node) {
        next.entries = [...v.entries.slice(0, -1), { ...last, text: last.text + delta }];
      } else {
        next.entries = [...v.entries, { kind: "text", key: `t${ev.seq ?? v.events}`, node, text: delta }];
      }
      return next;
    }
    case "on_tool_start": {
      const tool = str(d.tool);
      const input = parseInput(d.input);
      const entry: ToolEntry = {
        kind: "tool",
        key: str(d.tool_call_id) || `c${ev.seq ?? v.events}`,
        node,
        tool,
        target: toolTarget(tool, input),
        status: "running",
      };
      next.entries = [...v.entries, entry];
      if (tool === "write_todos" && Array.isArray(input.todos)) next.todos = input.todos as Todo[];
      if (tool === "task" && typeof input.subagent_type === "string" && node) {
        next.parents = { ...next.parents, [input.subagent_type]: node };
      }
      return next;
    }
    case "on_tool_end": {
      const id = str(d.tool_call_id);
      const out = str(d.output);
      const failed = isErrorOutput(out);
      let idx = -1;
      for (let i = v.entries.length - 1; i >= 0; i--) {
        const e = v.entries[i];
        if (e.kind === "tool" && e.status === "running" && (id ? e.key === id : e.tool === str(d.tool))) {
          idx = i;
          break;
        }
      }
      if (idx < 0) return next;
      const e = v.entries[idx] as ToolEntry;
      const entries = v.entries.slice();
      entries[idx] = { ...e, status: failed ? "error" : "ok", outcome: firstLine(out, failed ? 300 : 140) };
      next.entries = entries;
      return next;
    }
    case "on_state_update": {
      if (typeof d.step === "number") next.step = d.step;
      if (typeof d.model === "string") next.model = d.model;
      // The root agent's checklist (sub-agents keep their own, usually empty, lists).
      if (!d.parent && Array.isArray(d.todos)) next.todos = d.todos as Todo[];
      return next;
    }
    case "error": {
      const message = str(d.error) || str(d.message) || "The refinement failed.";
      next.entries = [...v.entries, { kind: "error", key: `e${ev.seq ?? v.events}`, message }];
      return next;
    }
    case "end":
      next.ended = str(d.status) || "completed";
      return next;
    default:
      return next;
  }
}
