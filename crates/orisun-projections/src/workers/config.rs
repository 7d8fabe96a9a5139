//! [`WorkerConfig`]: which replica set a worker joins, how many partitions the set has, how
//! long its heartbeats and partition leases last, and its id; validated when it is built.

use crate::workers::WorkerError;
use orisun_core::Invalid;
use orisun_store::{validate_set_name, StoreError, RESERVED_SET_PREFIX};
use std::time::Duration;

/// The most partitions a replica set may have.
pub const MAX_PARTITIONS: u32 = 1_024;

/// How a worker takes part in its replica set.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub(crate) set: String,
    pub(crate) partitions: u32,
    pub(crate) ttl: Duration,
    pub(crate) worker: String,
}

impl WorkerConfig {
    /// A worker of replica set `set` (1 to 100 bytes of `[A-Za-z0-9_.-]`, not starting with
    /// `orisun.`, which is reserved) whose projections
    /// are split into `partitions` partitions (1 to [`MAX_PARTITIONS`]; every worker of the set
    /// must say the same), with a 10 s TTL and a random id.
    pub fn new(set: impl Into<String>, partitions: u32) -> Result<Self, WorkerError> {
        let set = set.into();
        validate_set_name(&set).map_err(|e| match e {
            StoreError::Invalid(invalid) => WorkerError::Invalid(invalid),
            other => WorkerError::Invalid(Invalid::new("replica_set", other.to_string())),
        })?;
        if set.starts_with(RESERVED_SET_PREFIX) {
            return Err(WorkerError::Invalid(Invalid::new(
                "replica_set",
                format!("names starting with {RESERVED_SET_PREFIX:?} are reserved for Orisun"),
            )));
        }
        if partitions == 0 || partitions > MAX_PARTITIONS {
            return Err(WorkerError::Invalid(Invalid::new(
                "partitions",
                format!("must be 1 to {MAX_PARTITIONS}, got {partitions}"),
            )));
        }
        Ok(Self {
            set,
            partitions,
            ttl: Duration::from_secs(10),
            worker: format!("worker-{}", uuid::Uuid::new_v4().simple()),
        })
    }

    /// A worker that stops heartbeating is dropped from the set, and loses its partitions
    /// (their leases), after `ttl` (at least 300 ms). Heartbeats and lease renewals are sent
    /// every third of it.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.max(Duration::from_millis(300));
        self
    }

    /// Names this worker (default: a random id). Ids must be unique within a set.
    pub fn worker(mut self, worker: impl Into<String>) -> Self {
        self.worker = worker.into();
        self
    }

    /// The replica set's name.
    pub fn set(&self) -> &str {
        &self.set
    }

    /// The partition count.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// This worker's id.
    pub fn worker_id(&self) -> &str {
        &self.worker
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(result: Result<WorkerConfig, WorkerError>) -> String {
        match result {
            Err(WorkerError::Invalid(i)) => i.field,
            other => panic!("accepted: {other:?}"),
        }
    }

    #[test]
    fn set_names_and_partition_counts_are_checked() {
        assert!(WorkerConfig::new("main-projections", 8).is_ok());
        assert_eq!(field(WorkerConfig::new("", 8)), "replica_set");
        assert_eq!(field(WorkerConfig::new("a b", 8)), "replica_set");
        assert_eq!(field(WorkerConfig::new("orisun.nodes", 1)), "replica_set");
        assert_eq!(field(WorkerConfig::new("main", 0)), "partitions");
        assert_eq!(
            field(WorkerConfig::new("main", MAX_PARTITIONS + 1)),
            "partitions"
        );
    }
}
