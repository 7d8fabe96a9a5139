//! Orisun's optional NATS integration: every boundary's events published to a JetStream stream
//! (in log order, once per position, one active publisher per boundary across the cluster), and
//! the `orisun.PubSub` gRPC service (over NATS, or in-process without it).
//!
//! The server calls [`start`] when `ORISUN_NATS_URL` is set, mounts
//! [`PubSubService`] over [`NatsHandle::pubsub`] (or over a [`LocalPubSub`] without NATS), and
//! calls [`NatsHandle::stop`] on shutdown.
//!
//! # Streams, subjects, message ids
//!
//! | what | name |
//! |---|---|
//! | stream of boundary `b` | `ORISUN_EVENTS___b` (three underscores, as Go Orisun) |
//! | its subjects | `ORISUN_EVENTS___b.events.>` |
//! | subject of the event at `{commit, prepare}` | `ORISUN_EVENTS___b.events.<commit>_<prepare>` |
//! | `Nats-Msg-Id` | `b:<commit>:<prepare>` |
//! | lease and checkpoint (in the store's database) | `nats_publisher:b` |
//!
//! Differences from Go Orisun, each for a reason: the per-event subject and the message id
//! separate the two numbers (Go Orisun writes `<prepare><commit>` run together, which is
//! ambiguous) and the message id names the boundary (so ids are unique across streams); streams
//! use **file** storage by default (Go Orisun: memory, lost on a NATS restart; configurable);
//! the duplicate window is explicit (2 min, clamped to the max age); publications are pipelined
//! with `Nats-Expected-Last-Sequence` instead of one synchronous publish per event.
//!
//! # Payload
//!
//! A JSON object, Go Orisun's shape with every field always present:
//!
//! ```json
//! {"event_id":"0191…","event_type":"Deposited",
//!  "data":"{\"eventType\":\"Deposited\",\"amount\":5}","metadata":"{}",
//!  "position":{"commit_position":3,"prepare_position":2},
//!  "date_created":{"seconds":1700000000,"nanos":5000}}
//! ```
//!
//! `data` and `metadata` are JSON *text* (as in Go Orisun), `date_created` is UTC.
//!
//! # Guarantees
//!
//! - Events appear in the stream in position order, each position once, with no hole: each
//!   publication expects its predecessor's stream sequence, so a message lost in flight makes
//!   every later one fail instead of landing after a gap, and the publisher resumes after the
//!   stream's last stored event.
//! - A re-publication (crash between acknowledgement and checkpoint, fail-over, NATS error) is
//!   avoided by resuming after the stream's tail, and dropped by JetStream's duplicate window
//!   otherwise.
//! - The checkpoint is saved after the acknowledgements it covers (every 1000 events, and at
//!   most 100 ms after any acknowledgement), fenced by the lease: a node that lost the lease can
//!   neither publish for long nor move the checkpoint.
//! - What JetStream keeps is bounded by the stream limits (`ORISUN_NATS_EVENT_STREAM_MAX_BYTES`,
//!   `_MAX_MSGS`, `_MAX_AGE`; oldest discarded first). The store remains the truth: a consumer
//!   that needs older events reads them from Orisun.
//!
//! # Fail-over timing
//!
//! The lease lives `lease_ttl` (10 s by default) and is renewed every third of it. A node that
//! stops cleanly releases it and another node takes over within about `ttl/3`; a node that dies
//! is replaced after the lease expires plus one contention period, at most about
//! `4/3 × lease_ttl`. After a NATS outage the publisher retries with back-off (100 ms doubling to
//! 5 s) and resumes where the stream ends.
//!
//! # Caveat
//!
//! Message ids derive from positions, so a store that is wiped and refilled while its NATS
//! streams live on reuses ids: delete the `ORISUN_EVENTS___*` streams when resetting a store.

mod config;
pub mod naming;
mod publisher;
pub mod pubsub;
mod service;

