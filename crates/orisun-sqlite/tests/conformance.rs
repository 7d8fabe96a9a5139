//! The shared conformance suite (`orisun_store::conformance`), run on `SqliteStore` with
//! durable commits, exactly as a server would run it.

use orisun_sqlite::{SqliteConfig, SqliteStore};
use orisun_store::testsuite::Owned;
use orisun_store::EventStore;
use std::sync::Arc;
use tempfile::TempDir;

/// A store that owns its temporary data directory, so each test gets a fresh store whose files
/// are removed when the test drops it.
fn open(config: impl FnOnce(&TempDir) -> SqliteConfig) -> Owned<SqliteStore, TempDir> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(config(&dir)).expect("open store");
    Owned::new(store, dir)
}

async fn fresh() -> Arc<dyn EventStore> {
    Arc::new(open(|dir| SqliteConfig::new(dir.path())))
}

orisun_store::conformance_suite!(fresh);

#[tokio::test]
async fn watch_head_wakes_on_append() {
    let store = open(|dir| SqliteConfig::new(dir.path()));
    orisun_store::conformance::watch_head_wakes_on_append(&store).await;
}

/// The same suite on a store whose tag log holds three rows and whose middle level moves a
/// slice into the oldest for every row or two it gains, so that its writer moves rows after
/// nearly every group and lookups constantly span all three tables of the tag index.
mod tiny_tag_log {
    use super::*;

    async fn fresh() -> Arc<dyn EventStore> {
        Arc::new(open(|dir| SqliteConfig {
            tag_log_rows: 3,
            tags_recent_rows: 300,
            ..SqliteConfig::new(dir.path())
        }))
    }

    orisun_store::conformance_suite!(fresh);
}
