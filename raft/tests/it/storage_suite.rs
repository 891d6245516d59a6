//! openraft's own storage conformance suite against our log store and state machine.

use openraft::testing::{StoreBuilder, Suite};
use sessionraft_raft::types::StorageError;
use sessionraft_raft::{LogStore, StateMachineStore, StorageOptions, TypeConfig};
use tempfile::TempDir;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = TempDir::new().expect("temp dir");
        let (log, sm) =
            sessionraft_raft::open(dir.path(), &StorageOptions::default()).expect("open store");
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    if let Err(e) = Suite::test_all(Builder) {
        panic!("openraft storage suite failed: {e}");
    }
}
