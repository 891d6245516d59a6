"""Circular imports between the files of a Rust crate: `python3 scripts/pylib/import_cycles.py
CRATE_DIR...` prints every cycle of file-level `crate::` / `super::` references and exits 1 when
there is one, 0 when there is none.

A file's module path comes from its place under `src/` (`src/a/b.rs` and `src/a/b/mod.rs` are
`a::b`). A reference `crate::a::b::c::X` (in a `use`, brace groups included, or in an
expression) points at the longest module path that is a file: `a::b::c` if that is a file, else
`a::b`. `lib.rs` and `mod.rs` files are maps and re-export hubs: references to or from them are
left out (otherwise every `crate::Command` through a root re-export would make a cycle with
`lib.rs`). A reference from a file to itself (its own inline modules, `super::*` in its tests)
is not an edge. Comments are ignored.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def module_path(src: Path, file: Path) -> tuple[str, ...]:
    rel = file.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def expand(tree: str) -> list[list[str]]:
    """`a::{b, c::{d, e}}` -> [[a, b], [a, c, d], [a, c, e]] (also a plain `a::b::C`)."""
    tree = tree.strip()
    if not tree:
        return []
    if tree.startswith("{"):
        inner = tree[1 : matching_brace(tree, 0)]
        out: list[list[str]] = []
        for part in split_top(inner):
            out.extend(expand(part))
        return out
    m = re.match(rf"({IDENT})\s*(::)?\s*", tree)
    if not m:
        return []
    head = m.group(1)
    if head in ("self",):
        return [[]]
    if not m.group(2):
        return [[head]]
    return [[head] + rest for rest in expand(tree[m.end() :])] or [[head]]


def matching_brace(text: str, start: int) -> int:
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    return len(text)


def split_top(text: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p for p in parts if p.strip()]


def references(text: str) -> list[tuple[str, list[str]]]:
    """Every (`crate` | `super`, path segments) referenced in `text`."""
    text = strip_comments(text)
    out = []
    for m in re.finditer(r"\b(crate|super)\s*::\s*", text):
        rest = text[m.end() :]
        if rest.startswith("{"):
            tree = rest[: matching_brace(rest, 0) + 1]
        else:
            tm = re.match(rf"{IDENT}(\s*::\s*({IDENT}|\{{))*", rest)
            if not tm:
                continue
            tree = tm.group(0)
            if tree.endswith("{"):
                tree = rest[: matching_brace(rest, len(tree) - 1) + 1]
        for path in expand(tree):
            out.append((m.group(1), path))
    return out


def graph(crate_dir: Path) -> dict[Path, set[Path]]:
    src = crate_dir / "src"
    files = {module_path(src, f): f for f in sorted(src.rglob("*.rs"))}
    hubs = {f for f in files.values() if f.name in ("lib.rs", "mod.rs", "main.rs")}
    edges: dict[Path, set[Path]] = {f: set() for f in files.values()}
    for mod, file in files.items():
        if file in hubs:
            continue
        for kind, path in references(file.read_text()):
            base = list(mod[:-1]) if kind == "super" else []
            full = base + path
            target = None
            for n in range(len(full), 0, -1):
                if tuple(full[:n]) in files:
                    target = files[tuple(full[:n])]
                    break
            if target is None or target == file or target in hubs:
                continue
            edges[file].add(target)
    return edges


def cycles(edges: dict[Path, set[Path]]) -> list[list[Path]]:
    """The strongly connected components with more than one file (Tarjan)."""
    index: dict[Path, int] = {}
    low: dict[Path, int] = {}
    stack: list[Path] = []
    on: set[Path] = set()
    out: list[list[Path]] = []
    counter = [0]

    def visit(v: Path) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: import_cycles.py CRATE_DIR...", file=sys.stderr)
        return 2
    found = 0
    for d in argv:
        edges = graph(Path(d))
        for comp in cycles(edges):
            found += 1
            names = [str(p) for p in comp]
            print(f"cycle in {d}: " + " <-> ".join(names))
        print(f"{d}: {len(edges)} files, {sum(len(e) for e in edges.values())} imports between files")
    if found:
        print(f"{found} import cycle(s)", file=sys.stderr)
        return 1
    print("no import cycles")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
