//! The storage contract of Orisun: the [`EventStore`] trait, its error type, the in-memory
//! model used as the test oracle, the generic subscription, and the conformance suite that
//! every backend runs.

mod error;
mod memory;
pub mod rules;
mod subscribe;
mod traits;

pub mod conformance;

pub use error::StoreError;
pub use memory::MemoryStore;
pub use subscribe::{subscribe, EventStream, POLL_FALLBACK};
pub use traits::{AppendOutcome, EventStore, LatestByCriteria};

pub use orisun_core as core;
