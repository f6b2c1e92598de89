// Follows the live event stream of a refinement or a run through the orchestrator's WebSocket
// proxy (GET /api/ws/refinements/{thread_id}, GET /api/ws/runs/{thread_id}). Authenticates with the sub-protocol pair
// "bearer, <token>" (the server echoes "bearer"), never with the URL. Every event carries a
// gapless `seq`; after a drop the stream reconnects with ?after_seq=<last seen> and drops
// anything it has already delivered, so the caller sees each event exactly once, in order.

import { getSession } from "../session";
import type { StreamEvent } from "./types";

export type StreamState =
  | { kind: "connecting"; attempt: number }
  | { kind: "open" }
  | { kind: "reconnecting"; attempt: number; inMs: number }
  | { kind: "ended"; status: string }
  /** The server closed without `end` and reconnecting did not help: ask the API instead. */
  | { kind: "lost"; reason: string };

export interface StreamHandlers {
  onEvent(ev: StreamEvent): void;
  onState(s: StreamState): void;
}

/** Which proxy route a thread streams on. */
export type StreamKind = "refinements" | "runs";

export interface StreamOptions {
  /** "refinements" (default) or "runs". */
  kind?: StreamKind;
  /** Reconnect attempts in a row without a new event before giving up. */
  maxAttempts?: number;
  /** First backoff delay; doubles per attempt up to maxDelayMs. */
  baseDelayMs?: number;
  maxDelayMs?: number;
}

/** URL of a thread's stream on this origin, resuming after `afterSeq` when > 0. */
export function streamUrl(threadId: string, afterSeq: number, kind: StreamKind = "refinements"): string {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const q = afterSeq > 0 ? `?after_seq=${afterSeq}` : "";
  return `${scheme}//${location.host}/api/ws/${kind}/${encodeURIComponent(threadId)}${q}`;
}

/** One followed stream (a refinement's, or a run's with `kind: "runs"`). Call close() when the
 *  page no longer needs it. */
export class ThreadStream {
  private ws: WebSocket | null = null;
  private lastSeq = 0;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  private ended = false;
  private readonly opts: Required<StreamOptions>;

  constructor(
    private readonly threadId: string,
    private readonly handlers: StreamHandlers,
    opts: StreamOptions = {},
  ) {
    this.opts = { kind: "refinements", maxAttempts: 8, baseDelayMs: 500, maxDelayMs: 5000, ...opts };
    this.connect();
  }

  /** The last `seq` delivered (0 before the first event). */
  get seq(): number {
    return this.lastSeq;
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    this.ws?.close(1000, "page closed");
    this.ws = null;
  }

  private connect() {
    const token = getSession()?.token;
    if (!token) {
      this.handlers.onState({ kind: "lost", reason: "You are signed out." });
      return;
    }
    this.handlers.onState({ kind: "connecting", attempt: this.attempt });
    let gotEvent = false;
    const ws = new WebSocket(streamUrl(this.threadId, this.lastSeq, this.opts.kind), ["bearer", token]);
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws === ws) this.handlers.onState({ kind: "open" });
    };
    ws.onmessage = (msg) => {
      if (this.ws !== ws) return;
      let ev: StreamEvent;
      try {
        ev = JSON.parse(String(msg.data)) as StreamEvent;
      } catch {
        return; // not an event; the proxy only forwards JSON objects
      }
      if (typeof ev.seq === "number") {
        if (ev.seq <= this.lastSeq) return; // already delivered before the reconnect
        this.lastSeq = ev.seq;
      }
      gotEvent = true;
      this.attempt = 0;
      this.handlers.onEvent(ev);
      if (ev.event_type === "end") {
        this.ended = true;
        this.handlers.onState({ kind: "ended", status: String(ev.data?.status ?? "completed") });
      }
    };
    ws.onclose = (e) => {
      if (this.ws !== ws || this.closed || this.ended) return;
      this.ws = null;
      // A normal close with nothing new means the stream is over (e.g. it ended before we
      // resumed past its end); the caller reads the outcome from the API.
      if (e.code === 1000 && !gotEvent && this.lastSeq > 0) {
        this.handlers.onState({ kind: "lost", reason: "The stream closed." });
        return;
      }
      // 1008: the server re-checked access and the user may no longer watch this thread
      // (removed from the workflow, account disabled); reconnecting cannot help.
      if (e.code === 1008) {
        this.handlers.onState({ kind: "lost", reason: "You may no longer watch this stream: your access was removed." });
        return;
      }
      if (this.attempt >= this.opts.maxAttempts) {
        this.handlers.onState({ kind: "lost", reason: "The live stream could not be reconnected." });
        return;
      }
      const inMs = Math.min(this.opts.baseDelayMs * 2 ** this.attempt, this.opts.maxDelayMs);
      this.attempt += 1;
      this.handlers.onState({ kind: "reconnecting", attempt: this.attempt, inMs });
      this.timer = setTimeout(() => this.connect(), inMs);
    };
  }
}
