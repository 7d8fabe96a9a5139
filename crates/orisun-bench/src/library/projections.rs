//! The projection scenarios of library mode: a one-off processor over the preloaded boundary
//! against a plain paged read of the same events, and the same projection split into 1, 2
//! and 4 partitions with a handler that sleeps once per batch.
//!
//! On SQLite the processor is the generic one (`Processor::new`, checkpoints in a
//! `LocalCoordination`); on PostgreSQL it is `orisun_projections::postgres::processor`, whose
//! handler runs in the transaction that moves the checkpoint (here doing nothing in it).

use super::layout::Layout;
use super::{Backing, Library, Tally};
use crate::report::{BaselineResult, LibraryReport, ScenarioResult};
use crate::rounds::median_round;
use anyhow::Context;
use async_trait::async_trait;
use orisun_core::{Position, ReadRequest};
use orisun_postgres::tokio_postgres::Transaction;
use orisun_postgres::PostgresCoordination;
use orisun_projections::postgres::TransactionalHandler;
use orisun_projections::{
    Batch, Handler, HandlerError, Mode, Partition, Processor, ProjectionConfig,
};
use orisun_store::{Coordination, LocalCoordination};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Events per batch of the throughput projection and pages of its baseline.
const PAGE: u32 = 1_000;

/// Events per batch of the partitioned projection.
const PARTITION_BATCH: u32 = 100;

/// What the partitioned projection's handler sleeps per batch: work that does not scale with
/// the batch's size (a round trip to another system).
const PARTITION_PAUSE: Duration = Duration::from_millis(1);

/// The worker counts of the partitioned projection; the first is what the others are compared
/// with.
const WORKERS: [u32; 3] = [1, 2, 4];

/// A handler that counts what it is given and sleeps `pause` per batch.
#[derive(Clone)]
struct Work {
    handled: Arc<AtomicU64>,
    batches: Arc<AtomicU64>,
    progress: Arc<AtomicU64>,
    pause: Duration,
}

impl Work {
    fn new(progress: Arc<AtomicU64>, pause: Duration) -> Self {
        Self {
            handled: Arc::default(),
            batches: Arc::default(),
            progress,
            pause,
        }
    }

    async fn apply(&self, batch: &Batch) {
        if !self.pause.is_zero() {
            tokio::time::sleep(self.pause).await;
        }
        let n = batch.events.len() as u64;
        self.handled.fetch_add(n, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.progress.fetch_add(n, Ordering::Relaxed);
    }
}

#[async_trait]
impl Handler for Work {
    async fn handle(&self, batch: &Batch) -> Result<(), HandlerError> {
        self.apply(batch).await;
        Ok(())
    }
}

#[async_trait]
impl TransactionalHandler for Work {
    async fn handle(&self, _tx: &Transaction<'_>, batch: &Batch) -> Result<(), HandlerError> {
        self.apply(batch).await;
        Ok(())
    }
}

impl Library {
    /// Returns where this backend's processors keep leases and checkpoints: a fresh
    /// `LocalCoordination` on SQLite, the store's tables on PostgreSQL.
    fn coordination(&self) -> Arc<dyn Coordination> {
        match &self.backing {
            Backing::Sqlite { .. } => Arc::new(LocalCoordination::new()),
            Backing::Postgres(store) => Arc::new(PostgresCoordination::new(store.pool().clone())),
        }
    }

    fn processor(
        &self,
        coordination: &Arc<dyn Coordination>,
        config: ProjectionConfig,
        work: Work,
    ) -> Processor {
        match &self.backing {
            Backing::Sqlite { .. } => {
                Processor::new(self.store.clone(), coordination.clone(), config, work)
            }
            Backing::Postgres(store) => {
                orisun_projections::postgres::processor(store, config, work)
            }
        }
    }

    fn describe_processor(&self) -> &'static str {
        match &self.backing {
            Backing::Sqlite { .. } => "Processor::new with LocalCoordination",
            Backing::Postgres(_) => "postgres::processor (handler in the checkpoint's transaction)",
        }
    }

    fn config(&self, name: String) -> anyhow::Result<ProjectionConfig> {
        Ok(ProjectionConfig::new(name, self.boundary.clone())?.mode(Mode::OneOff))
    }

    /// Runs a fresh one-off projection over the whole boundary in batches of [`PAGE`] with a
    /// handler that does nothing.
    pub(super) async fn projection(
        &self,
        layout: &Layout,
        round: u32,
    ) -> anyhow::Result<ScenarioResult> {
        let name = format!("bench-{}-throughput-{round}", self.run_id);
        let config = self.config(name)?.batch_size(PAGE)?;
        let coordination = self.coordination();
        let wanted = layout.events();
        self.measured("lib_projection", |counter| async move {
            let work = Work::new(counter, Duration::ZERO);
            let processor = self.processor(&coordination, config, work.clone());
            let start = Instant::now();
            processor.run(CancellationToken::new()).await?;
            let elapsed = start.elapsed();
            let handled = work.handled.load(Ordering::Relaxed);
            anyhow::ensure!(handled == wanted, "handled {handled} events of {wanted}");
            let tally = Tally {
                events: handled,
                requests: work.batches.load(Ordering::Relaxed),
                elapsed,
                ..Tally::default()
            };
            Ok(tally.scenario(
                "lib_projection",
                format!(
                    "one-off projection over {wanted} events, batches of {PAGE}, a handler that \
                     does nothing; {}",
                    self.describe_processor()
                ),
            ))
        })
        .await
    }

