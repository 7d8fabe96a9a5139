//! Aggregate streams on Orisun's one log.
//!
//! An aggregate (a type and an id, both strings) owns the events whose data carries
//! `aggregateType` and `aggregateId` equal to its own; each such event also carries its
//! `aggregateVersion`, 1 for the first and gap-free after that. These are ordinary events of
//! the boundary: criteria reads, subscriptions, NATS publishing and the gRPC API see them like
//! any other, and a criterion on `aggregateType`/`aggregateId` selects one stream.
//!
//! ```ignore
//! let accounts = Aggregates::new(store, BoundaryName::new("bank")?);
//! let id = AggregateId::new("Account", "acc-1")?;
//! accounts.append(&id, ExpectedVersion::NoStream, vec![opened]).await?;
//! let stream = accounts.read(&id, ..).await?;            // every event, with versions
//! accounts.append(&id, ExpectedVersion::Exact(stream.current_version), vec![deposited]).await?;
//! ```
//!
//! # Guarantees
//!
//! - The expected-version check is the store's DCB condition ("no event of this aggregate
//!   after the one I read"), so it is exactly as strong as every other conditional append, on
//!   every backend and over the wire.
//! - Versions are unique and gap-free per aggregate. Concurrent [`ExpectedVersion::Any`]
//!   appends to one aggregate all succeed, with distinct versions (pupsourcing's `Any` fails
//!   the loser on a unique index instead).
//! - A refused `Exact`/`NoStream` append reports the expected and the actual version
//!   ([`AggregateError::WrongVersion`]). `Exact(n)` beyond the current version is bad input
//!   ([`AggregateError::VersionBeyondHead`]).
//! - The current version costs one tag-index seek, O(log n) whatever the boundary's size; a
//!   range read seeks to its first version the same way.
//! - Events written with the same ids again (a retried append) are reported with their
//!   original versions and position, not appended twice.
//!
//! The three data fields are reserved: a plain save that writes them produces an event the
//! stream reads report as [`AggregateError::Malformed`].
//!
//! With the `postgres` feature, [`postgres`] appends and reads inside a transaction the
//! application owns.

mod error;
mod event;
mod id;
#[cfg(feature = "postgres")]
pub mod postgres;
mod store;
mod stream;
#[cfg(feature = "testsuite")]
pub mod testsuite;
mod version;

pub use error::AggregateError;
pub use event::VersionedEvent;
pub use id::{
    AggregateId, AGGREGATE_ID_KEY, AGGREGATE_TYPE_KEY, AGGREGATE_VERSION_KEY, MAX_ID_LEN,
};
pub use store::Aggregates;
pub use stream::{AggregateStream, Appended, DEFAULT_MAX_ATTEMPTS};
pub use version::ExpectedVersion;
