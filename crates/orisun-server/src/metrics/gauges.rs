//! [`Sampler`]: the gauges read when `/metrics` is scraped rather than recorded as things
//! happen: subscription counts and lag, the NATS publishers' lag, the projection replica sets
//! on the same storage (generation, workers, each partition's lag, epoch and holder), the
//! PostgreSQL pool, and the process (RSS, CPU, open files, start time, through
//! `metrics-process`).

use super::store::SubscriptionTracker;
use super::{
    PARTITION_EPOCH, PARTITION_LAG, PARTITION_UNHELD, POOL_CONNECTIONS, POOL_WAITING,
    PUBLISHER_LAG, REPLICA_SET_GENERATION, REPLICA_SET_WORKERS, SUBSCRIPTIONS, SUBSCRIPTION_LAG,
};
use orisun_core::{BoundaryName, Position};
use orisun_projections::workers::replica_sets_status;
use orisun_store::{Coordination, EventStore, Membership};
use parking_lot::Mutex;
use std::collections::BTreeSet;
use std::sync::Arc;

/// How many connections a pool holds, as sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    /// Connections handed out.
    pub in_use: usize,
    /// Connections open and free.
    pub idle: usize,
    /// The most the pool opens.
    pub max: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
}

/// Reads the pool's usage; `None` for backends without a pool.
pub type PoolProbe = Arc<dyn Fn() -> PoolUsage + Send + Sync>;

/// Samples the scrape-time gauges.
pub struct Sampler {
    store: Arc<dyn EventStore>,
    subscriptions: Arc<SubscriptionTracker>,
    /// Where the NATS publishers keep their checkpoints, when NATS publishing is on; the admin
    /// boundary is never published.
    publishers: Option<(Arc<dyn Coordination>, BoundaryName)>,
    pool: Option<PoolProbe>,
    /// The projection workers' replica sets on the same storage.
    replica_sets: Option<Arc<dyn Membership>>,
    process: metrics_process::Collector,
    /// Boundaries whose subscription gauges were set, so they return to zero.
    reported: Mutex<BTreeSet<BoundaryName>>,
}

impl Sampler {
    /// Samples subscriptions of `store` from `subscriptions`.
    pub fn new(store: Arc<dyn EventStore>, subscriptions: Arc<SubscriptionTracker>) -> Self {
        let process = metrics_process::Collector::default();
        Self {
            store,
            subscriptions,
            publishers: None,
            pool: None,
            replica_sets: None,
            process,
            reported: Mutex::new(BTreeSet::new()),
        }
    }

    /// Also samples the lag of the NATS publishers, whose checkpoints are in `coordination`.
    pub fn with_publishers(
        mut self,
        coordination: Arc<dyn Coordination>,
        admin_boundary: BoundaryName,
    ) -> Self {
        self.publishers = Some((coordination, admin_boundary));
        self
    }

    /// Also samples the projection replica sets kept in `membership`.
    pub fn with_replica_sets(mut self, membership: Arc<dyn Membership>) -> Self {
        self.replica_sets = Some(membership);
        self
    }

    /// Also samples a connection pool.
    pub fn with_pool(mut self, pool: Option<PoolProbe>) -> Self {
        self.pool = pool;
        self
    }

    /// Sets every scrape-time gauge. Store errors leave a gauge at its last value (and are
    /// logged at debug level): a scrape never fails because of one.
    pub async fn sample(&self) {
        self.process.collect();
        if let Some(pool) = &self.pool {
            let usage = pool();
            metrics::gauge!(POOL_CONNECTIONS, "state" => "in_use").set(usage.in_use as f64);
            metrics::gauge!(POOL_CONNECTIONS, "state" => "idle").set(usage.idle as f64);
            metrics::gauge!(POOL_CONNECTIONS, "state" => "max").set(usage.max as f64);
            metrics::gauge!(POOL_WAITING).set(usage.waiting as f64);
        }
        self.sample_subscriptions().await;
        self.sample_publishers().await;
        self.sample_replica_sets().await;
    }

