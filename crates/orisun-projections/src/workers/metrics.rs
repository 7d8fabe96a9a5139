//! The replica-set workers' Prometheus metrics, recorded through the `metrics` facade (the
//! server installs the exporter; without one, recording costs next to nothing):
//!
//! | metric | kind | labels | what |
//! |---|---|---|---|
//! | `orisun_replica_set_generation` | gauge | `set` | the set's generation as this worker last saw it |
//! | `orisun_projection_partitions_held` | gauge | `set`, `worker` | partitions this worker runs |
//! | `orisun_projection_partitions_lost_total` | counter | `set`, `worker` | partitions lost to another worker or to a lapsed membership (their last batch not committed) |
//! | `orisun_projection_checkpoint` | gauge | `set`, `projection`, `partition` | the checkpoint's prepare position |
//! | `orisun_projection_lag` | gauge | `set`, `projection`, `partition` | events between checkpoint and head |

use crate::progress::Progress;
use crate::workers::WorkerConfig;

pub(crate) fn membership(config: &WorkerConfig, generation: u64, held: usize) {
    metrics::gauge!("orisun_replica_set_generation", "set" => config.set.clone())
        .set(generation as f64);
    metrics::gauge!("orisun_projection_partitions_held", "set" => config.set.clone(), "worker" => config.worker.clone())
        .set(held as f64);
}

pub(crate) fn partitions_lost(config: &WorkerConfig, count: u64) {
    metrics::counter!("orisun_projection_partitions_lost_total", "set" => config.set.clone(), "worker" => config.worker.clone())
        .increment(count);
}

/// The labels of one projection partition's progress gauges.
pub(crate) struct ProgressLabels {
    set: String,
    projection: String,
    partition: String,
}

impl ProgressLabels {
    pub(crate) fn new(set: &str, projection: &str, partition: u32) -> Self {
        Self {
            set: set.to_owned(),
            projection: projection.to_owned(),
            partition: partition.to_string(),
        }
    }

    pub(crate) fn record(&self, progress: &Progress) {
        let labels = [
            ("set", self.set.clone()),
            ("projection", self.projection.clone()),
            ("partition", self.partition.clone()),
        ];
        metrics::gauge!("orisun_projection_checkpoint", &labels)
            .set(progress.checkpoint.prepare as f64);
        metrics::gauge!("orisun_projection_lag", &labels).set(progress.lag() as f64);
    }
}