    /// Reads the whole preloaded boundary in pages of [`PAGE`] from the start.
    pub(super) async fn store_paged_read(&self, layout: &Layout) -> anyhow::Result<BaselineResult> {
        let (store, boundary) = (self.store.clone(), self.boundary.clone());
        let wanted = layout.events();
        self.measured("lib_store_paged_read", |counter| async move {
            let mut tally = Tally::default();
            let mut from: Option<Position> = None;
            let start = Instant::now();
            while tally.events < wanted {
                let t = Instant::now();
                let page = store
                    .read(&boundary, &ReadRequest::forward(from, PAGE))
                    .await?;
                let Some(last) = page.last().map(|e| e.position) else {
                    break;
                };
                tally.ok(t.elapsed(), page.len() as u64);
                counter.fetch_add(page.len() as u64, Ordering::Relaxed);
                // The first position after `last`: reads start at their bound, inclusive.
                from = Some(Position::new(last.commit, last.prepare + 1));
            }
            tally.elapsed = start.elapsed();
            anyhow::ensure!(tally.events >= wanted, "read {} of {wanted}", tally.events);
            Ok(tally.baseline(
                "lib_store_paged_read",
                format!("EventStore::read of {wanted} events in pages of {PAGE} from the start"),
            ))
        })
        .await
    }

    /// Runs the partitioned projection with each worker count of [`WORKERS`] in every round,
    /// keeps the round whose speed-up of the most workers is the median, and records every
    /// round's speed-ups.
    pub(super) async fn partition_rounds(
        &self,
        report: &mut LibraryReport,
        layout: &Layout,
        rounds: u32,
    ) -> anyhow::Result<()> {
        let mut runs: Vec<[Option<ScenarioResult>; 3]> = Vec::new();
        for round in 0..rounds {
            let mut run: [Option<ScenarioResult>; 3] = Default::default();
            for (slot, workers) in run.iter_mut().zip(WORKERS) {
                *slot = Some(self.partitions(layout, workers, round).await?);
            }
            runs.push(run);
        }
        let rate = |s: &Option<ScenarioResult>| s.as_ref().map_or(0.0, |s| s.events_per_s);
        let speed_ups: Vec<[f64; 3]> = runs
            .iter()
            .map(|r| std::array::from_fn(|k| rate(&r[k]) / rate(&r[0]).max(f64::MIN_POSITIVE)))
            .collect();
        let baselines = vec![None; runs.len()];
        let (mut kept, _) = median_round(runs, baselines, |r, _| {
            Some(rate(&r[2]) / rate(&r[0]).max(f64::MIN_POSITIVE))
        });
        if speed_ups.len() > 1 {
            for (k, slot) in kept.iter_mut().enumerate().skip(1) {
                if let Some(s) = slot {
                    s.round_ratios = speed_ups.iter().map(|r| r[k]).collect();
                }
            }
        }
        report.scenarios.extend(kept.into_iter().flatten());
        Ok(())
    }

    /// Runs the one-off projection split into `workers` partitions, each in its own task,
    /// over the plan's last `partition_events` preloaded events (all of them when there are
    /// fewer): a one-off run from a checkpoint placed before them.
    async fn partitions(
        &self,
        layout: &Layout,
        workers: u32,
        round: u32,
    ) -> anyhow::Result<ScenarioResult> {
        let id = format!("lib_partitions_{workers}");
        let events = layout.events();
        let wanted = events.min(self.plan.partition_events);
        // The checkpoint of a run that has handled every event before the last `wanted`.
        let start_after = match events - wanted {
            0 => None,
            before => Some(
                layout
                    .position_of(before - 1)
                    .context("the position of the partitioned projection's start")?,
            ),
        };
        let name = format!("bench-{}-partitions-{round}", self.run_id);
        let coordination = self.coordination();
        self.measured(&id.clone(), |counter| async move {
            let work = Work::new(counter, PARTITION_PAUSE);
            let mut processors = Vec::new();
            for index in 0..workers {
                let config = self
                    .config(name.clone())?
                    .batch_size(PARTITION_BATCH)?
                    .partition(Partition::new(index, workers)?);
                if let Some(at) = start_after {
                    coordination
                        .save_checkpoint(&config.checkpoint_name(), at, None)
                        .await
                        .context("placing the partition's checkpoint")?;
                }
                processors.push(self.processor(&coordination, config, work.clone()));
            }
            let start = Instant::now();
            let tasks: Vec<_> = processors
                .into_iter()
                .map(|p| tokio::spawn(p.run(CancellationToken::new())))
                .collect();
            for task in tasks {
                task.await.context("a partition's task")??;
            }
            let elapsed = start.elapsed();
            let handled = work.handled.load(Ordering::Relaxed);
            anyhow::ensure!(handled == wanted, "handled {handled} events of {wanted}");
            let tally = Tally {
                events: handled,
                requests: work.batches.load(Ordering::Relaxed),
                elapsed,
                ..Tally::default()
            };
            let over = if wanted < events {
                format!("the last {wanted} of {events} events")
            } else {
                format!("{wanted} events")
            };
            Ok(tally.scenario(
                &id,
                format!(
                    "one-off projection over {over} in {workers} partition(s), one task each, \
                     batches of {PARTITION_BATCH}, a handler that sleeps {} ms per batch; {}",
                    PARTITION_PAUSE.as_millis(),
                    self.describe_processor()
                ),
            ))
        })
        .await
    }
}
