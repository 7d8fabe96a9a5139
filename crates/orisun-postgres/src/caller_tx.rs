//! Library mode: the store's operations inside a transaction the application owns (append,
//! read, latest by criteria), so that its own writes and the events commit or roll back
//! together, and what it reads includes what it wrote earlier in the same transaction.

use crate::append::{append_group, check_storable, AppendRequest, Transaction};
use crate::db::Exec;
use crate::error;
use crate::read;
use crate::store::PostgresStore;
use orisun_core::{AppendCondition, BoundaryName, Criterion, NewEvent, ReadRequest, StoredEvent};
use orisun_store::rules::{validate_batch, validate_criteria};
#[cfg(doc)]
use orisun_store::EventStore;
use orisun_store::{AppendOutcome, LatestByCriteria, StoreError};

impl PostgresStore {
    /// Appends events inside the caller's transaction (library mode), so that the caller's own
    /// writes and the events commit or roll back together.
    ///
    /// It takes the boundary's lock (held until the caller's transaction ends: keep the
    /// transaction short, every other writer of the boundary waits for it), checks the condition
    /// and inserts, exactly as [`EventStore::append`] does. The returned position is final once
    /// the caller commits. Watchers on every node are woken by the NOTIFY sent at commit (or by
    /// the fallback poll); [`PostgresStore::refresh_head`] wakes this node's at once.
    ///
    /// The transaction should be READ COMMITTED. Under REPEATABLE READ or SERIALIZABLE an append
    /// that raced another fails with [`StoreError::Unavailable`] (a serialization failure): retry
    /// the transaction.
    pub async fn append_in_transaction(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        boundary: &BoundaryName,
        events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
    ) -> Result<AppendOutcome, StoreError> {
        validate_batch(&events, condition.as_ref())?;
        check_storable(&events)?;
        let open = self.resolve(boundary).await?;
        let request = AppendRequest { events, condition };
        let mut group = append_group(
            Exec::unnamed(tx.client()),
            &open.shared.sql,
            &open.shared.channel,
            &[&request],
            Transaction::Caller,
            &[],
        )
        .await?;
        group
            .outcomes
            .pop()
            .unwrap_or_else(|| Err(StoreError::internal("no outcome for the request")))
    }

    /// Reads one page inside the caller's transaction: it sees the transaction's own
    /// uncommitted appends, and what its snapshot holds of everyone else's.
    pub async fn read_in_transaction(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        boundary: &BoundaryName,
        request: &ReadRequest,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        request.validate()?;
        let open = self.resolve(boundary).await?;
        read::read(Exec::unnamed(tx.client()), &open.shared.sql, request)
            .await
            .map_err(|e| error::db("read in transaction", e))
    }

    /// Returns the latest event matching each criterion inside the caller's transaction, as
    /// [`EventStore::latest_by_criteria`] does outside one.
    pub async fn latest_in_transaction(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        boundary: &BoundaryName,
        criteria: &[Criterion],
    ) -> Result<LatestByCriteria, StoreError> {
        validate_criteria(criteria)?;
        let open = self.resolve(boundary).await?;
        read::latest_by_criteria(Exec::unnamed(tx.client()), &open.shared.sql, criteria)
            .await
            .map_err(|e| error::db("latest by criteria in transaction", e))
    }
}
