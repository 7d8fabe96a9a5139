//! The shared conformance suite (`orisun_store::conformance`), run on `SqliteStore` with
//! durable commits, exactly as a server would run it.

use async_trait::async_trait;
use orisun_sqlite::{SqliteConfig, SqliteStore};
use orisun_store::core::{
    AppendCondition, BoundaryName, Criterion, NewEvent, Position, ReadRequest, StoredEvent,
};
use orisun_store::{AppendOutcome, EventStore, LatestByCriteria, StoreError};
use std::sync::Arc;
use tempfile::TempDir;
use tokio::sync::watch;

/// A store that owns its temporary data directory, so each test gets a fresh store whose files
/// are removed when the test drops it.
struct TempStore {
    store: SqliteStore,
    _dir: TempDir,
}

async fn fresh() -> Arc<dyn EventStore> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(SqliteConfig::new(dir.path())).expect("open store");
    Arc::new(TempStore { store, _dir: dir })
}

orisun_store::conformance_suite!(fresh);

/// The same suite on a store whose tag log holds three rows, so that its writer moves the log
/// into the tag index after nearly every group and lookups constantly span both tables.
mod tiny_tag_log {
    use super::*;

    async fn fresh() -> Arc<dyn EventStore> {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = SqliteConfig {
            tag_log_rows: 3,
            ..SqliteConfig::new(dir.path())
        };
        let store = SqliteStore::open(config).expect("open store");
        Arc::new(TempStore { store, _dir: dir })
    }

    orisun_store::conformance_suite!(fresh);
}

#[async_trait]
impl EventStore for TempStore {
    async fn create_boundary(&self, boundary: &BoundaryName) -> Result<(), StoreError> {
        self.store.create_boundary(boundary).await
    }

    async fn boundaries(&self) -> Result<Vec<BoundaryName>, StoreError> {
        self.store.boundaries().await
    }

    async fn append(
        &self,
        boundary: &BoundaryName,
        events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
    ) -> Result<AppendOutcome, StoreError> {
        self.store.append(boundary, events, condition).await
    }

    async fn read(
        &self,
        boundary: &BoundaryName,
        request: &ReadRequest,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.store.read(boundary, request).await
    }

    async fn latest_by_criteria(
        &self,
        boundary: &BoundaryName,
        criteria: &[Criterion],
    ) -> Result<LatestByCriteria, StoreError> {
        self.store.latest_by_criteria(boundary, criteria).await
    }

    async fn head(&self, boundary: &BoundaryName) -> Result<Position, StoreError> {
        self.store.head(boundary).await
    }

    async fn count(&self, boundary: &BoundaryName) -> Result<u64, StoreError> {
        self.store.count(boundary).await
    }

    async fn watch_head(
        &self,
        boundary: &BoundaryName,
    ) -> Result<watch::Receiver<Position>, StoreError> {
        self.store.watch_head(boundary).await
    }
}