    async fn sample_replica_sets(&self) {
        let Some(membership) = &self.replica_sets else {
            return;
        };
        let sets = match replica_sets_status(membership.as_ref(), Some(self.store.as_ref())).await {
            Ok(sets) => sets,
            Err(e) => {
                tracing::debug!(error = %e, "replica sets not sampled");
                return;
            }
        };
        for set in sets {
            metrics::gauge!(REPLICA_SET_GENERATION, "set" => set.name.clone())
                .set(set.generation as f64);
            metrics::gauge!(REPLICA_SET_WORKERS, "set" => set.name.clone())
                .set(set.members.len() as f64);
            for claim in set.claims {
                let labels = [
                    ("set", set.name.clone()),
                    ("boundary", claim.boundary),
                    ("projection", claim.projection),
                    ("partition", claim.partition.to_string()),
                ];
                if let Some(lag) = claim.lag {
                    metrics::gauge!(PARTITION_LAG, &labels).set(lag as f64);
                }
                metrics::gauge!(PARTITION_EPOCH, &labels).set(claim.epoch as f64);
                metrics::gauge!(PARTITION_UNHELD, &labels).set(if claim.holder.is_some() {
                    0.0
                } else {
                    1.0
                });
            }
        }
    }

    async fn sample_subscriptions(&self) {
        let open = self.subscriptions.snapshot();
        let boundaries: BTreeSet<BoundaryName> = {
            let mut reported = self.reported.lock();
            reported.extend(open.keys().cloned());
            reported.clone()
        };
        for boundary in boundaries {
            let name = boundary.as_str().to_owned();
            let Some((count, lowest)) = open.get(&boundary) else {
                metrics::gauge!(SUBSCRIPTIONS, "boundary" => name.clone()).set(0.0);
                metrics::gauge!(SUBSCRIPTION_LAG, "boundary" => name).set(0.0);
                continue;
            };
            metrics::gauge!(SUBSCRIPTIONS, "boundary" => name.clone()).set(*count as f64);
            match self.store.head(&boundary).await {
                Ok(head) => metrics::gauge!(SUBSCRIPTION_LAG, "boundary" => name).set(lag(
                    head,
                    Some(*lowest),
                )
                    as f64),
                Err(e) => tracing::debug!(%boundary, error = %e, "subscription lag not sampled"),
            }
        }
    }

    async fn sample_publishers(&self) {
        let Some((coordination, admin)) = &self.publishers else {
            return;
        };
        let boundaries = match self.store.boundaries().await {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(error = %e, "publisher lag not sampled");
                return;
            }
        };
        for boundary in boundaries.into_iter().filter(|b| b != admin) {
            let name = orisun_nats::naming::publisher_lease_name(&boundary);
            let sampled = async {
                let head = self.store.head(&boundary).await?;
                let checkpoint = coordination.load_checkpoint(&name).await?;
                Ok::<_, orisun_store::StoreError>(lag(head, checkpoint))
            };
            match sampled.await {
                Ok(lag) => {
                    metrics::gauge!(PUBLISHER_LAG, "boundary" => boundary.as_str().to_owned())
                        .set(lag as f64)
                }
                Err(e) => tracing::debug!(%boundary, error = %e, "publisher lag not sampled"),
            }
        }
    }
}

/// Events of a log whose head is `head` after the `delivered` position (none: all of them).
pub fn lag(head: Position, delivered: Option<Position>) -> i64 {
    let last = match delivered {
        Some(p) if !p.is_beginning() => p.prepare,
        _ => -1,
    };
    (head.prepare - last).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_counts_events_after_the_delivered_position() {
        let head = Position::new(10, 9);
        assert_eq!(lag(head, None), 10);
        assert_eq!(lag(head, Some(Position::BEFORE_FIRST)), 10);
        assert_eq!(
            lag(head, Some(Position::new(0, 0))),
            10,
            "{{0,0}} is the beginning"
        );
        assert_eq!(lag(head, Some(Position::new(5, 4))), 5);
        assert_eq!(lag(head, Some(head)), 0);
        assert_eq!(lag(Position::BEFORE_FIRST, None), 0);
    }
}
