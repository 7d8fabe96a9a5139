//! [`AggregateError`]: everything an aggregate append or read can fail with.

use crate::id::AggregateId;
use crate::version::ExpectedVersion;
use orisun_core::{Invalid, Position};
use orisun_store::StoreError;

/// Why an aggregate operation failed. Nothing was appended in any case.
#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    /// The input broke a rule (an empty aggregate id, no events, a reserved data field).
    #[error("invalid argument: {0}")]
    Invalid(#[from] Invalid),

    /// The aggregate's current version is not the expected one: another command appended
    /// first. Re-read the aggregate and decide again.
    #[error("aggregate {aggregate} is at version {actual}, the append expected {expected}")]
    WrongVersion {
        /// The aggregate.
        aggregate: AggregateId,
        /// What the append expected.
        expected: ExpectedVersion,
        /// The aggregate's current version when the append was refused.
        actual: u64,
    },

    /// `Exact(n)` named a version the aggregate has not reached. Versions only grow, so this is
    /// a bug of the caller rather than a race; it is reported as bad input.
    #[error(
        "invalid argument: expected_version: {expected} is beyond the current version {actual} of aggregate {aggregate}"
    )]
    VersionBeyondHead {
        /// The aggregate.
        aggregate: AggregateId,
        /// The version the append expected.
        expected: u64,
        /// The aggregate's current version.
        actual: u64,
    },

    /// An `Any` append lost the race to other appends of the same aggregate this many times in
    /// a row. Each lost round means another append succeeded, so this only happens under
    /// extreme contention on one aggregate.
    #[error("aggregate {aggregate}: gave up after {attempts} attempts lost to concurrent appends")]
    Contended {
        /// The aggregate.
        aggregate: AggregateId,
        /// How many appends were tried.
        attempts: u32,
    },

    /// An event matching the aggregate lacks a valid version: it was written around this
    /// library (a plain save whose data holds `aggregateType` and `aggregateId`).
    #[error(
        "event at {position} of aggregate {aggregate} has no valid aggregateVersion: {reason}"
    )]
    Malformed {
        /// The aggregate.
        aggregate: AggregateId,
        /// The offending event.
        position: Position,
        /// What is wrong with it.
        reason: String,
    },

    /// The store failed (unavailable, unknown boundary, ...).
    #[error(transparent)]
    Store(#[from] StoreError),
}
