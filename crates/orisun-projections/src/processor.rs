//! [`Processor`]: follows one partition of a projection from its checkpoint, hands the
//! handler batches, and moves the checkpoint only past batches that succeeded.
//!
//! A processor first takes its partition's lease (`ProjectionConfig::checkpoint_name`), so at
//! most one worker handles a partition at a time, and keeps it renewed with
//! [`orisun_store::keep_lease`]. Every checkpoint move is fenced by that lease: a worker that
//! lost it (paused, partitioned, slow past its TTL) cannot move the checkpoint its successor
//! relies on, and its batch is not committed.

use crate::config::{Mode, ProjectionConfig};
use crate::error::ProjectionError;
use crate::handler::{Batch, Handler};
use crate::progress::{Progress, State};
use crate::sink::{AfterHandler, CommitError, Sink};
use futures::StreamExt;
use orisun_core::{Position, Query, ReadRequest, StoredEvent, MAX_READ_LIMIT};
use orisun_store::{keep_lease, Coordination, EventStore, Lease, LeaseLoss, StoreError};
use std::sync::Arc;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// One partition of a projection, ready to run.
pub struct Processor {
    config: ProjectionConfig,
    store: Arc<dyn EventStore>,
    coordination: Arc<dyn Coordination>,
    sink: Arc<dyn Sink>,
    progress: watch::Sender<Progress>,
}

impl Processor {
    /// A processor whose `handler` keeps its effects outside the store's transaction: the
    /// checkpoint (kept in `coordination`, fenced by the partition's lease) is saved after each
    /// batch, so delivery is at-least-once.
    pub fn new(
        store: Arc<dyn EventStore>,
        coordination: Arc<dyn Coordination>,
        config: ProjectionConfig,
        handler: impl Handler,
    ) -> Self {
        let sink = Arc::new(AfterHandler {
            handler: Arc::new(handler),
            coordination: coordination.clone(),
        });
        Self::with_sink(store, coordination, config, sink)
    }

    pub(crate) fn with_sink(
        store: Arc<dyn EventStore>,
        coordination: Arc<dyn Coordination>,
        config: ProjectionConfig,
        sink: Arc<dyn Sink>,
    ) -> Self {
        Self {
            config,
            store,
            coordination,
            sink,
            progress: watch::Sender::new(Progress::starting()),
        }
    }

    /// `name[index/count]`.
    pub fn label(&self) -> String {
        self.config.label()
    }

    /// The configuration.
    pub fn config(&self) -> &ProjectionConfig {
        &self.config
    }

