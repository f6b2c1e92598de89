// "The refinement engine is unavailable; retry in N s": a countdown that retries by itself
// at zero, a button to retry at once, and one to give up.

import { useEffect, useState } from "preact/hooks";

export function RetryNotice({
  seconds,
  onRetry,
  onCancel,
  what = "The refinement engine is unavailable",
  note = "Your draft was not changed. The console retries by itself when the countdown ends.",
}: {
  /** Seconds from Retry-After. */
  seconds: number;
  onRetry: () => void;
  onCancel: () => void;
  what?: string;
  /** What the failure left unchanged, and what happens next. */
  note?: string;
}) {
  const [left, setLeft] = useState(seconds);
  useEffect(() => {
    setLeft(seconds);
    const started = Date.now();
    const t = setInterval(() => {
      const l = Math.max(0, seconds - Math.floor((Date.now() - started) / 1000));
      setLeft(l);
      if (l === 0) {
        clearInterval(t);
        onRetry();
      }
    }, 250);
    return () => clearInterval(t);
    // onRetry changes identity per render; the countdown restarts only with a new answer.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [seconds]);
  return (
    <div class="banner banner-warning" role="alert" data-testid="engine-unavailable">
      <p>
        <strong>
          {what}; retry in {left} s
        </strong>
      </p>
      <p class="small">{note}</p>
      <div class="banner-actions">
        <button type="button" class="btn btn-primary" onClick={onRetry}>
          Retry now
        </button>
        <button type="button" class="btn" onClick={onCancel}>
          Stop retrying
        </button>
      </div>
    </div>
  );
}
