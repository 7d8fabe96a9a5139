//! Aggregate streams inside a PostgreSQL transaction the application owns: the events commit
//! or roll back with the application's own writes.
//!
//! The first append of the transaction takes the boundary's write lock and holds it until the
//! transaction ends (see `PostgresStore::append_in_transaction`): keep such transactions
//! short. The transaction must be READ COMMITTED, so that an `Any` append that lost a race
//! sees the winner's events when it re-reads.
//!
//! The embedded backend offers no such transaction: its writes are grouped by one writer
//! thread per boundary. There, commit the events first and make the application's own writes
//! idempotent, or derive them from the events with a projection (at-least-once).

use crate::error::AggregateError;
use crate::id::AggregateId;
use crate::stream::{self, AggregateStream, Appended, Log, DEFAULT_MAX_ATTEMPTS};
use crate::version::ExpectedVersion;
use orisun_core::{AppendCondition, BoundaryName, Criterion, NewEvent, ReadRequest, StoredEvent};
use orisun_postgres::tokio_postgres::Transaction;
use orisun_postgres::PostgresStore;
use orisun_store::{AppendOutcome, LatestByCriteria, StoreError};
use std::ops::RangeBounds;

/// Appends to `aggregate` inside `tx`, as [`crate::Aggregates::append`] does outside one. The
/// events become visible when `tx` commits; call `PostgresStore::refresh_head` after the
/// commit to wake this node's subscribers at once.
#[tracing::instrument(name = "aggregate.append_in_transaction", skip_all, fields(%boundary, aggregate = %aggregate, %expected, events = events.len()))]
pub async fn append_in_transaction(
    store: &PostgresStore,
    tx: &Transaction<'_>,
    boundary: &BoundaryName,
    aggregate: &AggregateId,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> Result<Appended, AggregateError> {
    let log = InTransaction {
        store,
        tx,
        boundary,
    };
    stream::append(&log, aggregate, expected, events, DEFAULT_MAX_ATTEMPTS).await
}

/// Reads `aggregate`'s stream inside `tx`, including what `tx` appended itself.
pub async fn read_in_transaction(
    store: &PostgresStore,
    tx: &Transaction<'_>,
    boundary: &BoundaryName,
    aggregate: &AggregateId,
    range: impl RangeBounds<u64>,
) -> Result<AggregateStream, AggregateError> {
    let log = InTransaction {
        store,
        tx,
        boundary,
    };
    stream::read(&log, aggregate, range).await
}

struct InTransaction<'a, 't> {
    store: &'a PostgresStore,
    tx: &'a Transaction<'t>,
    boundary: &'a BoundaryName,
}

impl Log for InTransaction<'_, '_> {
    async fn latest(&self, criteria: &[Criterion]) -> Result<LatestByCriteria, StoreError> {
        self.store
            .latest_in_transaction(self.tx, self.boundary, criteria)
            .await
    }

    async fn append(
        &self,
        events: Vec<NewEvent>,
        condition: AppendCondition,
    ) -> Result<AppendOutcome, StoreError> {
        self.store
            .append_in_transaction(self.tx, self.boundary, events, Some(condition))
            .await
    }

    async fn read(&self, request: &ReadRequest) -> Result<Vec<StoredEvent>, StoreError> {
        self.store
            .read_in_transaction(self.tx, self.boundary, request)
            .await
    }
}
