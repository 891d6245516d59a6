//! The raft crate's integration tests, in one test binary (`cargo test --release -p
//! sessionraft-raft --test it`): the storage on real RocksDB directories. One binary links
//! RocksDB once, where one per file linked it eight times. Each module was a file of its own.

mod common;
mod strategies;

mod backup;
mod determinism_and_snapshots;
mod durability;
mod fuzz_decoders;
mod fuzz_rpc;
mod kv_state_machine;
mod state_machine;
mod storage_suite;
