//! Test support shared by every backend's tests (the `testsuite` feature): a store that keeps a
//! resource alive for as long as the store, a coordinator that fails on command, the
//! coordination suite, and the time-bounded fuzz runner of every crate's `tests/fuzz.rs` (`fuzz`).

pub mod coordination;
pub mod fuzz;
pub mod membership;

use crate::{
    AppendOutcome, Coordination, EventStore, EventStream, HeadWatch, LatestByCriteria, Lease,
    LocalCoordination, StoreError,
};
use async_trait::async_trait;
use orisun_core::{
    AppendCondition, BoundaryName, Criterion, NewEvent, Position, Query, ReadRequest, StoredEvent,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// A store that owns a resource its data lives in (a temporary directory, a test database),
/// released only after the store itself is dropped: the conformance suite's factories hand
/// these out so that every test cleans up after itself.
pub struct Owned<S, G> {
    // Field order matters: the store (its files and connections) goes before what holds them.
    store: S,
    _guard: G,
}

impl<S, G> Owned<S, G> {
    /// Wraps `store`, keeping `guard` alive until the wrapper is dropped.
    pub fn new(store: S, guard: G) -> Self {
        Self {
            store,
            _guard: guard,
        }
    }

    /// The wrapped store.
    pub fn store(&self) -> &S {
        &self.store
    }
}

#[async_trait]
impl<S: EventStore, G: Send + Sync + 'static> EventStore for Owned<S, G> {
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

    fn subscribe(&self, boundary: &BoundaryName, after: Position, query: Query) -> EventStream {
        self.store.subscribe(boundary, after, query)
    }
}

#[async_trait]
impl<S: HeadWatch, G: Send + Sync + 'static> HeadWatch for Owned<S, G> {
    async fn watch_head(
        &self,
        boundary: &BoundaryName,
    ) -> Result<watch::Receiver<Position>, StoreError> {
        self.store.watch_head(boundary).await
    }
}

/// A [`LocalCoordination`] that can be told to fail every lease request, to answer that
/// someone else holds every lease, or to hang, for testing what holders do when the store
/// misbehaves.
#[derive(Default)]
pub struct FlakyCoordination {
    inner: LocalCoordination,
    /// While set, `acquire` fails with [`StoreError::Unavailable`].
    pub failing: AtomicBool,
    /// While set, `acquire` answers that another holder has the lease.
    pub stolen: AtomicBool,
    /// While set, `acquire` does not answer for an hour.
    pub hanging: AtomicBool,
}

impl FlakyCoordination {
    /// Creates a coordinator that behaves until told otherwise.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Coordination for FlakyCoordination {
    async fn acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        if self.hanging.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_secs(3_600)).await;
        }
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable("database down"));
        }
        if self.stolen.load(Ordering::SeqCst) {
            return Ok(None);
        }
        self.inner.acquire(name, holder, ttl).await
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        self.inner.release(lease).await
    }

    async fn load_checkpoint(&self, name: &str) -> Result<Option<Position>, StoreError> {
        self.inner.load_checkpoint(name).await
    }

    async fn save_checkpoint(
        &self,
        name: &str,
        position: Position,
        fence: Option<&Lease>,
    ) -> Result<(), StoreError> {
        self.inner.save_checkpoint(name, position, fence).await
    }
}
