//! Test helpers: the shared NATS server, private nats-server children, event fixtures, and a
//! reader that checks a boundary's JetStream stream against the store.

#![allow(dead_code)]

use anyhow::{anyhow, bail, Context as _, Result};
use async_nats::jetstream;
use futures::StreamExt;
use orisun_core::{BoundaryName, JsonObject, NewEvent, Position, ReadRequest, StoredEvent};
use orisun_nats::naming::{event_subject, message_id, publisher_lease_name, stream_name};
use orisun_nats::{EventPublisher, PublisherConfig};
use orisun_store::{Coordination, EventStore};
use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

/// Installs a tracing subscriber once (honours `RUST_LOG`).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,orisun_nats=info".into()),
        )
        .with_test_writer()
        .try_init();
}

/// URL of the shared NATS server (`ORISUN_TEST_NATS_URL`, default `nats://127.0.0.1:4222`).
pub fn shared_nats_url() -> String {
    std::env::var("ORISUN_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// Connects to `url`, failing within 10 s when no server answers.
pub async fn connect(url: &str) -> Result<async_nats::Client> {
    tokio::time::timeout(Duration::from_secs(10), async_nats::connect(url))
        .await
        .map_err(|_| {
            anyhow!(
                "no NATS server answered at {url} within 10 s (is nats-server running with -js?)"
            )
        })?
        .with_context(|| format!("connecting to {url}"))
}

/// A fresh boundary name, so that tests sharing one NATS server never see each other's streams.
pub fn unique_boundary(prefix: &str) -> BoundaryName {
    let id = Uuid::new_v4().simple().to_string();
    BoundaryName::new(format!("{prefix}_{}", &id[..12])).expect("valid boundary name")
}

/// Builds `n` events of type `T` numbered from `first`.
pub fn events(first: usize, n: usize) -> Vec<NewEvent> {
    (first..first + n)
        .map(|i| {
            let mut data = JsonObject::new();
            data.insert("n".into(), serde_json::json!(i));
            NewEvent::new(Uuid::now_v7(), "T", data, JsonObject::new()).expect("valid event")
        })
        .collect()
}

/// Appends `total` events in a mix of single events and batches of 7, 50 and 200.
pub async fn append_mixed(
    store: &dyn EventStore,
    boundary: &BoundaryName,
    first: usize,
    total: usize,
) -> Result<()> {
    let sizes = [1usize, 1, 7, 1, 50, 1, 200, 3];
    let mut done = 0;
    let mut i = 0;
    while done < total {
        let n = sizes[i % sizes.len()].min(total - done);
        store
            .append(boundary, events(first + done, n), None)
            .await?;
        done += n;
        i += 1;
    }
    Ok(())
}

/// Reads every event of `boundary` from the store.
pub async fn all_events(
    store: &dyn EventStore,
    boundary: &BoundaryName,
) -> Result<Vec<StoredEvent>> {
    let mut out: Vec<StoredEvent> = Vec::new();
    loop {
        let from = out
            .last()
            .map(|e| Position::new(e.position.commit, e.position.prepare + 1));
        let page = store
            .read(boundary, &ReadRequest::forward(from, 1_000))
            .await?;
        if page.is_empty() {
            return Ok(out);
        }
        out.extend(page);
    }
}

/// Awaits `condition` (polled every 20 ms) for at most `limit`.
pub async fn wait_for<F, Fut>(what: &str, limit: Duration, mut condition: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if condition().await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Returns the number of messages in the boundary's stream (0 when it does not exist yet).
pub async fn stream_len(js: &jetstream::Context, boundary: &BoundaryName) -> u64 {
    match js.get_stream(stream_name(boundary)).await {
        Ok(s) => s.cached_info().state.messages,
        Err(_) => 0,
    }
}

/// Waits until the boundary's stream holds `n` messages.
pub async fn wait_for_stream_len(
    js: &jetstream::Context,
    boundary: &BoundaryName,
    n: u64,
    limit: Duration,
) -> Result<()> {
    wait_for(&format!("{n} messages in the stream"), limit, || async {
        stream_len(js, boundary).await >= n
    })
    .await
    .with_context(|| "stream never filled")
}

/// One message of a boundary stream, as read back.
#[derive(Debug)]
pub struct StreamEntry {
    pub sequence: u64,
    pub subject: String,
    pub msg_id: String,
    pub payload: serde_json::Value,
}

/// Reads the whole stream of `boundary`, in stream order.
pub async fn read_stream(
    js: &jetstream::Context,
    boundary: &BoundaryName,
) -> Result<Vec<StreamEntry>> {
    let stream = js.get_stream(stream_name(boundary)).await?;
    let state = &stream.cached_info().state;
    let (first, last) = (state.first_sequence, state.last_sequence);
    if state.messages == 0 {
        return Ok(Vec::new());
    }
    let entries: Vec<Result<StreamEntry>> = futures::stream::iter(first..=last)
        .map(|seq| {
            let stream = &stream;
            async move {
                let m = stream
                    .get_raw_message(seq)
                    .await
                    .with_context(|| format!("reading stream sequence {seq}"))?;
                Ok(StreamEntry {
                    sequence: m.sequence,
                    subject: m.subject.to_string(),
                    msg_id: m
                        .headers
                        .get("Nats-Msg-Id")
                        .map(|v| v.as_str().to_owned())
                        .unwrap_or_default(),
                    payload: serde_json::from_slice(&m.payload)?,
                })
            }
        })
        .buffered(64)
        .collect()
        .await;
    entries.into_iter().collect()
}

/// Checks that the boundary's stream holds exactly the store's events: each once, in position
/// order, at consecutive stream sequences, with the right subject, message id and payload.
pub async fn assert_stream_matches_store(
    js: &jetstream::Context,
    store: &dyn EventStore,
    boundary: &BoundaryName,
) -> Result<usize> {
    let stored = all_events(store, boundary).await?;
    let published = read_stream(js, boundary).await?;
    let positions: Vec<Position> = published
        .iter()
        .map(|e| {
            Position::new(
                e.payload["position"]["commit_position"]
                    .as_i64()
                    .unwrap_or(-9),
                e.payload["position"]["prepare_position"]
                    .as_i64()
                    .unwrap_or(-9),
            )
        })
        .collect();
    let expected: Vec<Position> = stored.iter().map(|e| e.position).collect();
    if positions != expected {
        let first_diff = positions
            .iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .unwrap_or(positions.len().min(expected.len()));
        bail!(
            "stream holds {} events, store {}; first difference at index {first_diff}: stream {:?} vs store {:?}",
            positions.len(),
            expected.len(),
            positions.get(first_diff),
            expected.get(first_diff)
        );
    }
    for (i, (entry, event)) in published.iter().zip(&stored).enumerate() {
        if i > 0 && entry.sequence != published[i - 1].sequence + 1 {
            bail!("stream sequence jumps at index {i}: {}", entry.sequence);
        }
        assert_eq!(entry.subject, event_subject(boundary, event.position));
        assert_eq!(entry.msg_id, message_id(boundary, event.position));
        assert_eq!(entry.payload["event_id"], event.event_id.to_string());
        assert_eq!(entry.payload["event_type"], event.event_type);
        assert_eq!(entry.payload["data"], event.data);
        assert_eq!(entry.payload["metadata"], event.metadata);
        assert_eq!(
            entry.payload["date_created"]["seconds"],
            event.date_created.timestamp()
        );
    }
    Ok(published.len())
}

/// Deletes the boundary's stream (tests clean up the shared server).
pub async fn delete_stream(js: &jetstream::Context, boundary: &BoundaryName) {
    let _ = js.delete_stream(stream_name(boundary)).await;
}

/// Short leases and retries, so fail-over and recovery happen within a test's patience.
pub fn test_config() -> PublisherConfig {
    PublisherConfig {
        lease_ttl: Duration::from_millis(600),
        retry_min: Duration::from_millis(20),
        retry_max: Duration::from_millis(500),
        ack_timeout: Duration::from_secs(2),
        ..PublisherConfig::default()
    }
}

/// A running publisher ("a node"): stop it cleanly with `stop`, or crash it with `crash`.
pub struct Node {
    task: JoinHandle<()>,
    stop: oneshot::Sender<()>,
}

impl Node {
    pub fn spawn(
        store: Arc<dyn EventStore>,
        coordination: Arc<dyn Coordination>,
        boundary: &BoundaryName,
        js: jetstream::Context,
        config: PublisherConfig,
        node_id: &str,
    ) -> Self {
        let (stop, stopped) = oneshot::channel();
        let publisher =
            EventPublisher::new(store, coordination, boundary.clone(), js, config, node_id);
        let task = tokio::spawn(publisher.run(async move {
            let _ = stopped.await;
        }));
        Self { task, stop }
    }

    /// Asks the publisher to stop (it releases its lease) and waits for it.
    pub async fn stop(self) -> Result<()> {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .context("publisher did not stop")??;
        Ok(())
    }

    /// Kills the publisher where it stands, keeping its lease until it expires.
    pub async fn crash(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

pub async fn wait_for_checkpoint(
    coordination: &dyn Coordination,
    boundary: &BoundaryName,
    at: Position,
) -> Result<()> {
    let name = publisher_lease_name(boundary);
    wait_for(
        &format!("checkpoint {at}"),
        Duration::from_secs(20),
        || async { coordination.load_checkpoint(&name).await.ok().flatten() == Some(at) },
    )
    .await
}

/// A node of a failover scenario: its own store handle and coordination (the same objects
/// for every node in-process, separate connections to one database for a real cluster).
pub type NodeParts = (Arc<dyn EventStore>, Arc<dyn Coordination>);

/// Two nodes contend for one boundary while a writer (through the first node's store) keeps
/// appending. The active node crashes mid-stream (its lease is left to expire): the other takes
/// over from the checkpoint. Then a third node joins and the second stops cleanly (releasing
/// its lease): the third takes over. The stream ends up holding every event exactly once, in
/// order. The boundary must exist and be empty; the stream is deleted at the end.
pub async fn failover_scenario(boundary: &BoundaryName, nodes: [NodeParts; 3]) -> Result<()> {
    let url = shared_nats_url();
    let [(store_a, coord_a), (store_b, coord_b), (store_c, coord_c)] = nodes;
    let writer_store = store_a.clone();
    // Each node has its own NATS connection, as separate processes would.
    let js_a = jetstream::new(connect(&url).await?);
    let js_b = jetstream::new(connect(&url).await?);
    let js_c = jetstream::new(connect(&url).await?);

    append_mixed(writer_store.as_ref(), boundary, 0, 500).await?;
    let a = Node::spawn(
        store_a,
        coord_a,
        boundary,
        js_a.clone(),
        test_config(),
        "node-a",
    );
    wait_for_stream_len(&js_a, boundary, 500, Duration::from_secs(20)).await?;
    let b = Node::spawn(
        store_b,
        coord_b,
        boundary,
        js_b.clone(),
        test_config(),
        "node-b",
    );

    // A writer appending steadily for the rest of the scenario.
    let writer = tokio::spawn({
        let store = writer_store.clone();
        let boundary = boundary.clone();
        async move {
            for round in 0..60 {
                append_mixed(store.as_ref(), &boundary, 500 + round * 50, 50).await?;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            anyhow::Ok(())
        }
    });

    // Crash A while events keep coming; B takes over once A's lease expires.
    wait_for_stream_len(&js_a, boundary, 800, Duration::from_secs(20)).await?;
    a.crash().await;
    let at_crash = stream_len(&js_b, boundary).await;
    wait_for_stream_len(&js_b, boundary, at_crash + 300, Duration::from_secs(20)).await?;

    // C joins, B stops cleanly and hands over at once.
    let c = Node::spawn(
        store_c,
        coord_c.clone(),
        boundary,
        js_c.clone(),
        test_config(),
        "node-c",
    );
    b.stop().await?;
    let at_stop = stream_len(&js_c, boundary).await;
    wait_for_stream_len(&js_c, boundary, at_stop + 100, Duration::from_secs(20)).await?;

    tokio::time::timeout(Duration::from_secs(60), writer)
        .await
        .context("writer stuck")???;
    let total = writer_store.count(boundary).await?;
    assert_eq!(total, 3_500);
    wait_for_stream_len(&js_c, boundary, total, Duration::from_secs(30)).await?;
    let head = writer_store.head(boundary).await?;
    wait_for_checkpoint(coord_c.as_ref(), boundary, head).await?;
    c.stop().await?;
    assert_stream_matches_store(&js_c, writer_store.as_ref(), boundary).await?;
    delete_stream(&js_c, boundary).await;
    Ok(())
}

/// A nats-server child process of our own, with JetStream file storage in a directory we keep
/// across restarts. Killed when dropped.
pub struct NatsServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

fn nats_server_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("NATS_SERVER_BIN") {
        return bin.into();
    }
    for candidate in [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ] {
        if Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    "nats-server".into()
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl NatsServer {
    /// Starts a server on a free port with its store in `dir`, and waits until it accepts
    /// connections.
    pub async fn start(dir: &Path) -> Result<Self> {
        let mut server = Self {
            port: free_port()?,
            dir: dir.to_owned(),
            child: None,
        };
        server.restart().await?;
        Ok(server)
    }

    /// Returns the server's URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on the same port and directory and waits until it is ready.
    pub async fn restart(&mut self) -> Result<()> {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let child = Command::new(nats_server_bin())
                .args([
                    "-a",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-js",
                    "-sd",
                ])
                .arg(&self.dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("spawning nats-server (set NATS_SERVER_BIN if it is not in /usr/sbin)")?;
            self.child = Some(child);
            // Ready when it accepts a client connection; a child that exits (port not yet
            // free after the kill) is started again.
            loop {
                if let Some(status) = self
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten())
                {
                    self.child = None;
                    if Instant::now() >= deadline {
                        bail!("nats-server keeps exiting: {status}");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    break;
                }
                if let Ok(Ok(client)) = tokio::time::timeout(
                    Duration::from_millis(500),
                    async_nats::connect(self.url()),
                )
                .await
                {
                    // JetStream answers (here: "stream not found") once its store is recovered.
                    let probe = jetstream::new(client).get_stream("READINESS_PROBE").await;
                    if matches!(&probe, Err(e) if matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(_)))
                    {
                        return Ok(());
                    }
                }
                if Instant::now() >= deadline {
                    bail!("nats-server on port {} did not become ready", self.port);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
