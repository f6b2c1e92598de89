// Small shared pieces: loading, error, empty states, status badges, times, and a data hook.

import type { ComponentChildren } from "preact";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { describeError } from "../api/client";

export function Loading({ label = "Loading…" }: { label?: string }) {
  return (
    <div class="loading" role="status" aria-live="polite">
      <span class="spinner" aria-hidden="true" />
      {label}
    </div>
  );
}

/** An error in words, with an optional way forward. role=alert so screen readers announce it. */
export function ErrorBanner({ error, children, title }: { error: unknown; title?: string; children?: ComponentChildren }) {
  if (!error) return null;
  return (
    <div class="banner banner-error" role="alert">
      {title && <strong class="banner-title">{title}</strong>}
      <p>{describeError(error)}</p>
      {children && <div class="banner-actions">{children}</div>}
    </div>
  );
}

export function Notice({ kind = "info", children }: { kind?: "info" | "success" | "warning"; children: ComponentChildren }) {
  return (
    <div class={`banner banner-${kind}`} role="status">
      {children}
    </div>
  );
}

export function Empty({ title, children }: { title: string; children?: ComponentChildren }) {
  return (
    <div class="empty">
      <p class="empty-title">{title}</p>
      {children && <div class="empty-body">{children}</div>}
    </div>
  );
}

const statusWords: Record<string, string> = {
  processing: "Running",
  completed: "Ready for review",
  failed: "Failed",
  cancelled: "Cancelled",
  approved: "Approved",
  rejected: "Rejected",
};

/** A run's statuses in words (a completed run has nothing to review, unlike a proposal). */
export const runStatusWords: Record<string, string> = {
  processing: "Running",
  completed: "Completed",
  failed: "Failed",
  cancelled: "Cancelled",
};

export function StatusBadge({ status, words = statusWords }: { status: string; words?: Record<string, string> }) {
  return <span class={`badge badge-${status}`}>{words[status] ?? status}</span>;
}

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

/** "3 minutes ago", with the exact instant in the title and datetime attribute. */
export function Time({ at }: { at?: string | null }) {
  if (!at) return <span>—</span>;
  const t = Date.parse(at);
  if (!Number.isFinite(t)) return <span>{at}</span>;
  const s = Math.round((t - Date.now()) / 1000);
  const abs = Math.abs(s);
  const text =
    abs < 45
      ? "just now"
      : abs < 3600
        ? rtf.format(Math.round(s / 60), "minute")
        : abs < 86400
          ? rtf.format(Math.round(s / 3600), "hour")
          : new Date(t).toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
  return (
    <time dateTime={at} title={new Date(t).toLocaleString()}>
      {text}
    </time>
  );
}

export interface Async<T> {
  data?: T;
  error?: unknown;
  loading: boolean;
  reload: () => void;
  set: (data: T) => void;
}

/** Loads `fn()` when `deps` change; keeps the last data while reloading. */
export function useAsync<T>(fn: () => Promise<T>, deps: unknown[]): Async<T> {
  const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({ loading: true });
  const [tick, setTick] = useState(0);
  const fnRef = useRef(fn);
  fnRef.current = fn;
  useEffect(() => {
    let live = true;
    setState((s) => ({ data: s.data, loading: true }));
    fnRef.current().then(
      (data) => live && setState({ data, loading: false }),
      (error) => live && setState((s) => ({ data: s.data, error, loading: false })),
    );
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  const set = useCallback((data: T) => setState({ data, loading: false }), []);
  return { ...state, reload, set };
}

/** A user action with its busy and error state: `run(...)` clears the error, sets busy, awaits
 *  `fn`, and keeps the thrown error for an ErrorBanner. Resolves to fn's result, or undefined. */
export function useAction<A extends unknown[], T>(fn: (...args: A) => Promise<T>) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const fnRef = useRef(fn);
  fnRef.current = fn;
  const run = useCallback(async (...args: A): Promise<T | undefined> => {
    setBusy(true);
    setError(undefined);
    try {
      return await fnRef.current(...args);
    } catch (e) {
      setError(e);
      return undefined;
    } finally {
      setBusy(false);
    }
  }, []);
  return { run, busy, error, setError };
}

/** Sets document.title to "<title> · Agentic IDE". */
export function useTitle(title: string) {
  useEffect(() => {
    document.title = title ? `${title} · Agentic IDE` : "Agentic IDE";
  }, [title]);
}
