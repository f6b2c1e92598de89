#!/usr/bin/python3
"""Prints one ide-orchestrator API answer (JSON on stdin) for people; used by scripts/walkthrough.sh.

Usage: ... | scripts/show.py draft|proposal|version|deployment|run
"""
import json
import sys


def lines(f):
    """Lines of a file in the API's line model (a final "" only marks the trailing newline)."""
    c = f.get("content", [])
    return len(c) - (len(c) > 1 and c[-1] == "")


def files_table(files, indent="      "):
    for path, f in sorted((files or {}).items()):
        print(f"{indent}{path:<36} {lines(f):>4} lines")


def main():
    kind = sys.argv[1] if len(sys.argv) > 1 else ""
    d = json.load(sys.stdin)
    if kind == "draft":
        print(f"    draft revision {d['revision']}, {len(d['files'])} files:")
        files_table(d["files"])
    elif kind == "proposal":
        print(f"    proposal {d['id']}: {d['status']}" + (f" ({d['error']})" if d.get("error") else ""))
        for c in d.get("changes", []):
            if c.get("change") != "unchanged":
                print(f"      {c['change']:<9} {c['path']:<36} +{c.get('lines_added', 0)} -{c.get('lines_removed', 0)}")
    elif kind == "version":
        print(f"    version {d['number']} published ({len(d.get('files', {}))} files)")
    elif kind == "deployment":
        nodes = [n["id"] for n in d["definition"]["graph"]["nodes"]]
        print(f"    version {d['version']['number']} {d['status']}: agents {', '.join(nodes)}")
    elif kind == "run":
        print(f"    run {d['id']} of version {d['version'] if d['version'] is not None else 'draft'}: {d['status']}")
        if d.get("error"):
            print(f"    error: {d['error']}")
        if d.get("output"):
            print("    output:")
            for line in d["output"].splitlines() or [""]:
                print(f"      {line}")
        if d.get("files"):
            print("    files produced:")
            files_table(d["files"])
    else:
        sys.exit(__doc__.strip().splitlines()[2])


if __name__ == "__main__":
    main()
