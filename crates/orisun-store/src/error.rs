//! The error every storage backend reports.

use orisun_core::{Invalid, Position};
use uuid::Uuid;

/// What went wrong in a storage call. Backends translate their driver errors into these
/// variants at their edge; no driver type crosses the trait.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The input broke a rule; nothing was changed.
    #[error("invalid argument: {0}")]
    Invalid(#[from] Invalid),

    /// The boundary has not been created.
    #[error("boundary {name:?} does not exist")]
    UnknownBoundary {
        /// The boundary asked for.
        name: String,
    },

    /// The append condition failed: an event matching the condition's criteria was appended
    /// after the expected position. The text keeps Go Orisun's wording, which clients match on.
    #[error(
        "OptimisticConcurrencyException:StreamVersionConflict: Expected {expected}, Actual {actual}"
    )]
    ConditionFailed {
        /// The position the caller expected its context to end at.
        expected: Position,
        /// The position of the latest event matching the criteria.
        actual: Position,
    },

    /// Some, but not all, of the batch's event ids are already stored (a retry of a save whose
    /// events are *all* stored succeeds with the original result instead).
    #[error("events already stored in this boundary: {}", list_ids(event_ids))]
    DuplicateEvents {
        /// The ids that are already stored.
        event_ids: Vec<Uuid>,
    },

    /// A fenced write was refused because the lease it was fenced by is no longer held.
    #[error("lease {name:?} is no longer held by this node")]
    LeaseLost {
        /// The lease's name.
        name: String,
    },

    /// The storage cannot be reached or refused the operation for a transient reason.
    #[error("storage unavailable: {reason}")]
    Unavailable {
        /// What the backend reported.
        reason: String,
    },

    /// A remote store refused the caller's credentials (wrong password, an expired or revoked
    /// token). Only a store reached over the network (the gRPC client) returns this.
    #[error("unauthenticated: {reason}")]
    Unauthenticated {
        /// What the server said.
        reason: String,
    },

    /// A remote store refused the call for the caller's roles. Only a store reached over the
    /// network (the gRPC client) returns this.
    #[error("permission denied: {reason}")]
    PermissionDenied {
        /// What the server said.
        reason: String,
    },

    /// A bug or a broken invariant in the storage layer.
    #[error("internal storage error: {reason}")]
    Internal {
        /// What the backend reported.
        reason: String,
    },
}

impl StoreError {
    /// Creates an [`StoreError::Unavailable`] from any displayable cause.
    pub fn unavailable(reason: impl std::fmt::Display) -> Self {
        Self::Unavailable {
            reason: reason.to_string(),
        }
    }

    /// Creates an [`StoreError::Internal`] from any displayable cause.
    pub fn internal(reason: impl std::fmt::Display) -> Self {
        Self::Internal {
            reason: reason.to_string(),
        }
    }

    /// Creates an [`StoreError::Invalid`] for `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid(Invalid::new(field, reason))
    }
}

fn list_ids(ids: &[Uuid]) -> String {
    ids.iter()
        .map(Uuid::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
