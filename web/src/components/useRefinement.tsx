// Starting a refinement, with the engine-unavailable case handled: the 503's Retry-After
// becomes a countdown that retries the same request (RetryNotice).

import { useCallback, useRef, useState } from "preact/hooks";
import { ApiError, api } from "../api/client";
import type { RefinementRequest, RefinementStarted } from "../api/types";
import { ErrorBanner } from "./ui";
import { RetryNotice } from "./RetryNotice";

export function useRefinementStarter(workflowId: string, onStarted: (r: RefinementStarted, req: RefinementRequest) => void) {
  const [pending, setPending] = useState(false);
  const [error, setError] = useState<unknown>();
  const [retry, setRetry] = useState<{ seconds: number; attempt: number } | null>(null);
  const last = useRef<RefinementRequest | null>(null);
  const attempts = useRef(0);

  const run = useCallback(
    async (req: RefinementRequest) => {
      last.current = req;
      setPending(true);
      setError(undefined);
      try {
        const started = await api.startRefinement(workflowId, req);
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
    [workflowId, onStarted],
  );

  const notice = retry ? (
    <RetryNotice
      key={retry.attempt}
      seconds={retry.seconds}
      onRetry={() => last.current && run(last.current)}
      onCancel={() => {
        setRetry(null);
        attempts.current = 0;
      }}
    />
  ) : error ? (
    <ErrorBanner error={error} title="The refinement could not start" />
  ) : null;

  return { start: run, pending, waiting: retry !== null, notice };
}
