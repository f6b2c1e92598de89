// A unified diff (as GET /api/proposals/{id}/diff returns it) rendered by diff2html: one
// block per file, side by side on wide screens and line by line on narrow ones.

import "diff2html/bundles/css/diff2html.min.css";
import DOMPurify from "dompurify";
import { html, parse } from "diff2html";
import { useEffect, useMemo, useState } from "preact/hooks";

const WIDE = "(min-width: 1000px)";

/** True while the viewport matches `query`. */
export function useMedia(query: string): boolean {
  const [match, setMatch] = useState(() => window.matchMedia(query).matches);
  useEffect(() => {
    const m = window.matchMedia(query);
    const on = () => setMatch(m.matches);
    m.addEventListener("change", on);
    return () => m.removeEventListener("change", on);
  }, [query]);
  return match;
}

export function DiffView({ diff }: { diff: string }) {
  const wide = useMedia(WIDE);
  const rendered = useMemo(() => {
    // The API's diff names a created or deleted file /dev/null on one side (no git "new file"
    // headers); mark those files as added / deleted so they are not shown as renames.
    const files = parse(diff).map((f) => {
      if (f.oldName === "/dev/null" || f.oldName === "dev/null") return { ...f, isNew: true, oldName: f.newName };
      if (f.newName === "/dev/null" || f.newName === "dev/null") return { ...f, isDeleted: true, newName: f.oldName };
      return f;
    });
    const out = html(files, {
      outputFormat: wide ? "side-by-side" : "line-by-line",
      drawFileList: false,
      matching: "lines",
      colorScheme: "light" as never,
    });
    // diff2html escapes file contents; sanitising again costs little and keeps the rule simple:
    // nothing reaches innerHTML unsanitised.
    return DOMPurify.sanitize(out, { FORBID_ATTR: ["style"] });
  }, [diff, wide]);
  return (
    <div
      class={`diff ${wide ? "diff-wide" : "diff-narrow"}`}
      data-testid="diff"
      data-format={wide ? "side-by-side" : "line-by-line"}
      dangerouslySetInnerHTML={{ __html: rendered }}
    />
  );
}
