//! The publisher of one boundary: elected by a lease, it follows the boundary's log from its
//! checkpoint and publishes every event to the boundary's JetStream stream, in position order,
//! once per position.
//!
//! How the guarantees are kept:
//! - **One publisher per boundary** across every node sharing the store: the lease
//!   `nats_publisher:<boundary>` is renewed every `ttl/3`; a publisher that cannot renew in
//!   time, or sees another holder, stops at once (its in-flight publications are abandoned).
//! - **Progress** is the checkpoint `nats_publisher:<boundary>`, saved after the acknowledgement
//!   of the events it covers and fenced by the lease, so a superseded publisher cannot move it.
//! - **Once per position**: every message carries `Nats-Msg-Id: <boundary>:<commit>:<prepare>`,
//!   so a re-publication within the duplicate window is dropped by JetStream. Beyond that, a
//!   session starts after the *stream's* last event when the stream is ahead of the checkpoint
//!   (the events were acknowledged but the checkpoint was not saved), so nothing is re-sent.
//! - **Position order, no holes**: publications are pipelined, and each carries
//!   `Nats-Expected-Last-Sequence` (the stream sequence its predecessor got). If a message is
//!   lost in flight (NATS restart, broken connection), every later one is refused instead of
//!   being stored after a hole; the publisher then resumes from the stream's tail.

use crate::config::PublisherConfig;
use crate::naming::{
    event_subject, message_id, parse_message_id, publisher_lease_name, stream_name,
    stream_subjects, EventPayload,
};
use async_nats::header::NATS_MESSAGE_ID;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy};
use async_nats::jetstream::{self as js};
use futures::future::BoxFuture;
use futures::StreamExt;
use orisun_core::{BoundaryName, Position, Query};
use orisun_store::{keep_lease, Coordination, EventStore, Lease, StoreError};
use rand::Rng;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// The checkpoint is saved this long after the first acknowledgement it does not cover yet
/// (or as soon as `checkpoint_every` events wait), so a trickle of single events costs at most
/// ten checkpoint writes per second rather than one per event, and the checkpoint never lags
/// far behind the stream.
const CHECKPOINT_DELAY: Duration = Duration::from_millis(100);

/// Why a publishing session ended.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("the publisher lease was lost")]
    LeaseLost,
    #[error("store: {0}")]
    Store(StoreError),
    #[error("NATS: {0}")]
    Nats(String),
    #[error("the stream is out of step with this publisher: {0}")]
    Resync(String),
}

impl From<StoreError> for SessionError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::LeaseLost { .. } => Self::LeaseLost,
            other => Self::Store(other),
        }
    }
}

fn nats(what: &str, e: impl std::fmt::Display) -> SessionError {
    SessionError::Nats(format!("{what}: {e}"))
}

/// One publication awaiting its acknowledgement.
struct InFlight {
    position: Position,
    /// The stream sequence the message must get (its predecessor's + 1).
    sequence: u64,
    ack: BoxFuture<'static, Result<PublishAck, js::context::PublishError>>,
}

/// Publishes one boundary's events to JetStream while it holds the boundary's publisher lease.
pub struct EventPublisher {
    store: Arc<dyn EventStore>,
    coordination: Arc<dyn Coordination>,
    boundary: BoundaryName,
    jetstream: js::Context,
    config: PublisherConfig,
    /// Lease holder identity: the node id plus the purpose, unique per contender.
    holder: String,
    /// Name of the lease and of the checkpoint.
    name: String,
}

impl EventPublisher {
    /// Creates the publisher of `boundary` for node `node_id`. Nothing happens until
    /// [`EventPublisher::run`].
    pub fn new(
        store: Arc<dyn EventStore>,
        coordination: Arc<dyn Coordination>,
        boundary: BoundaryName,
        jetstream: js::Context,
        config: PublisherConfig,
        node_id: &str,
    ) -> Self {
        let name = publisher_lease_name(&boundary);
        Self {
            store,
            coordination,
            holder: format!("{node_id}/nats_publisher"),
            boundary,
            jetstream,
            config,
            name,
        }
    }

