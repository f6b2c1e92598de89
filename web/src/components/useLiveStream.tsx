// Follows a thread's live events (a refinement's or a run's) while `active`, reduced to what the
// activity view shows. One mechanism for both: ThreadStream (api/stream.ts) and stream/model.ts.

import { useEffect, useState } from "preact/hooks";
import { ThreadStream, type StreamKind, type StreamState } from "../api/stream";
import { emptyView, reduce, type StreamView } from "../stream/model";

/** The reduced view and the connection state of `threadId`'s stream; restarts when either changes. */
export function useLiveStream(threadId: string, active: boolean, kind: StreamKind = "refinements") {
  const [view, setView] = useState<StreamView>(emptyView);
  const [state, setState] = useState<StreamState>();
  useEffect(() => {
    if (!active || !threadId) return;
    setView(emptyView);
    const s = new ThreadStream(threadId, { onEvent: (ev) => setView((v) => reduce(v, ev)), onState: setState }, { kind });
    return () => s.close();
  }, [threadId, active, kind]);
  return { view, state };
}
