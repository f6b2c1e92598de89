// The live view of a refinement: which agent is working, the todo checklist, and the
// timeline of the assistant's text and tool calls as they arrive.

import { useEffect, useRef } from "preact/hooks";
import type { StreamState } from "../api/stream";
import type { Entry, StreamView as View, Todo } from "../stream/model";

function connectionWords(s: StreamState | undefined): string {
  if (!s) return "";
  switch (s.kind) {
    case "connecting":
      return s.attempt ? "Reconnecting to the live stream…" : "Connecting to the live stream…";
    case "open":
      return "Live";
    case "reconnecting":
      return `Connection lost; reconnecting in ${Math.ceil(s.inMs / 1000)} s (attempt ${s.attempt})…`;
    case "ended":
      return s.status === "completed" ? "Finished" : `Ended: ${s.status}`;
    case "lost":
      return s.reason;
  }
}

function TodoList({ todos }: { todos: Todo[] }) {
  if (!todos.length) return null;
  const done = todos.filter((t) => t.status === "completed").length;
  return (
    <section class="todos" aria-label="Plan">
      <h3 class="panel-title">
        Plan <span class="muted">({done} of {todos.length} done)</span>
      </h3>
      <ul class="todo-list" data-testid="todos">
        {todos.map((t, i) => (
          <li key={i} class={`todo todo-${t.status}`}>
            <span class="todo-mark" aria-hidden="true">
              {t.status === "completed" ? "✓" : t.status === "in_progress" ? "▸" : "○"}
            </span>
            <span>
              {t.content}
              <span class="sr-only">
                {" "}
                ({t.status === "completed" ? "done" : t.status === "in_progress" ? "in progress" : "pending"})
              </span>
            </span>
          </li>
        ))}
      </ul>
    </section>
  );
}

function EntryView({ e }: { e: Entry }) {
  if (e.kind === "text") {
    return (
      <li class="entry entry-text" data-testid="stream-text">
        <span class="entry-agent">{e.node}</span>
        <p class="entry-body">{e.text}</p>
      </li>
    );
  }
  if (e.kind === "tool") {
    return (
      <li class={`entry entry-tool tool-${e.status}`} data-testid="stream-tool">
        <span class="entry-agent">{e.node}</span>
        <div class="entry-body">
          <span class="tool-name">{e.tool}</span> <span class="tool-target">{e.target}</span>
          <span class={`tool-status`}>
            {e.status === "running" ? "running…" : e.status === "ok" ? "✓ done" : "✗ failed"}
          </span>
          {e.outcome && e.status === "error" && <p class="tool-outcome">{e.outcome}</p>}
        </div>
      </li>
    );
  }
  return (
    <li class="entry entry-error" role="alert">
      {e.message}
    </li>
  );
}

export function StreamView({
  view,
  state,
  label = "Refinement activity",
}: {
  view: View;
  state?: StreamState;
  /** Accessible name of the activity timeline. */
  label?: string;
}) {
  const listRef = useRef<HTMLOListElement>(null);
  const stick = useRef(true);
  useEffect(() => {
    const el = listRef.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [view.events]);
  const agent = view.agent;
  const working = !view.ended && agent;
  return (
    <div class="stream" data-testid="stream">
      <div class="stream-head">
        <p class="stream-status" role="status" aria-live="polite" data-testid="stream-status">
          <span class={`dot dot-${state?.kind ?? "idle"}`} aria-hidden="true" />
          {connectionWords(state)}
        </p>
        {working && (
          <p class="stream-agent" data-testid="stream-agent">
            Working: <strong>{agent.node}</strong>
            {agent.parent && <span class="muted"> (sub-agent of {agent.parent})</span>}
            {view.step !== undefined && <span class="muted"> · step {view.step}</span>}
          </p>
        )}
        {view.model === "scripted" && (
          <p class="muted small">Offline scripted model: the engine replays a script instead of calling an LLM.</p>
        )}
      </div>
      <TodoList todos={view.todos} />
      <h3 class="panel-title">Activity</h3>
      {view.entries.length === 0 ? (
        <p class="muted">Waiting for the first event…</p>
      ) : (
        <ol
          class="timeline"
          ref={listRef}
          tabIndex={0}
          aria-label={label}
          onScroll={(ev) => {
            const el = ev.currentTarget;
            stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
          }}
        >
          {view.entries.map((e) => (
            <EntryView key={e.key} e={e} />
          ))}
        </ol>
      )}
    </div>
  );
}