    /// Contends for the lease and publishes while holding it, until `shutdown` completes; then
    /// releases the lease so that another node takes over at once.
    ///
    /// Never fails: store and NATS errors are logged and retried with back-off (from the
    /// checkpoint and the stream's tail), and a lost lease sends it back to contending.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let mut shutdown = std::pin::pin!(shutdown);
        let boundary = self.boundary.as_str().to_owned();
        loop {
            let (lease, requested_at) = tokio::select! {
                _ = &mut shutdown => return,
                taken = self.contend() => taken,
            };
            info!(%boundary, holder = %self.holder, epoch = lease.epoch, "became the NATS publisher");
            tokio::select! {
                _ = &mut shutdown => {
                    if let Err(e) = self.coordination.release(&lease).await {
                        warn!(%boundary, error = %e, "could not release the publisher lease; it will expire");
                    }
                    info!(%boundary, "NATS publisher stopped");
                    return;
                }
                loss = keep_lease(&*self.coordination, &lease, self.config.lease_ttl, requested_at) => {
                    warn!(%boundary, holder = %self.holder, epoch = lease.epoch, %loss, "lost the NATS publisher lease; stopped publishing");
                }
                _ = self.publish_while_held(&lease) => {
                    warn!(%boundary, holder = %self.holder, epoch = lease.epoch, "a fenced write found the NATS publisher lease lost; stopped publishing");
                }
            }
        }
    }

    /// Returns once this node holds the lease, with the instant the winning request was sent
    /// (the lease is valid for one TTL from then).
    async fn contend(&self) -> (Lease, Instant) {
        let ttl = self.config.lease_ttl;
        let mut backoff = self.config.retry_min;
        loop {
            let requested_at = Instant::now();
            match self
                .coordination
                .acquire(&self.name, &self.holder, ttl)
                .await
            {
                Ok(Some(lease)) => return (lease, requested_at),
                Ok(None) => {
                    backoff = self.config.retry_min;
                    tokio::time::sleep(jitter(ttl / 3)).await;
                }
                Err(e) => {
                    warn!(boundary = %self.boundary.as_str(), error = %e, "could not contend for the NATS publisher lease");
                    tokio::time::sleep(jitter(backoff)).await;
                    backoff = (backoff * 2).min(self.config.retry_max);
                }
            }
        }
    }

    /// Runs publishing sessions while the lease is held; returns only when a fenced write
    /// reports the lease lost.
    async fn publish_while_held(&self, lease: &Lease) {
        let mut backoff = self.config.retry_min;
        loop {
            let mut progressed = false;
            let error = match self.session(lease, &mut progressed).await {
                Err(SessionError::LeaseLost) => return,
                Err(e) => e,
                Ok(never) => match never {},
            };
            if progressed {
                backoff = self.config.retry_min;
            }
            warn!(boundary = %self.boundary.as_str(), error = %error, retry_in = ?backoff, "NATS publishing interrupted; resuming from the checkpoint");
            tokio::time::sleep(jitter(backoff)).await;
            backoff = (backoff * 2).min(self.config.retry_max);
        }
    }

    /// Publishes from the checkpoint (or the stream's tail) until an error.
    async fn session(
        &self,
        lease: &Lease,
        progressed: &mut bool,
    ) -> Result<Infallible, SessionError> {
        let boundary = self.boundary.as_str();
        let stream = self.ensure_stream().await?;
        let checkpoint = self
            .coordination
            .load_checkpoint(&self.name)
            .await?
            .unwrap_or(Position::BEFORE_FIRST);
        let (last_sequence, tail) = self.stream_tail(&stream).await?;
        let start = match tail {
            Some(tail) if tail != checkpoint => {
                let head = self.store.head(&self.boundary).await?;
                if tail > head {
                    warn!(%boundary, %tail, %head, "the NATS stream holds events past the store's head (was the store reset? then delete the stream); publishing from the checkpoint");
                    checkpoint
                } else {
                    info!(%boundary, %tail, %checkpoint, "resuming after the last event in the NATS stream");
                    tail
                }
            }
            _ => checkpoint,
        };
        if start > checkpoint {
            self.coordination
                .save_checkpoint(&self.name, start, Some(lease))
                .await?;
        }
        debug!(%boundary, %start, last_sequence, "publishing session started");

        let mut events = self.store.subscribe(&self.boundary, start, Query::all());
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        let mut expected_sequence = last_sequence;
        let mut last_sent = start;
        let mut acked = start;
        let mut unsaved = 0usize;
        let mut save_at: Option<Instant> = None;
        let max_in_flight = self.config.max_in_flight.max(1);

        loop {
            tokio::select! {
                biased;
                ack = async { (&mut in_flight.front_mut().expect("guarded by the branch condition").ack).await }, if !in_flight.is_empty() => {
                    let sent = in_flight.pop_front().expect("guarded by the branch condition");
                    let ack = ack.map_err(|e| nats("publication not acknowledged", e))?;
                    if ack.sequence != sent.sequence {
                        return Err(SessionError::Resync(format!(
                            "event {} got stream sequence {} (duplicate: {}), expected {}",
                            sent.position, ack.sequence, ack.duplicate, sent.sequence
                        )));
                    }
                    acked = sent.position;
                    unsaved += 1;
                    if unsaved >= self.config.checkpoint_every {
                        self.save(acked, lease).await?;
                        *progressed = true;
                        unsaved = 0;
                        save_at = None;
                    } else if save_at.is_none() {
                        save_at = Some(Instant::now() + CHECKPOINT_DELAY);
                    }
                }
                _ = sleep_until(save_at), if save_at.is_some() => {
                    self.save(acked, lease).await?;
                    *progressed = true;
                    unsaved = 0;
                    save_at = None;
                }
                next = events.next(), if in_flight.len() < max_in_flight => {
                    let event = match next {
                        Some(Ok(event)) => event,
                        Some(Err(e)) => return Err(e.into()),
                        None => return Err(SessionError::Store(StoreError::internal("the subscription ended"))),
                    };
                    if event.position <= last_sent {
                        return Err(SessionError::Store(StoreError::internal(format!(
                            "the subscription went backwards: {} after {}", event.position, last_sent
                        ))));
                    }
                    let payload = EventPayload::new(&event).to_bytes();
                    let mut publish = PublishMessage::build()
                        .payload(payload.into())
                        .message_id(message_id(&self.boundary, event.position));
                    // Zero means an empty stream; the header is then left out, as servers
                    // before 2.10 read 0 as "no expectation" anyway.
                    if expected_sequence > 0 {
                        publish = publish.expected_last_sequence(expected_sequence);
                    }
                    let ack = self
                        .jetstream
                        .send_publish(event_subject(&self.boundary, event.position), publish)
                        .await
                        .map_err(|e| nats("publish", e))?;
                    expected_sequence += 1;
                    in_flight.push_back(InFlight {
                        position: event.position,
                        sequence: expected_sequence,
                        ack: ack.into_future(),
                    });
                    last_sent = event.position;
                }
            }
        }
    }

    async fn save(&self, position: Position, lease: &Lease) -> Result<(), SessionError> {
        self.coordination
            .save_checkpoint(&self.name, position, Some(lease))
            .await?;
        Ok(())
    }

    /// Creates the boundary's stream, or updates an existing one to the configured limits
    /// (keeping its storage type, which JetStream cannot change, and any other setting an
    /// operator made).
    async fn ensure_stream(&self) -> Result<stream::Stream, SessionError> {
        let name = stream_name(&self.boundary);
        let limits = &self.config.limits;
        let apply = |config: &mut stream::Config| {
            config.subjects = vec![stream_subjects(&self.boundary)];
            config.max_bytes = limits.max_bytes;
            config.max_messages = limits.max_msgs;
            config.max_age = limits.max_age;
            config.duplicate_window = limits.effective_duplicate_window();
            config.num_replicas = limits.replicas.max(1);
            config.discard = DiscardPolicy::Old;
            config.retention = RetentionPolicy::Limits;
        };
        match self.jetstream.get_stream(&name).await {
            Ok(stream) => {
                let current = stream.cached_info().config.clone();
                let mut wanted = current.clone();
                apply(&mut wanted);
                if current.storage != limits.storage.to_nats() {
                    warn!(stream = %name, current = ?current.storage, configured = ?limits.storage,
                        "the stream exists with another storage type, which JetStream cannot change; keeping it");
                }
                if wanted != current {
                    info!(stream = %name, "updating the stream's limits");
                    self.jetstream
                        .update_stream(wanted)
                        .await
                        .map_err(|e| nats("update stream", e))?;
                }
                Ok(stream)
            }
            Err(e)
                if matches!(e.kind(), js::context::GetStreamErrorKind::JetStream(ref j)
                    if j.error_code() == js::ErrorCode::STREAM_NOT_FOUND) =>
            {
                let mut config = stream::Config {
                    name: name.clone(),
                    storage: limits.storage.to_nats(),
                    description: Some(format!(
                        "Orisun events of boundary {}",
                        self.boundary.as_str()
                    )),
                    ..Default::default()
                };
                apply(&mut config);
                info!(stream = %name, "creating the stream");
                self.jetstream
                    .create_stream(config)
                    .await
                    .map_err(|e| nats("create stream", e))
            }
            Err(e) => Err(nats("get stream", e)),
        }
    }

    /// Returns the stream's last sequence and the position of its last message when that
    /// message is one of ours (and still stored).
    async fn stream_tail(
        &self,
        stream: &stream::Stream,
    ) -> Result<(u64, Option<Position>), SessionError> {
        let info = stream
            .get_info()
            .await
            .map_err(|e| nats("stream info", e))?;
        let last = info.state.last_sequence;
        if last == 0 || info.state.messages == 0 {
            return Ok((last, None));
        }
        match stream.get_raw_message(last).await {
            Ok(message) => {
                let position = message
                    .headers
                    .get(NATS_MESSAGE_ID)
                    .and_then(|id| parse_message_id(&self.boundary, id.as_str()));
                if position.is_none() {
                    warn!(boundary = %self.boundary.as_str(), sequence = last,
                        "the stream's last message was not published by Orisun; publishing from the checkpoint");
                }
                Ok((last, position))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    js::stream::LastRawMessageErrorKind::NoMessageFound
                ) =>
            {
                Ok((last, None))
            }
            Err(e) => Err(nats("read the stream's last message", e)),
        }
    }
}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => futures::future::pending().await,
    }
}

/// Spreads `d` by ±20% so that contenders and retries on several nodes do not move in step.
fn jitter(d: Duration) -> Duration {
    let factor = rand::rng().random_range(0.8..1.2);
    d.mul_f64(factor)
}
