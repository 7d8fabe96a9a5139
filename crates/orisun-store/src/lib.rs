//! The storage contract of Orisun: the [`EventStore`] trait, its error type, the in-memory
//! model used as the test oracle, the catch-up subscription of in-process stores, and cluster
//! coordination (leases, fenced checkpoints, the lease keeper, replica-set membership).
//!
//! With the `testsuite` feature (for dev-dependencies only) it also carries the conformance
//! suite every backend runs, the coordination suite and the test doubles they share.

mod catch_up;
mod coordination;
mod error;
mod lease_keeper;
mod membership;
mod memory;
pub mod rules;
mod traits;

#[cfg(feature = "testsuite")]
pub mod conformance;
#[cfg(feature = "testsuite")]
pub mod testsuite;

pub use catch_up::{catch_up, EventStream, HeadWatch, POLL_FALLBACK};
pub use coordination::{Coordination, Lease, LocalCoordination};
pub use error::StoreError;
pub use lease_keeper::{keep_lease, keep_lease_with_validity, LeaseLoss, LeaseValidity};
pub use membership::{
    partition_count_mismatch, validate_set_name, ClaimRecord, LocalMembership, MemberRecord,
    Membership, SetView, MAX_SET_NAME_LEN, RESERVED_SET_PREFIX,
};
pub use memory::MemoryStore;
pub use traits::{AppendOutcome, EventStore, LatestByCriteria};

pub use orisun_core as core;
