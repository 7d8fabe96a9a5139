//! [`Worker`]: one member of a replica set. It joins the set, heartbeats, runs the partitions
//! the assignment gives it (one [`Processor`] per projection per partition), hands partitions
//! over when the membership changes, and drops every partition when its heartbeats lapse.

use crate::config::{Mode, ProjectionConfig};
use crate::error::ProjectionError;
use crate::partition::Partition;
use crate::processor::Processor;
use crate::runner::Failure;
use crate::workers::assignment::{assign, Member};
use crate::workers::metrics;
use crate::workers::{WorkerConfig, WorkerError, WorkerStatus};
use orisun_store::{Membership, SetView, StoreError};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Builds the processor of one partition of a projection from the configuration the worker
/// derived (partition, worker id, lease TTL and replica set filled in): `Processor::new` or
/// `postgres::processor` with a handler.
pub type BuildProcessor = Arc<dyn Fn(ProjectionConfig) -> Processor + Send + Sync>;

struct WorkerProjection {
    config: ProjectionConfig,
    build: BuildProcessor,
}

/// A member of a replica set running a share of its projections' partitions.
pub struct Worker {
    config: WorkerConfig,
    membership: Arc<dyn Membership>,
    projections: Vec<WorkerProjection>,
    status: watch::Sender<WorkerStatus>,
}

/// One projection of one partition, as the worker tracks it.
type Unit = (u32, usize);

/// What the worker loop keeps between events.
struct Running {
    /// The last view of the set.
    view: SetView,
    /// The partitions this worker runs, each with the token that stops its processors.
    partitions: BTreeMap<u32, CancellationToken>,
    /// Processors whose tasks have not ended (some may be stopping after a hand-over).
    alive: BTreeSet<Unit>,
    /// Processors that failed for a transient reason, and when they may start again.
    backoff: BTreeMap<Unit, Instant>,
    tasks: JoinSet<(Unit, Result<(), ProjectionError>)>,
    /// The membership is valid until then (counted from when the last heartbeat was sent).
    valid_until: Instant,
    next_beat: Instant,
    lost: u64,
    stop: CancellationToken,
}

impl Worker {
    /// A worker of the replica set `config` names, keeping its membership in `membership`
    /// (`PostgresStore::membership` across processes; `LocalMembership` within one process).
    pub fn new(membership: Arc<dyn Membership>, config: WorkerConfig) -> Self {
        let status = WorkerStatus::new(&config);
        Self {
            config,
            membership,
            projections: Vec::new(),
            status: watch::Sender::new(status),
        }
    }

    /// Runs `config`'s projection in this set: for every partition the worker is given, `build`
    /// gets `config` with that partition, the worker's id, its TTL as the lease TTL, the
    /// replica set (part of lease and checkpoint names) and continuous mode. A custom partition
    /// key of `config` is kept.
    pub fn projection(
        mut self,
        config: ProjectionConfig,
        build: impl Fn(ProjectionConfig) -> Processor + Send + Sync + 'static,
    ) -> Self {
        self.projections.push(WorkerProjection {
            config,
            build: Arc::new(build),
        });
        self
    }

    /// The configuration.
    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// Follows what this worker holds, its view of the set and how many partitions it lost.
    pub fn status(&self) -> watch::Receiver<WorkerStatus> {
        self.status.subscribe()
    }

