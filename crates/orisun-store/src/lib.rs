//! The storage contract of Orisun: the [`EventStore`] trait, its error type, the in-memory
//! model used as the test oracle, the generic subscription, and the conformance suite that
//! every backend runs.

mod coordination;
mod error;
mod memory;
pub mod rules;
mod subscribe;
mod traits;

pub mod conformance;

pub use coordination::{suite as coordination_suite, Coordination, Lease, LocalCoordination};
pub use error::StoreError;
pub use memory::MemoryStore;
pub use subscribe::{subscribe, EventStream, POLL_FALLBACK};
pub use traits::{AppendOutcome, EventStore, LatestByCriteria};

pub use orisun_core as core;
