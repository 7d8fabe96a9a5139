//! Exactly-once projections on PostgreSQL: the handler writes its read model through the
//! transaction in which the checkpoint moves, so both commit or neither does.
//!
//! The checkpoint row lives in `orisun.checkpoints` (created by the store's versioned, locked
//! migrations), fenced by the partition's lease in `orisun.leases`: the save takes a share lock
//! on the lease row and checks holder, epoch and expiry, so a worker that lost its partition
//! cannot commit, and its read-model writes roll back with it.
//!
//! Each batch's transaction also sets `idle_in_transaction_session_timeout` to the lease TTL:
//! a worker paused inside the transaction (SIGSTOP, a stalled host) is disconnected by the
//! server after the TTL, so it cannot hold row locks (a read model's unique index entries,
//! the lease row) that its successor needs. A handler must therefore not sit idle inside the
//! transaction (doing other work between statements) for longer than the TTL.

use crate::config::ProjectionConfig;
use crate::handler::{Batch, HandlerError};
use crate::processor::Processor;
use crate::sink::{CommitError, Sink};
use async_trait::async_trait;
use orisun_core::Position;
use orisun_postgres::deadpool_postgres::Pool;
use orisun_postgres::tokio_postgres::Transaction;
use orisun_postgres::{pool_error, store_error, PostgresCoordination, PostgresStore};
use orisun_store::{Coordination, EventStore, Lease, StoreError};
use std::sync::Arc;

/// A projection handler that writes through the processor's transaction. It must not commit or
/// roll it back; an error rolls the whole batch back and leaves the checkpoint where it was.
#[async_trait]
pub trait TransactionalHandler: Send + Sync + 'static {
    /// Applies a batch inside `tx`.
    async fn handle(&self, tx: &Transaction<'_>, batch: &Batch) -> Result<(), HandlerError>;
}

/// A processor over `store` whose handler runs in the checkpoint's transaction (exactly-once
/// for a read model in the same database).
pub fn processor(
    store: &PostgresStore,
    config: ProjectionConfig,
    handler: impl TransactionalHandler,
) -> Processor {
    let coordination = Arc::new(PostgresCoordination::new(store.pool().clone()));
    let sink = Arc::new(InTransaction {
        pool: store.pool().clone(),
        coordination: coordination.clone(),
        handler: Arc::new(handler),
        idle_timeout_ms: u64::try_from(config.lease_ttl.as_millis())
            .unwrap_or(u64::MAX)
            .min(i32::MAX as u64),
    });
    let store: Arc<dyn EventStore> = Arc::new(store.clone());
    Processor::with_sink(store, coordination, config, sink)
}

struct InTransaction {
    pool: Pool,
    coordination: Arc<PostgresCoordination>,
    handler: Arc<dyn TransactionalHandler>,
    /// The lease TTL in milliseconds: the longest a batch's transaction may sit idle.
    idle_timeout_ms: u64,
}

#[async_trait]
impl Sink for InTransaction {
    async fn load(&self, name: &str) -> Result<Option<Position>, StoreError> {
        self.coordination.load_checkpoint(name).await
    }

    async fn commit(&self, name: &str, batch: &Batch, lease: &Lease) -> Result<(), CommitError> {
        let mut client = self
            .pool
            .get()
            .await
            .map_err(|e| CommitError::Store(pool_error("projection batch", e)))?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| CommitError::Store(store_error("projection batch: begin", e)))?;
        tx.batch_execute(&format!(
            "SET LOCAL idle_in_transaction_session_timeout = {}",
            self.idle_timeout_ms
        ))
        .await
        .map_err(|e| CommitError::Store(store_error("projection batch: idle timeout", e)))?;
        if !batch.events.is_empty() {
            self.handler
                .handle(&tx, batch)
                .await
                .map_err(CommitError::Handler)?;
        }
        PostgresCoordination::save_checkpoint_in(&tx, name, batch.checkpoint, Some(lease))
            .await
            .map_err(CommitError::Store)?;
        tx.commit()
            .await
            .map_err(|e| CommitError::Store(store_error("projection batch: commit", e)))
    }
}
