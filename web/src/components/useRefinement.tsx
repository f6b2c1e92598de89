// Starting work on the engine (a refinement, a retry, a run), with the engine-unavailable case
// handled: the 503's Retry-After becomes a countdown that retries the same request (RetryNotice).

import { useCallback, useRef, useState } from "preact/hooks";
import { ApiError, api } from "../api/client";
import type { RefinementRequest, RefinementStarted } from "../api/types";
import { ErrorBanner } from "./ui";
import { RetryNotice } from "./RetryNotice";

/** A new Idempotency-Key: 128 random bits as hex (crypto.getRandomValues also works where
 *  crypto.randomUUID does not: pages served over plain http from another host). */
function newIdempotencyKey(): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * `start(req)` calls `call(req, key)`; on success `onStarted(result, req)`. A 503 engine-unavailable
 * shows "<what>; retry in N s" and retries the same request at zero; any other error shows as
 * an ErrorBanner titled `failTitle`. Returns the state and the notice to render.
 *
 * `key` is the request's Idempotency-Key (docs/orchestrator-api.md "Idempotency-Key"): sending
 * the same request again after an answer that never arrived (a network error) or a server error
 * keeps the key, so the server replays what the first attempt started instead of starting it
 * twice. After a success, a refusal (4xx) or engine-unavailable (the attempt is recorded as
 * failed, so a resend must be a new attempt) the next start gets a new key.
 */
export function useEngineStarter<Req, Res>(
  call: (req: Req, idempotencyKey: string) => Promise<Res>,
  onStarted: (r: Res, req: Req) => void,
  { what, note, failTitle }: { what?: string; note?: string; failTitle: string },
) {
  const [pending, setPending] = useState(false);
  const [error, setError] = useState<unknown>();
  const [retry, setRetry] = useState<{ seconds: number; attempt: number } | null>(null);
  const last = useRef<Req | null>(null);
  const keyed = useRef<{ request: string; key: string } | null>(null);
  const attempts = useRef(0);
  const callRef = useRef(call);
  callRef.current = call;

  const run = useCallback(
    async (req: Req) => {
      last.current = req;
      setPending(true);
      setError(undefined);
      const request = JSON.stringify(req);
      if (keyed.current?.request !== request) keyed.current = { request, key: newIdempotencyKey() };
      try {
        const started = await callRef.current(req, keyed.current.key);
        keyed.current = null;
        setRetry(null);
        attempts.current = 0;
        onStarted(started, req);
      } catch (e) {
        // Settled attempts (refused, or recorded as failed) free their key; an unknown outcome keeps it.
        if (e instanceof ApiError && (e.engineUnavailable || (e.status >= 400 && e.status < 500))) keyed.current = null;
        if (e instanceof ApiError && e.engineUnavailable) {
          attempts.current += 1;
          setRetry({ seconds: e.retryAfter ?? e.problem.retry_after_seconds ?? 5, attempt: attempts.current });
        } else {
          setRetry(null);
          setError(e);
        }
      } finally {
        setPending(false);
      }
    },
    [onStarted],
  );

  const notice = retry ? (
    <RetryNotice
      key={retry.attempt}
      seconds={retry.seconds}
      what={what}
      note={note}
      onRetry={() => last.current !== null && run(last.current)}
      onCancel={() => {
        setRetry(null);
        attempts.current = 0;
      }}
    />
  ) : error ? (
    <ErrorBanner error={error} title={failTitle} />
  ) : null;

  return { start: run, pending, waiting: retry !== null, notice, error };
}

/** Starts a refinement of `workflowId`'s draft. */
export function useRefinementStarter(workflowId: string, onStarted: (r: RefinementStarted, req: RefinementRequest) => void) {
  const call = useCallback(
    (req: RefinementRequest, key: string) => api.startRefinement(workflowId, req, key),
    [workflowId],
  );
  return useEngineStarter(call, onStarted, { failTitle: "The refinement could not start" });
}
