//! Projections that scale across processes: **replica sets** of workers that share each
//! projection's partitions automatically.
//!
//! ```ignore
//! let config = WorkerConfig::new("main-projections", 8)?.ttl(Duration::from_secs(10));
//! let projection = ProjectionConfig::new("balances", boundary)?;
//! Worker::new(store.membership(), config)
//!     .projection(projection, move |c| postgres::processor(&store, c, Balances))
//!     .run(cancel)
//!     .await?;
//! ```
//!
//! # How it works
//!
//! - **Membership** ([`orisun_store::Membership`]): a worker joins its named set with a
//!   heartbeat, then heartbeats every third of its TTL, reporting the partitions it runs. A
//!   member that misses heartbeats for a TTL is removed by the next heartbeat of any member.
//!   Every join, leave and expiry bumps the set's **generation**.
//! - **Assignment** ([`assign`]): every worker computes, from the view its heartbeat
//!   returned, the same balanced and sticky split of the set's partitions, and runs its share:
//!   partition `i` of every projection the worker was given.
//! - **Incremental hand-over** (not stop-the-world): when the membership changes, only the
//!   partitions that must move pause. Their old holder stops each of them after the batch in
//!   hand and releases its lease; the new holder waits for that lease (or for its expiry, when
//!   the old holder died), loads the checkpoint and goes on. Every other partition keeps
//!   running.
//! - **Fencing**: a partition is run only under its [`orisun_store::Coordination`] lease, whose
//!   epoch grows on every hand-over, and every checkpoint move is fenced by it. On PostgreSQL
//!   (`postgres::processor`) the handler's writes and the checkpoint share one transaction that
//!   takes a share lock on the lease row and checks holder, epoch and expiry before it
//!   commits; the transaction also carries `idle_in_transaction_session_timeout` = TTL, so a
//!   worker paused inside it (SIGSTOP, a long GC-like stall) is cut off by the server instead of
//!   holding row locks its successor needs. A worker that was paused, partitioned or slow past
//!   its TTL therefore cannot commit after its successor took over: its transaction fails and
//!   its read-model writes roll back.
//! - **Fail-safe**: a worker whose heartbeats lapse (none answered within the TTL) drops all
//!   its partitions before it does anything else, then joins again.
//!
//! Views may briefly disagree (two workers heartbeat at different moments). That costs time,
//! never correctness: a worker only runs a partition whose lease it holds, and a contested
//! partition goes to the first claimant by name at the next heartbeat.
//!
//! Rebalance time after a worker dies: its leases and membership expire after the TTL; the
//! others see it gone at their next heartbeat (a third of the TTL) and take its partitions at
//! their next lease attempt (another third at most): about TTL × 5/3 in the worst case.
//!
//! # Replica sets are independent
//!
//! Lease and checkpoint names carry the set (`projection@<set>:<boundary>:<name>:<i>/<n>`), so
//! two sets running the same projection over the same boundary each build their own read
//! model (write them to different tables).
//!
//! # The partition count
//!
//! A set's partition count is stored with the set when its first worker joins; a worker
//! started with another count is refused at start ([`WorkerError::Refused`]), as is an empty
//! or malformed set name ([`WorkerError::Invalid`]). To change the count, **start a new set**:
//! run the workers under a new set name with the new count, writing to a new read model (it
//! rebuilds from the beginning of the log, since its checkpoints are new); when it has caught
//! up (`orisun projections status` shows its lag), switch readers to it and stop the old set's
//! workers. The old set's rows stay harmlessly in `orisun.replica_sets`; its members expire.
//! Never reuse a set name with another count for the same read model: the workers refuse it.
//!
//! # Backends
//!
//! On PostgreSQL, membership, leases and checkpoints live in the database, so workers in any
//! number of processes and machines cooperate. With the embedded and in-memory stores, use
//! [`orisun_store::LocalMembership`] and `LocalCoordination`: they work across tasks of **one
//! process only**.
//!
//! # Observability
//!
//! [`Worker::status`] (this worker), [`replica_set_status`] (every worker, from the shared
//! storage; `orisun projections status` prints it), and the Prometheus metrics listed in the
//! `metrics` module's docs.

mod assignment;
mod config;
mod metrics;
mod status;
mod worker;

pub use assignment::{assign, Member};
pub use config::{WorkerConfig, MAX_PARTITIONS};
pub use status::{
    claim_prefix, replica_set_status, replica_sets_status, CheckpointStatus, MemberStatus,
    PartitionStatus, ReplicaSetStatus, WorkerStatus,
};
pub use worker::{BuildProcessor, Worker};

use crate::runner::Failure;
use orisun_core::Invalid;
use orisun_store::StoreError;

/// Why a [`Worker`] stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The configuration broke a rule (an empty set name, a partition count of 0).
    #[error("invalid argument: {0}")]
    Invalid(Invalid),
    /// The worker was given no projection.
    #[error("the worker has no projections to run")]
    NoProjections,
    /// The set refused the worker (its partition count disagrees with the set's).
    #[error("replica set {set:?} refused this worker: {source}")]
    Refused {
        /// The set.
        set: String,
        /// What the membership store said.
        source: StoreError,
    },
    /// A processor failed for a reason other than losing its partition; the others were
    /// stopped and the worker left the set.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Failed(Vec<Failure>),
}
