//! Where a batch's effects and its checkpoint go: the [`Sink`] a processor commits each batch
//! to. The generic sink runs the handler and then saves the checkpoint (at-least-once); the
//! PostgreSQL sink (`crate::postgres`) does both in one transaction (exactly-once).

use crate::handler::{Batch, Handler, HandlerError};
use async_trait::async_trait;
use orisun_core::Position;
use orisun_store::{Coordination, Lease, StoreError};
use std::sync::Arc;

/// Why a batch did not commit.
#[derive(Debug)]
pub(crate) enum CommitError {
    /// The handler failed.
    Handler(HandlerError),
    /// The checkpoint (or the transaction) failed.
    Store(StoreError),
}

/// Commits batches and their checkpoints, fenced by the partition's lease.
#[async_trait]
pub(crate) trait Sink: Send + Sync + 'static {
    /// Loads checkpoint `name`.
    async fn load(&self, name: &str) -> Result<Option<Position>, StoreError>;

    /// Applies `batch` (when it has events) and moves checkpoint `name` to `batch.checkpoint`,
    /// only while `lease` is current.
    async fn commit(&self, name: &str, batch: &Batch, lease: &Lease) -> Result<(), CommitError>;
}

/// The handler first, then a fenced checkpoint save in the coordination store.
pub(crate) struct AfterHandler {
    pub handler: Arc<dyn Handler>,
    pub coordination: Arc<dyn Coordination>,
}

#[async_trait]
impl Sink for AfterHandler {
    async fn load(&self, name: &str) -> Result<Option<Position>, StoreError> {
        self.coordination.load_checkpoint(name).await
    }

    async fn commit(&self, name: &str, batch: &Batch, lease: &Lease) -> Result<(), CommitError> {
        if !batch.events.is_empty() {
            self.handler
                .handle(batch)
                .await
                .map_err(CommitError::Handler)?;
        }
        self.coordination
            .save_checkpoint(name, batch.checkpoint, Some(lease))
            .await
            .map_err(CommitError::Store)
    }
}
