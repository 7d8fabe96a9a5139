//! Projections over Orisun's log: processors that follow a boundary from a checkpoint and hand
//! events in batches to a handler.
//!
//! ```ignore
//! let config = ProjectionConfig::new("balances", boundary)?
//!     .scope(Scope::all().aggregate_types(["Account"]))
//!     .partition(Partition::new(0, 4)?);
//! let processor = Processor::new(store, coordination, config, MyHandler);
//! Runner::new().with(processor).run_until_signal().await?;
//! ```
//!
//! # Delivery
//!
//! - **PostgreSQL, [`postgres::processor`]**: the handler gets the transaction in which the
//!   checkpoint moves. A read model in the same database is updated **exactly once** per
//!   event, even across crashes: a batch's writes and its checkpoint commit together.
//! - **Everywhere else, [`Processor::new`]** (the embedded store, a remote server through
//!   `orisun-client`, or a read model outside PostgreSQL): the checkpoint is saved after the
//!   handler returns, so a crash in between hands the batch again. Delivery is
//!   **at-least-once**; make handlers idempotent (key writes by event id or position).
//! - In both, events arrive in log order, each partition's events exactly as the store
//!   delivers them: no gap, no reordering. A handler error never moves the checkpoint past the
//!   failed batch: it is retried per [`RetryPolicy`], then the processor stops with
//!   [`ProjectionError::Handler`], naming the batch's first position.
//!
//! # Modes
//!
//! [`Mode::Continuous`] follows the log until shut down, woken by the store's head watch
//! (`EventStore::subscribe`), never by polling. [`Mode::OneOff`] catches up to the head as of
//! its start, moves the checkpoint there, and returns.
//!
//! # Partitions and leases
//!
//! A projection may be split into N partitions ([`Partition`], FNV-1a of the aggregate id by
//! default). Each partition has its own checkpoint and lease; at most one worker processes a
//! partition at a time, and every checkpoint move is fenced by the lease's epoch. Four
//! partitions in four tasks or processes build the same read model as one.
//!
//! # Replica sets
//!
//! [`workers::Worker`] joins a named replica set and is given a share of each projection's
//! partitions automatically; partitions move between workers, one at a time and fenced, when
//! workers join, leave or die. See [`workers`] for the strategy and its guarantees.
//!
//! # Observability
//!
//! [`Processor::progress`] reports checkpoint, head, lag and counts; `tracing` spans
//! `projection` and `projection.batch` wrap the work, with events for retries and checkpoint
//! moves.

mod config;
mod error;
mod handler;
pub mod partition;
#[cfg(feature = "postgres")]
pub mod postgres;
mod processor;
mod progress;
mod retry;
mod runner;
mod scope;
mod sink;
#[cfg(feature = "testsuite")]
pub mod testsuite;
pub mod workers;

pub use config::{Mode, ProjectionConfig, MAX_NAME_LEN};
pub use error::ProjectionError;
pub use handler::{Batch, Handler, HandlerError};
pub use partition::Partition;
pub use processor::Processor;
pub use progress::{Progress, State};
pub use retry::RetryPolicy;
pub use runner::{Failure, Runner, RunnerError};
pub use scope::Scope;