    /// Joins the set and runs until `cancel` fires (each processor finishes its batch in hand
    /// and releases its partition, then the worker leaves the set) or a processor fails for a
    /// reason other than losing its partition or a transient store error. A refused join (a
    /// partition count that disagrees with the set's) fails at once.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), WorkerError> {
        if self.projections.is_empty() {
            return Err(WorkerError::NoProjections);
        }
        let span = tracing::info_span!("replica_set_worker", set = %self.config.set, worker = %self.config.worker, partitions = self.config.partitions);
        self.run_inner(cancel).instrument(span).await
    }

    fn period(&self) -> Duration {
        self.config.ttl / 3
    }

    fn retry(&self) -> Duration {
        (self.config.ttl / 12).clamp(Duration::from_millis(10), Duration::from_millis(500))
    }

    async fn join(
        &self,
        cancel: &CancellationToken,
    ) -> Result<Option<(SetView, Instant)>, WorkerError> {
        let c = &self.config;
        loop {
            let asked = Instant::now();
            match self
                .membership
                .heartbeat(&c.set, &c.worker, c.partitions, &[], c.ttl)
                .await
            {
                Ok(view) => return Ok(Some((view, asked))),
                Err(e @ StoreError::Unavailable { .. }) => {
                    tracing::warn!(error = %e, "cannot join the replica set yet; retrying");
                }
                Err(source) => {
                    return Err(WorkerError::Refused {
                        set: c.set.clone(),
                        source,
                    })
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return Ok(None),
                _ = tokio::time::sleep(self.period()) => {}
            }
        }
    }

    async fn run_inner(self, cancel: CancellationToken) -> Result<(), WorkerError> {
        let Some((view, asked)) = self.join(&cancel).await? else {
            return Ok(());
        };
        tracing::info!(
            generation = view.generation,
            members = view.members.len(),
            "joined the replica set"
        );
        let mut s = Running {
            view,
            partitions: BTreeMap::new(),
            alive: BTreeSet::new(),
            backoff: BTreeMap::new(),
            tasks: JoinSet::new(),
            valid_until: asked + self.config.ttl,
            next_beat: asked + self.period(),
            lost: 0,
            stop: cancel.child_token(),
        };
        self.rebalance(&mut s);
        let failure = loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break None,
                Some(joined) = s.tasks.join_next(), if !s.tasks.is_empty() => {
                    if let Some(failure) = self.finished(&mut s, joined) {
                        break Some(failure);
                    }
                    self.rebalance(&mut s);
                }
                _ = tokio::time::sleep_until(s.next_beat) => {
                    if let Err(e) = self.beat(&mut s).await {
                        self.shut_down(&mut s).await;
                        return Err(e);
                    }
                    self.rebalance(&mut s);
                }
            }
        };
        self.shut_down(&mut s).await;
        match failure {
            Some(failure) => Err(WorkerError::Failed(vec![failure])),
            None => Ok(()),
        }
    }

    /// Stops every processor (each finishes its batch in hand and releases its lease), waits
    /// for them, and leaves the set.
    async fn shut_down(&self, s: &mut Running) {
        s.stop.cancel();
        while let Some(joined) = s.tasks.join_next().await {
            if let Ok(((p, j), Err(e))) = joined {
                tracing::warn!(partition = p, projection = %self.projections[j].config.name, error = %e, "processor ended with an error while stopping");
            }
        }
        s.partitions.clear();
        s.alive.clear();
        if let Err(e) = self
            .membership
            .leave(&self.config.set, &self.config.worker)
            .await
        {
            tracing::warn!(error = %e, "could not leave the replica set; the membership will expire");
        }
        self.publish(s);
        tracing::info!("left the replica set");
    }

    /// Sends one heartbeat. A heartbeat that succeeds only after the membership lapsed (the
    /// process was paused, the database unreachable) first drops every partition: their leases
    /// may have moved, and the set may have counted this worker out.
    async fn beat(&self, s: &mut Running) -> Result<(), WorkerError> {
        let c = &self.config;
        let held: Vec<u32> = s.partitions.keys().copied().collect();
        let asked = Instant::now();
        if asked >= s.valid_until {
            self.drop_all(s, "the membership lapsed before this heartbeat");
        }
        let beat = self
            .membership
            .heartbeat(&c.set, &c.worker, c.partitions, &held, c.ttl);
        match tokio::time::timeout(c.ttl, beat).await {
            Ok(Ok(view)) => {
                if view.generation != s.view.generation {
                    tracing::info!(
                        generation = view.generation,
                        members = view.members.len(),
                        "replica set changed"
                    );
                }
                s.view = view;
                s.valid_until = asked + c.ttl;
                s.next_beat = asked + self.period();
                Ok(())
            }
            Ok(Err(StoreError::Invalid(invalid))) => Err(WorkerError::Refused {
                set: c.set.clone(),
                source: StoreError::Invalid(invalid),
            }),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "heartbeat failed; retrying");
                s.next_beat = Instant::now() + self.retry();
                Ok(())
            }
            Err(_) => {
                tracing::warn!("heartbeat got no answer; retrying");
                s.next_beat = Instant::now() + self.retry();
                Ok(())
            }
        }
    }

    /// Stops every partition at once (fail-safe: this worker may no longer be a member).
    fn drop_all(&self, s: &mut Running, why: &str) {
        if s.partitions.is_empty() {
            return;
        }
        let count = s.partitions.len() as u64;
        for token in s.partitions.values() {
            token.cancel();
        }
        s.partitions.clear();
        s.lost += count;
        metrics::partitions_lost(&self.config, count);
        tracing::warn!(partitions = count, reason = why, "dropped every partition");
        self.publish(s);
    }

    /// Handles a processor task that ended; returns a failure that stops the worker.
    fn finished(
        &self,
        s: &mut Running,
        joined: Result<(Unit, Result<(), ProjectionError>), tokio::task::JoinError>,
    ) -> Option<Failure> {
        let ((p, j), result) = match joined {
            Ok(done) => done,
            Err(e) => {
                return Some(Failure {
                    processor: "a processor task".to_owned(),
                    error: ProjectionError::Store {
                        projection: "?".to_owned(),
                        partition: 0,
                        source: StoreError::internal(format!("panicked: {e}")),
                    },
                })
            }
        };
        s.alive.remove(&(p, j));
        let name = &self.projections[j].config.name;
        match result {
            Ok(()) => None,
            Err(e) if is_lease_loss(&e) => {
                // A partition dropped with the whole membership was counted then.
                if s.partitions.contains_key(&p) {
                    s.lost += 1;
                    metrics::partitions_lost(&self.config, 1);
                }
                tracing::warn!(partition = p, projection = %name, error = %e, "partition lost; its last batch was not committed");
                s.backoff.insert((p, j), Instant::now() + self.period());
                self.publish(s);
                None
            }
            Err(e) if is_transient(&e) => {
                tracing::warn!(partition = p, projection = %name, error = %e, "processor stopped on a transient error; restarting it");
                s.backoff.insert((p, j), Instant::now() + self.period());
                None
            }
            Err(error) => Some(Failure {
                processor: format!("{name}[{p}/{}]", self.config.partitions),
                error,
            }),
        }
    }

    /// Brings the running partitions in line with the assignment of the last view: stops the
    /// ones given to others (they release their leases), starts the ones given to this worker
    /// (they wait for the previous holder's lease). Does nothing while the membership lapsed.
    fn rebalance(&self, s: &mut Running) {
        let now = Instant::now();
        if now >= s.valid_until {
            return;
        }
        let me = &self.config.worker;
        let members: Vec<Member> = s
            .view
            .members
            .iter()
            .map(|m| Member {
                worker: m.worker.clone(),
                held: if &m.worker == me {
                    s.partitions.keys().copied().collect()
                } else {
                    m.held.clone()
                },
            })
            .collect();
        let target = assign(self.config.partitions, &members)
            .remove(me)
            .unwrap_or_default();
        let handed: Vec<u32> = s
            .partitions
            .keys()
            .filter(|p| !target.contains(p))
            .copied()
            .collect();
        for p in handed {
            if let Some(token) = s.partitions.remove(&p) {
                tracing::info!(partition = p, "handing the partition over");
                token.cancel();
            }
        }
        for p in target {
            let token = s.partitions.entry(p).or_insert_with(|| {
                tracing::info!(partition = p, "taking the partition");
                s.stop.child_token()
            });
            let token = token.clone();
            for j in 0..self.projections.len() {
                let unit = (p, j);
                if s.alive.contains(&unit) || s.backoff.get(&unit).is_some_and(|t| *t > now) {
                    continue;
                }
                s.backoff.remove(&unit);
                s.alive.insert(unit);
                self.spawn(&mut s.tasks, unit, token.clone());
            }
        }
        self.publish(s);
    }

    fn spawn(
        &self,
        tasks: &mut JoinSet<(Unit, Result<(), ProjectionError>)>,
        (p, j): Unit,
        token: CancellationToken,
    ) {
        let projection = &self.projections[j];
        let mut partition =
            Partition::new(p, self.config.partitions).expect("assigned partitions are in range");
        if let Some(key) = projection.config.partition.key() {
            partition = partition.with_key(key);
        }
        let config = projection
            .config
            .clone()
            .partition(partition)
            .worker(self.config.worker.clone())
            .lease_ttl(self.config.ttl)
            .mode(Mode::Continuous)
            .in_replica_set(&self.config.set);
        let labels = metrics::ProgressLabels::new(&self.config.set, &config.name, p);
        let processor = (projection.build)(config);
        let mut progress = processor.progress();
        tasks.spawn(async move {
            let watch = async {
                while progress.changed().await.is_ok() {
                    let now = progress.borrow_and_update().clone();
                    labels.record(&now);
                }
            };
            let (result, ()) = tokio::join!(processor.run(token), watch);
            ((p, j), result)
        });
    }

    fn publish(&self, s: &Running) {
        let held: Vec<u32> = s.partitions.keys().copied().collect();
        metrics::membership(&self.config, s.view.generation, held.len());
        self.status.send_if_modified(|status| {
            let next = WorkerStatus {
                set: self.config.set.clone(),
                worker: self.config.worker.clone(),
                generation: s.view.generation,
                members: s.view.members.iter().map(|m| m.worker.clone()).collect(),
                held,
                partitions_lost: s.lost,
            };
            if *status == next {
                return false;
            }
            *status = next;
            true
        });
    }
}

/// The partition's lease moved (or could not be kept): the processor's last batch, if any, was
/// refused.
fn is_lease_loss(e: &ProjectionError) -> bool {
    matches!(
        e,
        ProjectionError::LeaseLost { .. }
            | ProjectionError::Store {
                source: StoreError::LeaseLost { .. },
                ..
            }
    )
}

fn is_transient(e: &ProjectionError) -> bool {
    matches!(
        e,
        ProjectionError::Store {
            source: StoreError::Unavailable { .. },
            ..
        }
    )
}
