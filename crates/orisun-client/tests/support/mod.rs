//! Test harness: a real `orisun` server in this process (SQLite in a temporary directory, or a
//! PostgreSQL database made for it), awaited through `/ready`; clients of it; a TCP proxy the
//! test can cut; and [`Served`], a client that keeps its server alive, for the conformance
//! suite.
//!
//! PostgreSQL comes from `ORISUN_TEST_PG` (libpq style), by default
//! `host=127.0.0.1 port=5432 user=postgres`.

// Each test binary uses part of the harness.
#![allow(dead_code)]

use clap::Parser;
use orisun_client::{OrisunClient, RetryPolicy};
use orisun_postgres::testsuite::TestDb;
use orisun_store::core::{BoundaryName, NewEvent};
use orisun_store::testsuite::Owned;
use orisun_store::EventStore;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// The bootstrap administrator of every test server.
pub const ADMIN: (&str, &str) = ("admin", "changeit");

/// The storage a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite in a temporary directory, without fsync.
    Sqlite,
    /// PostgreSQL, on a database created for this server.
    Postgres,
}

/// A server running in this process; aborted when dropped.
pub struct TestServer {
    /// Where it serves gRPC.
    pub grpc: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), orisun_server::ServerError>>>,
    _dir: Option<tempfile::TempDir>,
    _db: Option<TestDb>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl TestServer {
    /// Starts a server on `backend` with extra `orisun serve` flags.
    pub async fn start(backend: Backend, extra: &[&str]) -> Self {
        let mut args: Vec<String> = ["orisun serve"].iter().map(|s| s.to_string()).collect();
        let (mut dir, mut db) = (None, None);
        match backend {
            Backend::Sqlite => {
                let d = tempfile::tempdir().expect("temporary directory");
                args.extend(
                    [
                        "--backend",
                        "sqlite",
                        "--data-dir",
                        &d.path().display().to_string(),
                        "--sqlite-synchronous",
                        "OFF",
                    ]
                    .map(String::from),
                );
                dir = Some(d);
            }
            Backend::Postgres => {
                let d = TestDb::create().await;
                args.extend(server_args(&d));
                db = Some(d);
            }
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let config = orisun_server::Config::try_parse_from(&args).expect("test flags parse");
        let grpc_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind gRPC");
        let http_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind HTTP");
        let grpc = grpc_listener.local_addr().expect("gRPC address");
        let http = http_listener.local_addr().expect("HTTP address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(orisun_server::serve(
            config,
            grpc_listener,
            http_listener,
            async move {
                let _ = stopped.await;
            },
        ));
        let mut server = Self {
            grpc,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
            _db: db,
        };
        // With gRPC TLS on, the admin port serves HTTPS, which this probe does not speak: the
        // gRPC listener is bound already and the router serves only once start-up is done, so
        // the client's first call waits for the server, and fails if the server did not start.
        if !extra.contains(&"--grpc-tls-enabled") {
            server.wait_ready(http).await;
        }
        server
    }

    /// Polls `/ready` until it says 200; fails at once if the server stopped.
    async fn wait_ready(&mut self, http: SocketAddr) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if ready(http).await {
                return;
            }
            if self.task.as_ref().is_some_and(|t| t.is_finished()) {
                let task = self.task.take().expect("task");
                panic!("the server stopped while starting: {:?}", task.await);
            }
            assert!(tokio::time::Instant::now() < deadline, "not ready in 60 s");
            // Polling the readiness probe, not guessing a delay.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().expect("server task");
        let _ = task.await.expect("server task joined");
    }

    /// `http://` + the gRPC address.
    pub fn url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// A client of this server, as the bootstrap administrator.
    pub fn client(&self) -> OrisunClient {
        client_of(&self.url())
    }
}

/// A client of `url` as the bootstrap administrator, with quick retries.
pub fn client_of(url: &str) -> OrisunClient {
    OrisunClient::builder(url)
        .credentials(ADMIN.0, ADMIN.1)
        .retry_policy(quick_retries())
        .build()
        .expect("client configuration")
}

/// Retries that keep tests fast: 8 attempts, 20 ms to 500 ms apart.
pub fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 8,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(500),
    }
}

