"""Tests of scripts/pylib/import_cycles.py on small crates written to a temp dir."""

import tempfile
import unittest
from pathlib import Path

import import_cycles


def crate(files: dict[str, str]) -> Path:
    root = Path(tempfile.mkdtemp())
    for name, text in files.items():
        p = root / "src" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


class ImportCycles(unittest.TestCase):
    def test_a_two_file_cycle_is_found(self):
        root = crate(
            {
                "lib.rs": "pub mod a; pub mod b;",
                "a.rs": "use crate::b::B;\npub struct A;",
                "b.rs": "fn f() -> crate::a::A { todo!() }\npub struct B;",
            }
        )
        found = import_cycles.cycles(import_cycles.graph(root))
        self.assertEqual([[p.name for p in c] for c in found], [["a.rs", "b.rs"]])

    def test_brace_groups_nested_paths_and_super_are_followed(self):
        root = crate(
            {
                "lib.rs": "pub mod n;",
                "n/mod.rs": "pub mod x; pub mod y; pub mod z;",
                "n/x.rs": "use crate::{n::{y::Y, z}, Thing};",
                "n/y.rs": "pub struct Y;",
                "n/z.rs": "use super::x;",
            }
        )
        edges = import_cycles.graph(root)
        names = {k.name: sorted(v.name for v in vs) for k, vs in edges.items()}
        self.assertEqual(names["x.rs"], ["y.rs", "z.rs"])
        self.assertEqual(names["z.rs"], ["x.rs"])
        self.assertEqual(len(import_cycles.cycles(edges)), 1)

    def test_hubs_comments_and_self_references_make_no_edges(self):
        root = crate(
            {
                "lib.rs": "pub mod a; pub mod b; pub use a::A;",
                "a.rs": "// use crate::b::B;\n/* crate::b */ pub struct A;\nmod t { use super::*; }",
                "b.rs": "use crate::A; use crate::a::A as AA;",
            }
        )
        edges = import_cycles.graph(root)
        names = {k.name: sorted(v.name for v in vs) for k, vs in edges.items()}
        self.assertEqual(names["a.rs"], [])
        self.assertEqual(names["b.rs"], ["a.rs"])
        self.assertEqual(import_cycles.cycles(edges), [])

    def test_main_reports_and_exits_non_zero_on_a_cycle(self):
        root = crate({"lib.rs": "", "a.rs": "use crate::b;", "b.rs": "use crate::a;"})
        self.assertEqual(import_cycles.main([str(root)]), 1)
        clean = crate({"lib.rs": "", "a.rs": "use crate::b;", "b.rs": ""})
        self.assertEqual(import_cycles.main([str(clean)]), 0)


if __name__ == "__main__":
    unittest.main()
