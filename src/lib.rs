//! sessionraft: the workspace root package (holds the top-level tests/ and examples/).