async fn ready(http: SocketAddr) -> bool {
    let probe = async {
        let mut stream = TcpStream::connect(http).await?;
        stream
            .write_all(b"GET /ready HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            .await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer.starts_with(b"HTTP/1.1 200"))
    };
    probe.await.unwrap_or(false)
}

/// A client that keeps its server running, for the conformance suite: the suite's factory
/// returns only a store, and the server must live as long as it.
pub struct Served;

impl Served {
    /// Starts a server on `backend` and returns a client of it that owns the server.
    pub async fn start(backend: Backend) -> Arc<dyn EventStore> {
        let server = TestServer::start(backend, &[]).await;
        Arc::new(Owned::new(server.client(), server))
    }
}

/// The `orisun serve` flags that select `db`, with small pools.
fn server_args(db: &TestDb) -> Vec<String> {
    let config = db.config();
    [
        "--backend",
        "postgres",
        "--pg-host",
        &config.host,
        "--pg-port",
        &config.port.to_string(),
        "--pg-user",
        &config.user,
        "--pg-name",
        &config.dbname,
        "--pg-write-max-open-conns",
        "4",
        "--pg-read-max-open-conns",
        "4",
    ]
    .map(String::from)
    .to_vec()
}

/// A TCP proxy in front of a server. [`Proxy::cut`] closes every connection it carries (new
/// ones are accepted as before); [`Proxy::hold_responses`] stops forwarding what the server
/// sends until the next cut, so a call reaches the server but its answer never comes back.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// Bumped to cut the current connections.
    generation: watch::Sender<u64>,
    /// True while the server's bytes are held back.
    holding: watch::Sender<bool>,
    /// Connections accepted so far.
    accepted: Arc<AtomicUsize>,
    accept: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Proxy {
    /// Starts a proxy to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (generation, _) = watch::channel(0u64);
        let (holding, _) = watch::channel(false);
        let accepted = Arc::new(AtomicUsize::new(0));
        let accept = {
            let generation = generation.clone();
            let holding = holding.clone();
            let accepted = accepted.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let Ok(server) = TcpStream::connect(target).await else {
                        continue;
                    };
                    tokio::spawn(pipe(
                        client,
                        server,
                        generation.subscribe(),
                        holding.subscribe(),
                    ));
                }
            })
        };
        Self {
            addr,
            generation,
            holding,
            accepted,
            accept,
        }
    }

    /// `http://` + the proxy's address.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many connections clients have opened through the proxy.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Closes every connection open now.
    pub fn cut(&self) {
        self.holding.send_replace(false);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Swallows the server's bytes on every connection until [`Proxy::cut`].
    pub fn hold_responses(&self) {
        self.holding.send_replace(true);
    }
}

/// Copies bytes both ways until either side closes or the proxy cuts this connection.
async fn pipe(
    mut client: TcpStream,
    mut server: TcpStream,
    mut generation: watch::Receiver<u64>,
    holding: watch::Receiver<bool>,
) {
    generation.borrow_and_update();
    let (mut client_read, mut client_write) = client.split();
    let (mut server_read, mut server_write) = server.split();
    let upstream = tokio::io::copy(&mut client_read, &mut server_write);
    let downstream = async {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = server_read.read(&mut buffer).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            if *holding.borrow() {
                // Swallowed: this connection is cut before anything more gets through.
                continue;
            }
            client_write.write_all(&buffer[..n]).await?;
        }
    };
    tokio::select! {
        _ = upstream => {}
        _ = downstream => {}
        _ = generation.changed() => {}
    }
    // Dropping both sockets closes them: the client sees its connection end mid-call.
}

/// An event of type `event_type` with data `{"n": n}` and a fresh id.
pub fn numbered(event_type: &str, n: usize) -> NewEvent {
    let mut data = serde_json::Map::new();
    data.insert("n".into(), n.into());
    NewEvent::new(uuid::Uuid::now_v7(), event_type, data, Default::default()).expect("valid event")
}

/// A boundary name no other test uses.
pub fn unique_boundary() -> BoundaryName {
    BoundaryName::new(format!("t_{}", uuid::Uuid::new_v4().simple())).expect("valid name")
}