    /// Follows the processor's progress (checkpoint, head, lag, counts, state).
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// Runs until `cancel` fires (finishing the batch in hand), the one-off catch-up is done,
    /// or an error stops it. Returns `Ok` on a clean stop.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), ProjectionError> {
        let span = tracing::info_span!("projection", projection = %self.config.name, partition = self.config.partition.index(), partitions = self.config.partition.count(), boundary = %self.config.boundary);
        self.run_inner(cancel).instrument(span).await
    }

    async fn run_inner(self, cancel: CancellationToken) -> Result<(), ProjectionError> {
        let Some((lease, taken_at)) = self.acquire(&cancel).await? else {
            self.set_state(State::Stopped);
            return Ok(());
        };
        tracing::info!(worker = %lease.holder, epoch = lease.epoch, "projection partition started");
        let result = tokio::select! {
            result = self.work(&lease, &cancel) => result,
            loss = keep_lease(&*self.coordination, &lease, self.config.lease_ttl, taken_at) => {
                Err(self.lease_lost(loss))
            }
        };
        if let Err(e) = self.coordination.release(&lease).await {
            tracing::warn!(error = %e, "could not release the partition lease; it will expire");
        }
        self.set_state(State::Stopped);
        match &result {
            Ok(()) => tracing::info!("projection partition stopped"),
            Err(e) => tracing::error!(error = %e, "projection partition failed"),
        }
        result
    }

    /// Takes the partition's lease, waiting while another worker holds it.
    async fn acquire(
        &self,
        cancel: &CancellationToken,
    ) -> Result<Option<(Lease, Instant)>, ProjectionError> {
        let name = self.config.checkpoint_name();
        let ttl = self.config.lease_ttl;
        let mut failures = 0u32;
        let mut said_waiting = false;
        loop {
            let asked = Instant::now();
            match self
                .coordination
                .acquire(&name, &self.config.worker, ttl)
                .await
            {
                Ok(Some(lease)) => return Ok(Some((lease, asked))),
                Ok(None) => {
                    if !said_waiting {
                        tracing::info!(lease = %name, "partition held by another worker; waiting");
                        said_waiting = true;
                    }
                    self.set_state(State::Waiting);
                }
                Err(e @ StoreError::Unavailable { .. })
                    if failures + 1 < self.config.retry.max_attempts =>
                {
                    failures += 1;
                    tracing::warn!(error = %e, attempt = failures, "could not take the partition lease; retrying");
                }
                Err(e) => return Err(self.store_error(e)),
            }
            tokio::select! {
                _ = cancel.cancelled() => return Ok(None),
                _ = tokio::time::sleep(ttl / 3) => {}
            }
        }
    }

    async fn work(&self, lease: &Lease, cancel: &CancellationToken) -> Result<(), ProjectionError> {
        let name = self.config.checkpoint_name();
        let mut checkpoint = self
            .sink
            .load(&name)
            .await
            .map_err(|e| self.store_error(e))?
            .unwrap_or(Position::BEFORE_FIRST);
        let head = self.head().await?;
        self.progress.send_modify(|p| {
            p.checkpoint = checkpoint;
            p.head = head;
            p.state = State::Running;
        });
        let query = self.config.scope.query();
        match self.config.mode {
            Mode::OneOff => {
                self.catch_up_once(lease, cancel, query, checkpoint, head)
                    .await
            }
            Mode::Continuous => loop {
                match self.follow(lease, cancel, &query, &mut checkpoint).await? {
                    Followed::Stopped => return Ok(()),
                    Followed::Dropped(e) => {
                        tracing::warn!(error = %e, "subscription dropped; resubscribing from the checkpoint");
                        tokio::select! {
                            _ = cancel.cancelled() => return Ok(()),
                            _ = tokio::time::sleep(self.config.retry.initial_backoff) => {}
                        }
                    }
                }
            },
        }
    }

    /// One-off mode: pages up to the head as of the start, then moves the checkpoint there.
    async fn catch_up_once(
        &self,
        lease: &Lease,
        cancel: &CancellationToken,
        query: Query,
        mut checkpoint: Position,
        target: Position,
    ) -> Result<(), ProjectionError> {
        while checkpoint < target && !cancel.is_cancelled() {
            let request =
                ReadRequest::forward(Some(checkpoint), self.read_size()).with_query(query.clone());
            let page = self
                .store
                .read(&self.config.boundary, &request)
                .await
                .map_err(|e| self.store_error(e))?;
            let events: Vec<StoredEvent> = page
                .into_iter()
                .filter(|e| e.position > checkpoint && e.position <= target)
                .collect();
            if events.is_empty() {
                break;
            }
            checkpoint = self.process(lease, cancel, events, None).await?;
        }
        if checkpoint < target && !cancel.is_cancelled() {
            // Nothing in scope up to the head: record that it was read.
            self.process(lease, cancel, Vec::new(), Some(target))
                .await?;
        }
        Ok(())
    }

    /// Continuous mode: one subscription from the checkpoint, until it drops or we stop.
    async fn follow(
        &self,
        lease: &Lease,
        cancel: &CancellationToken,
        query: &Query,
        checkpoint: &mut Position,
    ) -> Result<Followed, ProjectionError> {
        let mut chunks = self
            .store
            .subscribe(&self.config.boundary, *checkpoint, query.clone())
            .ready_chunks(self.read_size() as usize);
        loop {
            let chunk = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Ok(Followed::Stopped),
                chunk = chunks.next() => chunk,
            };
            let Some(chunk) = chunk else {
                return Ok(Followed::Dropped(StoreError::unavailable(
                    "the subscription ended",
                )));
            };
            let full = chunk.len() == self.read_size() as usize;
            let mut events = Vec::with_capacity(chunk.len());
            let mut failure = None;
            for item in chunk {
                match item {
                    Ok(event) => events.push(event),
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            if !events.is_empty() {
                *checkpoint = self.process(lease, cancel, events, None).await?;
            }
            match failure {
                Some(e @ StoreError::Unavailable { .. }) => return Ok(Followed::Dropped(e)),
                Some(e) => return Err(self.store_error(e)),
                None if !full => {
                    let head = self.head().await?;
                    self.progress.send_modify(|p| {
                        p.head = p.head.max(head);
                        p.state = State::Idle;
                    });
                }
                None => {}
            }
        }
    }

    /// Commits one run of events read from the log: this partition's share of them, in
    /// batches of at most the batch size, each retried as configured. Returns the new
    /// checkpoint (the last event read). `to` overrides the checkpoint of an empty run.
    async fn process(
        &self,
        lease: &Lease,
        cancel: &CancellationToken,
        events: Vec<StoredEvent>,
        to: Option<Position>,
    ) -> Result<Position, ProjectionError> {
        let last = to
            .or_else(|| events.last().map(|e| e.position))
            .unwrap_or(Position::BEFORE_FIRST);
        let mut mine: Vec<StoredEvent> = events
            .into_iter()
            .filter(|e| self.config.partition.owns(e))
            .collect();
        let size = self.config.batch_size as usize;
        // Every batch but the last ends at its own last event; the last one carries the
        // checkpoint past the other partitions' events read after it.
        while mine.len() > size {
            let rest = mine.split_off(size);
            let through = mine.last().map_or(last, |e| e.position);
            if self
                .commit(lease, cancel, std::mem::replace(&mut mine, rest), through)
                .await?
                != through
            {
                return Ok(self.progress.borrow().checkpoint);
            }
        }
        self.commit(lease, cancel, mine, last).await
    }

    /// Commits one batch, moving the checkpoint to `checkpoint`, retrying as configured.
    /// Returns the checkpoint that holds afterwards (the old one when shutdown interrupted
    /// the retries).
    async fn commit(
        &self,
        lease: &Lease,
        cancel: &CancellationToken,
        mine: Vec<StoredEvent>,
        checkpoint: Position,
    ) -> Result<Position, ProjectionError> {
        let head_seen = mine.last().map(|e| e.position).max(Some(checkpoint));
        let batch = Batch {
            projection: self.config.name.clone(),
            partition: self.config.partition.index(),
            events: mine,
            checkpoint,
        };
        let name = self.config.checkpoint_name();
        let retry = self.config.retry;
        let mut attempt = 1;
        loop {
            let span = tracing::debug_span!("projection.batch", events = batch.events.len(), checkpoint = %checkpoint, attempt);
            let committed = self
                .sink
                .commit(&name, &batch, lease)
                .instrument(span)
                .await;
            let error = match committed {
                Ok(()) => {
                    tracing::debug!(checkpoint = %checkpoint, events = batch.events.len(), "checkpoint moved");
                    self.progress.send_modify(|p| {
                        p.checkpoint = checkpoint;
                        if let Some(seen) = head_seen {
                            p.head = p.head.max(seen);
                        }
                        p.handled += batch.events.len() as u64;
                        p.batches += 1;
                        p.state = State::Running;
                    });
                    return Ok(checkpoint);
                }
                Err(CommitError::Store(StoreError::LeaseLost { .. })) => {
                    return Err(self.lease_lost(LeaseLoss::TakenOver));
                }
                Err(e) => e,
            };
            let first = batch.events.first().map_or(checkpoint, |e| e.position);
            if attempt >= retry.max_attempts.max(1) {
                return Err(match error {
                    CommitError::Handler(source) => ProjectionError::Handler {
                        projection: self.config.name.clone(),
                        partition: self.config.partition.index(),
                        position: first,
                        attempts: attempt,
                        source,
                    },
                    CommitError::Store(e) => self.store_error(e),
                });
            }
            let wait = retry.backoff(attempt);
            match &error {
                CommitError::Handler(e) => {
                    tracing::warn!(error = %e, attempt, position = %first, wait_ms = wait.as_millis() as u64, "projection handler failed; retrying")
                }
                CommitError::Store(e) => {
                    tracing::warn!(error = %e, attempt, position = %first, wait_ms = wait.as_millis() as u64, "checkpoint save failed; retrying")
                }
            }
            self.progress.send_modify(|p| {
                p.retries += 1;
                p.state = State::Retrying;
            });
            tokio::select! {
                // Shutting down while retrying: stop without committing, the checkpoint stays.
                _ = cancel.cancelled() => return Ok(self.progress.borrow().checkpoint),
                _ = tokio::time::sleep(wait) => {}
            }
            attempt += 1;
        }
    }

    /// How many events to read at once: enough that this partition's share of them fills a
    /// batch (a partition of N keeps about 1/N of what it reads), within one page.
    fn read_size(&self) -> u32 {
        self.config
            .batch_size
            .saturating_mul(self.config.partition.count().max(1))
            .min(MAX_READ_LIMIT)
    }

    async fn head(&self) -> Result<Position, ProjectionError> {
        self.store
            .head(&self.config.boundary)
            .await
            .map_err(|e| self.store_error(e))
    }

    fn set_state(&self, state: State) {
        self.progress.send_modify(|p| p.state = state);
    }

    fn store_error(&self, source: StoreError) -> ProjectionError {
        ProjectionError::Store {
            projection: self.config.name.clone(),
            partition: self.config.partition.index(),
            source,
        }
    }

    fn lease_lost(&self, loss: LeaseLoss) -> ProjectionError {
        ProjectionError::LeaseLost {
            projection: self.config.name.clone(),
            partition: self.config.partition.index(),
            loss,
        }
    }
}

/// How one subscription ended.
enum Followed {
    /// Shut down.
    Stopped,
    /// The subscription failed for a transient reason; resubscribe.
    Dropped(StoreError),
}