pub use config::{NatsConfig, PublisherConfig, StreamLimits, StreamStorage};
pub use publisher::EventPublisher;
pub use pubsub::{LocalPubSub, Message, MessageStream, NatsPubSub, PubSub, PubSubError};
pub use service::{status as pubsub_status, PubSubService, SubscribeStream};

pub use async_nats;

use orisun_core::BoundaryName;
use orisun_store::{Coordination, EventStore};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

/// What can stop the NATS integration from starting.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// `ORISUN_NATS_URL` could not be used.
    #[error("cannot connect to NATS at {url:?}: {reason}")]
    Connect {
        /// The configured URL.
        url: String,
        /// What the client reported.
        reason: String,
    },
}

/// How long [`start`] waits for the first connection before going on without it (the client
/// keeps trying; publishing starts once NATS is reachable).
const FIRST_CONNECT_WAIT: Duration = Duration::from_secs(5);

/// Connects to NATS as the integration does: reconnecting forever, logging connection changes.
/// Returns even when no server is reachable yet (after logging a warning), since publishers
/// wait for the connection anyway; fails only on an unusable URL.
pub async fn connect(config: &NatsConfig) -> Result<async_nats::Client, NatsError> {
    let options = async_nats::ConnectOptions::new()
        .name(&config.connection_name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => info!("connected to NATS"),
                async_nats::Event::Disconnected => warn!("disconnected from NATS; reconnecting"),
                async_nats::Event::SlowConsumer(sid) => {
                    warn!(subscription = sid, "NATS slow consumer: messages dropped")
                }
                async_nats::Event::ClientError(e) => debug!(error = %e, "NATS client error"),
                other => info!(event = %other, "NATS connection event"),
            }
        });
    let client = options
        .connect(config.url.as_str())
        .await
        .map_err(|e| NatsError::Connect {
            url: config.url.clone(),
            reason: e.to_string(),
        })?;
    let mut waited = Duration::ZERO;
    let step = Duration::from_millis(20);
    while client.connection_state() != async_nats::connection::State::Connected {
        if waited >= FIRST_CONNECT_WAIT {
            warn!(url = %config.url, "NATS is not reachable yet; publishing starts once it is");
            break;
        }
        tokio::time::sleep(step).await;
        waited += step;
    }
    Ok(client)
}

/// Returns the JetStream context the publishers use on `client`.
pub fn jetstream(
    client: async_nats::Client,
    config: &PublisherConfig,
) -> async_nats::jetstream::Context {
    async_nats::jetstream::ContextBuilder::new()
        .timeout(config.ack_timeout)
        .build(client)
}

/// Connects to NATS and starts one [`EventPublisher`] per boundary of `store` except
/// `config.excluded_boundaries` (boundaries created later, on any node, are picked up within
/// `config.discovery_interval`). Everything
/// stops when `shutdown` completes or [`NatsHandle::stop`] is called.
///
/// `node_id` identifies this node in the publisher leases; it must differ between nodes.
pub async fn start(
    config: NatsConfig,
    store: Arc<dyn EventStore>,
    coordination: Arc<dyn Coordination>,
    node_id: impl Into<String>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<NatsHandle, NatsError> {
    let client = connect(&config).await?;
    let jetstream = jetstream(client.clone(), &config.publisher);
    let (stop_tx, stop_rx) = watch::channel(false);
    let inner = Arc::new(Inner {
        store,
        coordination,
        jetstream: jetstream.clone(),
        config: config.clone(),
        node_id: node_id.into(),
        stop: stop_rx,
        publishers: Mutex::new(HashMap::new()),
    });
    inner.discover().await;
    let discovery = tokio::spawn({
        let inner = inner.clone();
        let mut stop = inner.stop.clone();
        async move {
            let mut tick = tokio::time::interval(inner.config.discovery_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = async { let _ = stop.wait_for(|s| *s).await; } => return,
                    _ = tick.tick() => {}
                }
                inner.discover().await;
            }
        }
    });
    let stop_on_signal = tokio::spawn({
        let stop_tx = stop_tx.clone();
        async move {
            shutdown.await;
            stop_tx.send_replace(true);
        }
    });
    info!(url = %config.url, "NATS publishing started");
    Ok(NatsHandle {
        pubsub: Arc::new(NatsPubSub::new(client.clone())),
        client,
        jetstream,
        inner,
        stop_tx,
        discovery,
        stop_on_signal,
    })
}

