// The draft's files as a folder tree. Each file is a link (keyboard: Tab/Enter), the open
// one marked aria-current.

import type { FileMap } from "../api/types";

interface Folder {
  name: string;
  folders: Map<string, Folder>;
  files: string[]; // full paths
}

function build(paths: string[]): Folder {
  const root: Folder = { name: "", folders: new Map(), files: [] };
  for (const p of [...paths].sort()) {
    const parts = p.split("/").filter(Boolean);
    let f = root;
    for (const dir of parts.slice(0, -1)) {
      if (!f.folders.has(dir)) f.folders.set(dir, { name: dir, folders: new Map(), files: [] });
      f = f.folders.get(dir)!;
    }
    f.files.push(p);
  }
  return root;
}

function FolderView({ folder, selected, hrefFor }: { folder: Folder; selected?: string; hrefFor: (p: string) => string }) {
  return (
    <ul class="tree-list">
      {[...folder.folders.values()].map((sub) => (
        <li key={sub.name} class="tree-folder">
          <span class="tree-folder-name">{sub.name}/</span>
          <FolderView folder={sub} selected={selected} hrefFor={hrefFor} />
        </li>
      ))}
      {folder.files.map((p) => (
        <li key={p}>
          <a class="tree-file" href={hrefFor(p)} aria-current={p === selected ? "true" : undefined}>
            {p.split("/").pop()}
          </a>
        </li>
      ))}
    </ul>
  );
}

export function FileTree({
  files,
  selected,
  hrefFor,
  label = "Files of the draft",
}: {
  files: FileMap;
  selected?: string;
  hrefFor: (p: string) => string;
  /** The navigation landmark's accessible name (unique per page). */
  label?: string;
}) {
  const root = build(Object.keys(files));
  return (
    <nav class="tree" aria-label={label} data-testid="file-tree">
      <FolderView folder={root} selected={selected} hrefFor={hrefFor} />
    </nav>
  );
}
