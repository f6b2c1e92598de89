// Starting work on the engine (a refinement, a retry, a run), with the engine-unavailable case
// handled: the 503's Retry-After becomes a countdown that retries the same request (RetryNotice).

import { useCallback, useRef, useState } from "preact/hooks";
import { ApiError, api } from "../api/client";
import type { RefinementRequest, RefinementStarted } from "../api/types";
import { ErrorBanner } from "./ui";
import { RetryNotice } from "./RetryNotice";

/**
 * `start(req)` calls `call(req)`; on success `onStarted(result, req)`. A 503 engine-unavailable
 * shows "<what>; retry in N s" and retries the same request at zero; any other error shows as
 * an ErrorBanner titled `failTitle`. Returns the state and the notice to render.
 */
export function useEngineStarter<Req, Res>(
  call: (req: Req) => Promise<Res>,
  onStarted: (r: Res, req: Req) => void,
  { what, note, failTitle }: { what?: string; note?: string; failTitle: string },
) {
  const [pending, setPending] = useState(false);
  const [error, setError] = useState<unknown>();
  const [retry, setRetry] = useState<{ seconds: number; attempt: number } | null>(null);
  const last = useRef<Req | null>(null);
  const attempts = useRef(0);
  const callRef = useRef(call);
  callRef.current = call;

  const run = useCallback(
    async (req: Req) => {
      last.current = req;
      setPending(true);
      setError(undefined);
      try {
        const started = await callRef.current(req);
        setRetry(null);
        attempts.current = 0;
        onStarted(started, req);
      } catch (e) {
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
  const call = useCallback((req: RefinementRequest) => api.startRefinement(workflowId, req), [workflowId]);
  return useEngineStarter(call, onStarted, { failTitle: "The refinement could not start" });
}
