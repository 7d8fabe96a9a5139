//! Test support for several nodes: a server on its own tokio runtime (so that killing it stops
//! every task it runs at once, with no release and no goodbye, like `SIGKILL`), clients, and
//! helpers to write and to follow a boundary over gRPC.

use crate::common::{event, http_get, Client, Credentials, TestDb, ADMIN, BOUNDARIES};
use clap::Parser;
use futures::StreamExt;
use orisun_proto as pb;
use orisun_proto::event_store_client::EventStoreClient;
use orisun_server::{Config, ServerError};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tonic::transport::Channel;

/// A server on its own runtime.
pub struct Node {
    /// Where gRPC is served.
    pub grpc: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<oneshot::Sender<()>>,
    done: Option<oneshot::Receiver<Result<(), ServerError>>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The flags of a PostgreSQL node on `db`.
pub fn pg_args(db: &TestDb, extra: &[&str]) -> Vec<String> {
    let mut args = db.server_args();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Returns the name of `db` (from its server flags).
pub fn db_name(db: &TestDb) -> String {
    let args = db.server_args();
    let at = args
        .iter()
        .position(|a| a == "--pg-name")
        .expect("--pg-name");
    args[at + 1].clone()
}

/// The test PostgreSQL server's connection string, with `dbname` set to `db`.
pub fn pg_connection(db: &TestDb) -> String {
    let server = std::env::var("ORISUN_TEST_PG")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres".to_owned());
    format!("{server} dbname={}", db_name(db))
}

/// Opens a direct connection to `db`, for test SQL.
pub async fn sql(db: &TestDb) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&pg_connection(db), tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

impl Node {
    /// Starts `orisun serve` with `args` (plus the test boundaries) on a runtime of its own and
    /// waits until `/ready` answers 200.
    pub async fn start(args: Vec<String>) -> Self {
        let grpc_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind gRPC");
        let http_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind HTTP");
        grpc_listener.set_nonblocking(true).expect("nonblocking");
        http_listener.set_nonblocking(true).expect("nonblocking");
        let grpc = grpc_listener.local_addr().expect("address");
        let http = http_listener.local_addr().expect("address");
        let mut full: Vec<String> = ["orisun serve", "--boundaries", BOUNDARIES]
            .iter()
            .map(|s| s.to_string())
            .collect();
        full.extend(args);
        let config = Config::try_parse_from(&full).expect("test configuration parses");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("node")
            .enable_all()
            .build()
            .expect("node runtime");
        let (stop, stopped) = oneshot::channel::<()>();
        let (done_tx, done) = oneshot::channel();
        runtime.spawn(async move {
            let grpc = tokio::net::TcpListener::from_std(grpc_listener).expect("listener");
            let http = tokio::net::TcpListener::from_std(http_listener).expect("listener");
            let result = orisun_server::serve(config, grpc, http, async move {
                let _ = stopped.await;
            })
            .await;
            let _ = done_tx.send(result);
        });
        let node = Self {
            grpc,
            runtime: Some(runtime),
            stop: Some(stop),
            done: Some(done),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, _)) = http_get(http, "/ready").await {
                return node;
            }
            assert!(Instant::now() < deadline, "node not ready in 60 s");
            // A readiness poll, not a guess: we go on as soon as /ready says 200.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Kills the node: every task it runs stops where it is (no release, no graceful end);
    /// its sockets close.
    pub fn kill(mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }

    /// Stops the node gracefully and returns what `serve` returned.
    pub async fn stop(mut self) -> Result<(), ServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let done = self.done.take().expect("running");
        done.await.expect("server finished")
    }

    /// An EventStore client authenticated as the bootstrap admin.
    pub async fn client(&self) -> Client {
        let channel = Channel::from_shared(format!("http://{}", self.grpc))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        EventStoreClient::with_interceptor(channel, Credentials::basic(ADMIN.0, ADMIN.1))
    }
}

/// A subscription request on `boundary` after `after`, optionally named and filtered.
pub fn subscription(
    boundary: &str,
    after: Option<pb::Position>,
    name: &str,
    criteria: Vec<pb::Criterion>,
) -> pb::CatchUpSubscribeToEventStoreRequest {
    pb::CatchUpSubscribeToEventStoreRequest {
        after_position: after,
        query: (!criteria.is_empty()).then_some(pb::Query { criteria }),
        subscriber_name: name.to_owned(),
        boundary: boundary.to_owned(),
    }
}

/// Opens a subscription.
pub async fn subscribe(
    client: &mut Client,
    request: pb::CatchUpSubscribeToEventStoreRequest,
) -> tonic::Streaming<pb::Event> {
    client
        .catch_up_subscribe_to_events(request)
        .await
        .expect("subscribed")
        .into_inner()
}

/// Saves `events` to `boundary` without a condition.
pub async fn save(
    client: &mut Client,
    boundary: &str,
    events: Vec<pb::EventToSave>,
) -> pb::Position {
    client
        .save_events(pb::SaveEventsRequest {
            boundary: boundary.to_owned(),
            query: None,
            events,
        })
        .await
        .expect("saved")
        .into_inner()
        .log_position
        .expect("position")
}

/// An event marking the end of a test's writes.
pub fn sentinel() -> pb::EventToSave {
    event("End", serde_json::json!({"end": true}))
}

/// Reads `stream` until the event with id `last` (inclusive), failing after `within`.
pub async fn read_until(
    stream: &mut tonic::Streaming<pb::Event>,
    last: &str,
    within: Duration,
) -> Vec<pb::Event> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let next = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "event {last} not received in {within:?} ({} seen)",
                    seen.len()
                )
            })
            .expect("stream open")
            .expect("event");
        let done = next.event_id == last;
        seen.push(next);
        if done {
            return seen;
        }
    }
}

/// Returns `(commit, prepare)` of an event.
pub fn position(event: &pb::Event) -> (i64, i64) {
    let p = event.position.expect("position");
    (p.commit_position, p.prepare_position)
}

/// Asserts that `seen` is in strictly increasing position order (hence has no duplicate).
#[track_caller]
pub fn assert_ordered(seen: &[pb::Event]) {
    for pair in seen.windows(2) {
        assert!(
            position(&pair[0]) < position(&pair[1]),
            "out of order or repeated: {:?} then {:?}",
            position(&pair[0]),
            position(&pair[1])
        );
    }
}
