"""crate_map.py: ARCHITECTURE.md's crate maps against a source tree."""

import tempfile
import unittest
from pathlib import Path

import crate_map

DOC = """# arch
### `kit/` (kit)
`src/lib.rs` — the map. `src/store/` — storage. `mod.rs` is everywhere.
- `db.rs` — the database. `store/codec.rs` — the codec.
- `net.rs` — the network; `other.rs` (the other crate's).
### `other/` (other)
- `other.rs` — the other one.

## Extra (`kit/src/extra/`)
- `one.rs` — one.

## Elsewhere
See `kit/src/net.rs` and `tests/it.rs`.
"""


def tree(root: Path, files: list[str]) -> None:
    for f in files:
        p = root / f
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("")


KIT = ["kit/src/lib.rs", "kit/src/store/mod.rs", "kit/src/store/db.rs", "kit/src/store/codec.rs",
       "kit/src/net.rs", "kit/src/extra/mod.rs", "kit/src/extra/one.rs", "other/src/lib.rs",
       "other/src/other.rs", "tests/it.rs"]


class CrateMapTest(unittest.TestCase):
    def problems(self, files, doc=DOC):
        with tempfile.TemporaryDirectory() as t:
            root = Path(t)
            tree(root, files)
            dirs = [root / "kit", root / "other"]
            out = []
            for d in dirs:
                out += crate_map.check(doc, d, tuple(o for o in dirs if o != d))
            return out + crate_map.repo_paths(doc, root)

    def test_agreeing_maps(self):
        self.assertEqual(self.problems(KIT), [])

    def test_a_module_missing_from_the_map(self):
        out = self.problems(KIT + ["kit/src/store/new.rs"])
        self.assertEqual(len(out), 1)
        self.assertIn("src/store/new.rs is not named", out[0])

    def test_a_named_module_that_does_not_exist(self):
        out = self.problems([f for f in KIT if not f.endswith("net.rs")])
        self.assertTrue(any("names `net.rs`, which is not a file of kit/src" in p for p in out), out)
        self.assertTrue(any("`kit/src/net.rs`, which does not exist" in p for p in out), out)

    def test_a_repo_path_that_does_not_exist(self):
        out = self.problems([f for f in KIT if f != "tests/it.rs"] + ["tests/other.rs"])
        self.assertEqual(out, ["ARCHITECTURE.md names `tests/it.rs`, which does not exist"])

    def test_a_crate_without_a_map(self):
        out = self.problems(KIT, DOC.replace("### `other/` (other)", "### other"))
        self.assertIn("ARCHITECTURE.md has no section for `other/`", out)

    def test_the_repository_agrees(self):
        root = Path(__file__).resolve().parents[3]
        self.assertEqual(crate_map.main([str(root / "ARCHITECTURE.md")]), 0)


if __name__ == "__main__":
    unittest.main()
