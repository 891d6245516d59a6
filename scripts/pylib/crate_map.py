"""Checks ARCHITECTURE.md's crate maps against the source tree: every module file a crate's
section names exists, and every module file of the crate is named there.

    python3 scripts/pylib/crate_map.py [ARCHITECTURE.md] [CRATE_DIR...]   (default raft web node)

A crate's map is the text from its heading (### `raft/` ...) to the next heading of its level
or above, and every section whose heading names a directory of it (## Chaos testing
(`node/src/chaos/`)). A file is named when its path under src/ appears in backquotes in full
(`storage/db.rs`) or by its file name alone (`db.rs`, when no other file of the crate has that
name); a `mod.rs` or `lib.rs` is named by its directory (`src/storage/`, `resp/`) or in full.
A name that is not a file of the crate but is one of another crate checked is a cross-reference
(web's map may say that raft's `membership.rs` runs membership changes).
Anywhere in the document, a path from the repository's root in backquotes (`node/src/tls.rs`,
`tests/it/chaos_checker.rs`, `scripts/cluster.sh`) must exist.
Exit 0 when the maps and the tree agree, 1 with a list of what disagrees.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

TOKEN = re.compile(r"`([A-Za-z0-9_./-]+)`")


def _until_next(text: str, m: re.Match) -> str:
    level = len(m.group(1))
    rest = text[m.end():]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.M)
    return rest[: end.start()] if end else rest


def section(text: str, crate: str) -> str | None:
    """The text of the crate's map (### `crate/` ...) and of every section whose heading names
    one of its directories (`crate/src/...`); None when it has no map."""
    m = re.search(rf"^(#+) `{re.escape(crate)}/`.*$", text, re.M)
    if m is None:
        return None
    out = _until_next(text, m)
    for h in re.finditer(rf"^(#+) .*`{re.escape(crate)}/src/([A-Za-z0-9_/]+/)`.*$", text, re.M):
        if h.start() != m.start():
            out += f"\n`{h.group(2)}`\n" + _until_next(text, h)
    return out


def modules(src: Path) -> list[str]:
    """The crate's module files, as paths under src/ (storage/db.rs)."""
    return sorted(p.relative_to(src).as_posix() for p in src.rglob("*.rs"))


def check(text: str, crate_dir: Path, others: tuple[Path, ...] = ()) -> list[str]:
    crate = crate_dir.name
    body = section(text, crate)
    if body is None:
        return [f"ARCHITECTURE.md has no section for `{crate}/`"]
    files = modules(crate_dir / "src")
    by_name: dict[str, list[str]] = {}
    for f in files:
        by_name.setdefault(f.rsplit("/", 1)[-1], []).append(f)
    dirs = {f.rsplit("/", 1)[0] + "/" for f in files if "/" in f}
    named: set[str] = set()
    problems = []
    for tok in TOKEN.findall(body):
        t = tok.removeprefix(f"{crate}/").removeprefix("src/")
        if t.endswith(".rs"):
            if t in files:
                named.add(t)
            elif "/" not in t and len(by_name.get(t, [])) == 1:
                named.add(by_name[t][0])
            elif "/" not in t and by_name.get(t):
                # a name shared by several files (mod.rs): named by a full path elsewhere
                continue
            elif "/" in t and any(f.endswith("/" + t) for f in files):
                named.update(f for f in files if f.endswith("/" + t))
            elif any(f == t or f.endswith("/" + t) for o in others for f in modules(o / "src")):
                continue  # another crate's file, named as a cross-reference
            elif t.split("/", 1)[0] in top_dirs(crate_dir.parent):
                continue  # a path from the repository's root: checked by repo_paths
            else:
                problems.append(f"{crate}: ARCHITECTURE.md names `{tok}`, which is not a file of "
                                f"{crate}/src")
        elif t.endswith("/") and t != "":
            d = t
            match = [x for x in dirs if x == d or x.endswith("/" + d)]
            if match:
                for x in match:
                    for stem in ("mod.rs",):
                        if x + stem in files:
                            named.add(x + stem)
            elif not (crate_dir / t).exists() and t.count("/") == 1 and "." not in t:
                problems.append(f"{crate}: ARCHITECTURE.md names the directory `{tok}`, which "
                                f"{crate}/src does not have")
    named.add("lib.rs")  # the crate root: its section's heading
    if "main.rs" in files and "main.rs" not in named:
        problems.append(f"{crate}: main.rs is not named in ARCHITECTURE.md's map of `{crate}/`")
    for f in files:
        if f not in named and f != "main.rs":
            problems.append(f"{crate}: src/{f} is not named in ARCHITECTURE.md's map of "
                            f"`{crate}/` (name it, by path or file name, with what it holds)")
    return problems


def top_dirs(root: Path) -> set[str]:
    """The repository's top-level directories (a path starting with one is from the root)."""
    return {d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")} - {"src"}


def repo_paths(text: str, root: Path) -> list[str]:
    """Every backquoted path from the repository's root that does not exist."""
    problems = []
    tops = top_dirs(root)
    for tok in sorted(set(TOKEN.findall(text))):
        first = tok.split("/", 1)[0]
        if "/" in tok and first in tops and not (root / tok).exists():
            problems.append(f"ARCHITECTURE.md names `{tok}`, which does not exist")
    return problems


def main(argv: list[str]) -> int:
    root = Path(__file__).resolve().parents[2]
    doc = root / "ARCHITECTURE.md"
    args = list(argv)
    if args and args[0].endswith(".md"):
        doc = Path(args.pop(0))
    crates = args or ["raft", "web", "node"]
    text = doc.read_text()
    problems = []
    dirs = [root / c for c in crates]
    for d in dirs:
        problems += check(text, d, tuple(o for o in dirs if o != d))
    problems += repo_paths(text, root)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
