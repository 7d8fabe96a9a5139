//! [`Aggregates`]: aggregate streams of one boundary of any [`EventStore`] (PostgreSQL, the
//! embedded store, the in-memory model, or a remote server through `orisun-client`).

use crate::error::AggregateError;
use crate::id::AggregateId;
use crate::stream::{self, AggregateStream, Appended, Log, DEFAULT_MAX_ATTEMPTS};
use crate::version::ExpectedVersion;
use orisun_core::{AppendCondition, BoundaryName, Criterion, NewEvent, ReadRequest, StoredEvent};
use orisun_store::{AppendOutcome, EventStore, LatestByCriteria, StoreError};
use std::ops::RangeBounds;
use std::sync::Arc;

/// Aggregate streams stored in one boundary. Cheap to clone.
#[derive(Clone)]
pub struct Aggregates {
    store: Arc<dyn EventStore>,
    boundary: BoundaryName,
    max_attempts: u32,
}

impl Aggregates {
    /// Aggregate streams in `boundary` of `store` (the boundary must exist).
    pub fn new(store: Arc<dyn EventStore>, boundary: BoundaryName) -> Self {
        Self {
            store,
            boundary,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }

    /// Sets how many times an `Any` append is tried against concurrent appends of the same
    /// aggregate before it fails with [`AggregateError::Contended`] (default
    /// [`DEFAULT_MAX_ATTEMPTS`]).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The boundary holding the streams.
    pub fn boundary(&self) -> &BoundaryName {
        &self.boundary
    }

    /// The store holding the streams.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// Appends `events` to `aggregate` if its current version is as `expected`, giving them
    /// the next versions. The batch is stored entirely or not at all.
    ///
    /// Errors: [`AggregateError::Invalid`] for no events or a reserved data field,
    /// [`AggregateError::WrongVersion`] when another append got there first,
    /// [`AggregateError::VersionBeyondHead`] for an `Exact` the aggregate has not reached.
    #[tracing::instrument(name = "aggregate.append", skip_all, fields(boundary = %self.boundary, aggregate = %aggregate, %expected, events = events.len()))]
    pub async fn append(
        &self,
        aggregate: &AggregateId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Appended, AggregateError> {
        stream::append(
            &self.on_store(),
            aggregate,
            expected,
            events,
            self.max_attempts,
        )
        .await
    }

    /// Reads the events of `aggregate` with versions in `range` (`..` for all, `5..=9`, `10..`).
    /// [`AggregateStream::exists`] tells an aggregate without events from an empty range.
    #[tracing::instrument(name = "aggregate.read", skip_all, fields(boundary = %self.boundary, aggregate = %aggregate))]
    pub async fn read(
        &self,
        aggregate: &AggregateId,
        range: impl RangeBounds<u64>,
    ) -> Result<AggregateStream, AggregateError> {
        stream::read(&self.on_store(), aggregate, range).await
    }

    /// Returns the aggregate's current version, 0 when it has no events. One index seek,
    /// whatever the size of the boundary.
    pub async fn version(&self, aggregate: &AggregateId) -> Result<u64, AggregateError> {
        Ok(stream::head(&self.on_store(), aggregate).await?.0)
    }

    fn on_store(&self) -> OnStore<'_> {
        OnStore {
            store: &*self.store,
            boundary: &self.boundary,
        }
    }
}

/// The store's operations on one boundary.
struct OnStore<'a> {
    store: &'a dyn EventStore,
    boundary: &'a BoundaryName,
}

impl Log for OnStore<'_> {
    async fn latest(&self, criteria: &[Criterion]) -> Result<LatestByCriteria, StoreError> {
        self.store.latest_by_criteria(self.boundary, criteria).await
    }

    async fn append(
        &self,
        events: Vec<NewEvent>,
        condition: AppendCondition,
    ) -> Result<AppendOutcome, StoreError> {
        self.store
            .append(self.boundary, events, Some(condition))
            .await
    }

    async fn read(&self, request: &ReadRequest) -> Result<Vec<StoredEvent>, StoreError> {
        self.store.read(self.boundary, request).await
    }
}
