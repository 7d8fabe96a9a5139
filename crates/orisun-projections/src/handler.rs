//! What a projection does with its events: the [`Handler`] trait and the [`Batch`] it is given.

use async_trait::async_trait;
use orisun_core::{Position, StoredEvent};

/// The error a handler returns; the processor retries the batch, then stops with it.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A run of events handed to a handler at once, in log order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The projection's name.
    pub projection: String,
    /// The partition these events belong to.
    pub partition: u32,
    /// The events of this partition, in log order; never empty when a handler sees it.
    pub events: Vec<StoredEvent>,
    /// The checkpoint after this batch: the position of the last event read, which may be an
    /// event of another partition.
    pub checkpoint: Position,
}

/// A projection handler whose effects live outside the store's transaction (another database,
/// a broker, memory). The checkpoint is saved after [`Handler::handle`] returns, so after a
/// crash between the two the batch is handled again: delivery is **at-least-once**, and a
/// handler should be idempotent (keyed by event id or position).
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Applies a batch. An error leaves the checkpoint where it was.
    async fn handle(&self, batch: &Batch) -> Result<(), HandlerError>;
}
