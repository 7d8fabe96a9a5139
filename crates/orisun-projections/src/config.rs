//! [`ProjectionConfig`]: what a processor follows and how (name, boundary, scope, partition,
//! batch size, retries, mode, lease), validated when it is built.

use crate::partition::Partition;
use crate::retry::RetryPolicy;
use crate::scope::Scope;
use orisun_core::{BoundaryName, Invalid, MAX_READ_LIMIT};
use std::time::Duration;

/// How long a processor runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Follows the log until shut down, woken by the store's head watch (never by polling).
    #[default]
    Continuous,
    /// Catches up to the head as of the start, then returns: for tests, backfills, rebuilds.
    OneOff,
}

/// The longest projection name, in bytes.
pub const MAX_NAME_LEN: usize = 200;

/// What a processor follows and how.
#[derive(Debug, Clone)]
pub struct ProjectionConfig {
    pub(crate) name: String,
    pub(crate) boundary: BoundaryName,
    pub(crate) scope: Scope,
    pub(crate) partition: Partition,
    pub(crate) batch_size: u32,
    pub(crate) retry: RetryPolicy,
    pub(crate) mode: Mode,
    pub(crate) lease_ttl: Duration,
    pub(crate) worker: String,
    /// The replica set running this projection, when a [`crate::workers::Worker`] runs it: part
    /// of the lease and checkpoint names, so that two sets never share a partition.
    pub(crate) replica_set: Option<String>,
}

impl ProjectionConfig {
    /// A projection named `name` (1 to [`MAX_NAME_LEN`] bytes of `[A-Za-z0-9_.-]`) over every
    /// event of `boundary`, unpartitioned, continuous, in batches of 100, with the default
    /// retries and a 10 s lease.
    pub fn new(name: impl Into<String>, boundary: BoundaryName) -> Result<Self, Invalid> {
        let name = name.into();
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(Invalid::new(
                "projection",
                format!("must be 1 to {MAX_NAME_LEN} bytes, got {}", name.len()),
            ));
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            return Err(Invalid::new(
                "projection",
                format!("may hold only letters, digits, '_', '.' and '-', got {c:?}"),
            ));
        }
        Ok(Self {
            name,
            boundary,
            scope: Scope::all(),
            partition: Partition::whole(),
            batch_size: 100,
            retry: RetryPolicy::default(),
            mode: Mode::Continuous,
            lease_ttl: Duration::from_secs(10),
            worker: format!("worker-{}", uuid::Uuid::new_v4().simple()),
            replica_set: None,
        })
    }

    /// Receives only the events in `scope`.
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// Handles only `partition`'s share of the events.
    pub fn partition(mut self, partition: Partition) -> Self {
        self.partition = partition;
        self
    }

    /// Hands the handler up to `size` events at once (1 to 10,000).
    pub fn batch_size(mut self, size: u32) -> Result<Self, Invalid> {
        if size == 0 || size > MAX_READ_LIMIT {
            return Err(Invalid::new(
                "batch_size",
                format!("must be between 1 and {MAX_READ_LIMIT}, got {size}"),
            ));
        }
        self.batch_size = size;
        Ok(self)
    }

    /// Retries a failed batch as `retry` says.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Runs continuously or once.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Holds the partition's lease for `ttl` at a time, renewed every third of it. A worker
    /// that stops renewing loses the partition after `ttl`.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.max(Duration::from_millis(30));
        self
    }

    /// Names this worker in leases (default: a random id).
    pub fn worker(mut self, worker: impl Into<String>) -> Self {
        self.worker = worker.into();
        self
    }

    /// The projection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The boundary it follows.
    pub fn boundary(&self) -> &BoundaryName {
        &self.boundary
    }

    /// Runs in replica set `set` (set by the worker; see [`crate::workers`]).
    pub(crate) fn in_replica_set(mut self, set: &str) -> Self {
        self.replica_set = Some(set.to_owned());
        self
    }

    /// The name of this partition's lease and checkpoint:
    /// `projection:<boundary>:<name>:<index>/<count>`, or, run by a replica-set worker,
    /// `projection@<set>:<boundary>:<name>:<index>/<count>`. The count is part of it, so a
    /// projection repartitioned to another count starts from the beginning (rebuild its read
    /// model).
    pub fn checkpoint_name(&self) -> String {
        if let Some(set) = &self.replica_set {
            return format!(
                "{}{}:{}:{}/{}",
                crate::workers::claim_prefix(set),
                self.boundary,
                self.name,
                self.partition.index(),
                self.partition.count()
            );
        }
        format!(
            "projection:{}:{}:{}/{}",
            self.boundary,
            self.name,
            self.partition.index(),
            self.partition.count()
        )
    }

    /// `name[index/count]`, for logs and errors.
    pub fn label(&self) -> String {
        format!(
            "{}[{}/{}]",
            self.name,
            self.partition.index(),
            self.partition.count()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boundary() -> BoundaryName {
        BoundaryName::new("bank").expect("valid")
    }

    #[test]
    fn names_and_batch_sizes_are_checked() {
        assert!(ProjectionConfig::new("balances.v2-a_b", boundary()).is_ok());
        assert_eq!(
            ProjectionConfig::new("", boundary())
                .expect_err("empty")
                .field,
            "projection"
        );
        assert!(ProjectionConfig::new("a:b", boundary()).is_err());
        assert!(ProjectionConfig::new("x".repeat(MAX_NAME_LEN + 1), boundary()).is_err());
        let config = ProjectionConfig::new("p", boundary()).expect("valid");
        assert_eq!(
            config.clone().batch_size(0).expect_err("zero").field,
            "batch_size"
        );
        assert!(config.batch_size(10_001).is_err());
    }

    #[test]
    fn checkpoint_names_include_the_partitioning() {
        let config = ProjectionConfig::new("balances", boundary())
            .expect("valid")
            .partition(Partition::new(2, 4).expect("valid"));
        assert_eq!(config.checkpoint_name(), "projection:bank:balances:2/4");
        assert_eq!(config.label(), "balances[2/4]");
    }
}
