//! Runs the conformance suite against the in-memory model itself.

use orisun_store::{EventStore, MemoryStore};
use std::sync::Arc;

async fn memory() -> Arc<dyn EventStore> {
    Arc::new(MemoryStore::new())
}

orisun_store::conformance_suite!(memory);

#[tokio::test]
async fn watch_head_wakes_on_append() {
    orisun_store::conformance::watch_head_wakes_on_append(&MemoryStore::new()).await;
}
