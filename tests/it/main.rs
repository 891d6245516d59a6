//! Every integration test of sessionraft, in one test binary (`cargo test --release --test it`).
//!
//! One binary links RocksDB once, where one binary per file linked it 25 times (each ~10 MB and
//! a few seconds of linking). Each module is what was a file of its own; the module docs say what
//! it proves. The tests run on parallel threads in one process: they take free ports
//! ([`common::free_port`]), temporary data dirs and loopback addresses of their own, and stop by
//! pid what they started. The tests that change what the whole machine shares (namespaces,
//! iptables, mounts) or bound a failover window are under [`solo`]: they take turns, and
//! `scripts/test.sh` runs them after the rest on one thread.
//!
//! Run one module: `cargo test --release --test it cluster::`; one test: its full path.

mod common;
mod solo;

mod actors;
mod backup_kv;
mod bench;
mod bench_compare;
mod browser;
mod chaos_checker;
mod cluster;
mod deploy;
mod embedded;
mod operations;
mod overload;
mod redis_app;
mod resp_clients;
mod resp_door;
mod resp_tls;
mod rpc_security;
mod security;
mod session_reads;
mod tls;
mod tls_cluster_sh;
mod tls_tools;