/// The running NATS integration.
pub struct NatsHandle {
    client: async_nats::Client,
    jetstream: async_nats::jetstream::Context,
    pubsub: Arc<NatsPubSub>,
    inner: Arc<Inner>,
    stop_tx: watch::Sender<bool>,
    discovery: JoinHandle<()>,
    stop_on_signal: JoinHandle<()>,
}

struct Inner {
    store: Arc<dyn EventStore>,
    coordination: Arc<dyn Coordination>,
    jetstream: async_nats::jetstream::Context,
    config: NatsConfig,
    node_id: String,
    stop: watch::Receiver<bool>,
    publishers: Mutex<HashMap<BoundaryName, JoinHandle<()>>>,
}

impl Inner {
    /// Starts a publisher for every boundary of the store that has none.
    async fn discover(&self) {
        match self.store.boundaries().await {
            Ok(boundaries) => {
                for boundary in boundaries {
                    self.ensure_publisher(boundary);
                }
            }
            Err(e) => warn!(error = %e, "could not list boundaries for NATS publishing"),
        }
    }

    fn ensure_publisher(&self, boundary: BoundaryName) {
        if *self.stop.borrow() || self.config.excluded_boundaries.contains(&boundary) {
            return;
        }
        let mut publishers = self.publishers.lock();
        if publishers.contains_key(&boundary) {
            return;
        }
        let publisher = EventPublisher::new(
            self.store.clone(),
            self.coordination.clone(),
            boundary.clone(),
            self.jetstream.clone(),
            self.config.publisher.clone(),
            &self.node_id,
        );
        let mut stop = self.stop.clone();
        let task = tokio::spawn(publisher.run(async move {
            // An error means the handle is gone, which also means stop.
            let _ = stop.wait_for(|s| *s).await;
        }));
        publishers.insert(boundary, task);
    }
}

impl NatsHandle {
    /// Returns the pub/sub over this NATS connection.
    pub fn pubsub(&self) -> Arc<dyn PubSub> {
        self.pubsub.clone()
    }

    /// Returns the NATS connection.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Returns the JetStream context the publishers use.
    pub fn jetstream(&self) -> &async_nats::jetstream::Context {
        &self.jetstream
    }

    /// Starts publishing `boundary` now (for a boundary just created on this node) instead of
    /// at the next discovery. Does nothing if it is already published or excluded.
    pub fn publish_boundary(&self, boundary: BoundaryName) {
        self.inner.ensure_publisher(boundary);
    }

    /// Returns the boundaries this node contends to publish.
    pub fn boundaries(&self) -> Vec<BoundaryName> {
        let mut names: Vec<BoundaryName> = self.inner.publishers.lock().keys().cloned().collect();
        names.sort();
        names
    }

    /// Stops every publisher (releasing the leases it holds, so other nodes take over at once)
    /// and waits for them to finish.
    pub async fn stop(self) {
        self.stop_tx.send_replace(true);
        let tasks: Vec<JoinHandle<()>> = self
            .inner
            .publishers
            .lock()
            .drain()
            .map(|(_, t)| t)
            .collect();
        self.stop_on_signal.abort();
        for task in tasks.into_iter().chain([self.discovery]) {
            if let Err(e) = task.await {
                if e.is_panic() {
                    warn!(error = %e, "a NATS task panicked");
                }
            }
        }
        info!("NATS publishing stopped");
    }
}
