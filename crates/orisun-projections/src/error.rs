//! [`ProjectionError`]: why a projection partition stopped.

use crate::handler::HandlerError;
use orisun_core::{Invalid, Position};
use orisun_store::{LeaseLoss, StoreError};

/// Why a projection partition stopped. The checkpoint is always at or before the failure.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The configuration broke a rule.
    #[error("invalid argument: {0}")]
    Invalid(#[from] Invalid),

    /// The handler failed on the same batch `attempts` times.
    #[error("projection {projection:?} partition {partition}: handler failed {attempts} times on the batch starting at {position}: {source}")]
    Handler {
        /// The projection.
        projection: String,
        /// The partition.
        partition: u32,
        /// The position of the batch's first event.
        position: Position,
        /// How many times the batch was tried.
        attempts: u32,
        /// The last error.
        source: HandlerError,
    },

    /// The partition's lease was lost (another worker took it over, or renewals failed past its
    /// TTL); the last batch, if any, was not committed.
    #[error("projection {projection:?} partition {partition}: lease lost: {loss}")]
    LeaseLost {
        /// The projection.
        projection: String,
        /// The partition.
        partition: u32,
        /// Why.
        loss: LeaseLoss,
    },

    /// The store failed in a way retries did not cure.
    #[error("projection {projection:?} partition {partition}: {source}")]
    Store {
        /// The projection.
        projection: String,
        /// The partition.
        partition: u32,
        /// The error.
        source: StoreError,
    },
}
