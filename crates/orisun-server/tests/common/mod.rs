//! Test support: a real server on `127.0.0.1:0` over the memory, SQLite (temporary directory)
//! or PostgreSQL (a fresh database per test) backend, awaited through its readiness probe, and
//! authenticated tonic clients built from our proto.
//!
//! PostgreSQL comes from `ORISUN_TEST_PG` (libpq-style), by default
//! `host=127.0.0.1 port=5432 user=postgres`.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use base64::Engine;
use clap::Parser;
use orisun_proto as pb;
use orisun_proto::admin_client::AdminClient;
use orisun_proto::event_store_client::EventStoreClient;
use orisun_server::{Config, ServerError};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

/// Which backend a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `MemoryStore`.
    Memory,
    /// `SqliteStore` in a temporary directory.
    Sqlite,
    /// `PostgresStore` on a database created for the test.
    Postgres,
}

/// The boundaries every test server declares (besides the admin boundary).
pub const BOUNDARIES: &str = r#"[{"name":"orders","description":"orders"},{"name":"payments"}]"#;

/// The bootstrap administrator's credentials.
pub const ADMIN: (&str, &str) = ("admin", "changeit");

/// A running server, stopped (gracefully) by [`TestServer::stop`] or aborted on drop.
pub struct TestServer {
    /// Where gRPC is served.
    pub grpc: SocketAddr,
    /// Where the admin HTTP endpoint is served.
    pub http: SocketAddr,
    /// The CA (PEM) of the admin port's certificate when it serves HTTPS (gRPC TLS enabled).
    pub tls_ca: Option<Vec<u8>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServerError>>>,
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
    /// Starts a server with the test defaults.
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, &[]).await
    }

    /// Starts a server configured only by `args` (plus the test boundaries), e.g. on a data
    /// directory the test keeps across restarts.
    pub async fn start_raw(args: &[&str]) -> Self {
        Self::launch(args.iter().map(|s| s.to_string()).collect(), None, None).await
    }

    /// Starts a server with extra `orisun serve` flags.
    pub async fn start_with(backend: Backend, extra: &[&str]) -> Self {
        let mut args = Vec::new();
        let mut dir = None;
        let mut db = None;
        match backend {
            Backend::Memory => args.extend(["--backend".into(), "memory".into()]),
            Backend::Sqlite => {
                let d = tempfile::tempdir().expect("tempdir");
                args.extend([
                    "--backend".into(),
                    "sqlite".into(),
                    "--data-dir".into(),
                    d.path().display().to_string(),
                    "--sqlite-synchronous".into(),
                    "OFF".into(),
                ]);
                dir = Some(d);
            }
            Backend::Postgres => {
                let d = TestDb::create().await;
                args.extend(d.server_args());
                db = Some(d);
            }
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::launch(args, dir, db).await
    }

    async fn launch(
        extra: Vec<String>,
        dir: Option<tempfile::TempDir>,
        db: Option<TestDb>,
    ) -> Self {
        let grpc_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind gRPC");
        let http_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind HTTP");
        let grpc = grpc_listener.local_addr().expect("gRPC address");
        let http = http_listener.local_addr().expect("HTTP address");
        let mut args: Vec<String> = ["orisun serve", "--boundaries", BOUNDARIES]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(extra);
        let config = Config::try_parse_from(&args).expect("test configuration parses");
        // The test certificates are signed by the CA the TLS tests pass as the client CA.
        let tls_ca = config
            .tls
            .grpc_tls_enabled
            .then(|| std::fs::read(&config.tls.grpc_tls_ca_file).ok())
            .flatten();
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
            http,
            tls_ca,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
            _db: db,
        };
        server.wait_ready().await;
        server
    }

    /// Sends `GET path` to the admin port, over HTTPS when it serves TLS.
    pub async fn admin_get(&self, path: &str) -> std::io::Result<(u16, String)> {
        match &self.tls_ca {
            Some(ca) => https_get(self.http, path, ca).await,
            None => http_get(self.http, path).await,
        }
    }

    /// Polls `/ready` until it answers 200; fails at once if the server task ended.
    async fn wait_ready(&mut self) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if let Ok((200, _)) = self.admin_get("/ready").await {
                return;
            }
            if self.task.as_ref().is_some_and(|t| t.is_finished()) {
                let task = self.task.take().expect("task");
                panic!("server stopped during start-up: {:?}", task.await);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "server not ready in 60 s"
            );
            // A readiness poll, not a guess: we go on as soon as /ready says 200.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Triggers the graceful shutdown and returns what `serve` returned.
    pub async fn stop(mut self) -> Result<(), ServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().expect("server task");
        task.await.expect("server task joined")
    }

    /// Starts the graceful shutdown without waiting for it.
    pub fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits for the server task after [`TestServer::begin_stop`].
    pub async fn join(mut self) -> Result<(), ServerError> {
        let task = self.task.take().expect("server task");
        task.await.expect("server task joined")
    }

    /// Opens a channel to the gRPC port.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.grpc))
            .expect("uri")
            .connect()
            .await
            .expect("connect")
    }

    /// An EventStore client authenticated as the bootstrap admin.
    pub async fn client(&self) -> Client {
        self.client_as(ADMIN.0, ADMIN.1).await
    }

    /// An EventStore client authenticated with Basic credentials.
    pub async fn client_as(&self, user: &str, password: &str) -> Client {
        EventStoreClient::with_interceptor(self.channel().await, Credentials::basic(user, password))
    }

    /// An EventStore client that sends no credentials.
    pub async fn anonymous(&self) -> Client {
        EventStoreClient::with_interceptor(self.channel().await, Credentials::None)
    }

    /// An Admin client authenticated as the bootstrap admin.
    pub async fn admin(&self) -> AdminClient<InterceptedService<Channel, Credentials>> {
        AdminClient::with_interceptor(self.channel().await, Credentials::basic(ADMIN.0, ADMIN.1))
    }

    /// Creates a user with the given roles through the Admin service.
    pub async fn create_user(&self, username: &str, password: &str, roles: &[&str]) {
        self.admin()
            .await
            .create_user(pb::CreateUserRequest {
                name: username.to_owned(),
                username: username.to_owned(),
                password: password.to_owned(),
                roles: roles.iter().map(|r| r.to_string()).collect(),
            })
            .await
            .expect("user created");
    }
}

/// An authenticated EventStore client.
pub type Client = EventStoreClient<InterceptedService<Channel, Credentials>>;

/// Adds credentials to every call.
#[derive(Clone)]
pub enum Credentials {
    /// `authorization: Basic ...`.
    Basic(MetadataValue<tonic::metadata::Ascii>),
    /// `x-auth-token: ...`.
    Token(MetadataValue<tonic::metadata::Ascii>),
    /// Nothing.
    None,
}

impl Credentials {
    /// Basic credentials.
    pub fn basic(user: &str, password: &str) -> Self {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Self::Basic(format!("Basic {encoded}").parse().expect("ascii"))
    }

    /// A session token.
    pub fn token(token: &str) -> Self {
        Self::Token(token.parse().expect("ascii"))
    }
}

impl Interceptor for Credentials {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        match self {
            Credentials::Basic(v) => {
                request.metadata_mut().insert("authorization", v.clone());
            }
            Credentials::Token(v) => {
                request.metadata_mut().insert("x-auth-token", v.clone());
            }
            Credentials::None => {}
        }
        Ok(request)
    }
}

/// Sends `GET path` over HTTP/1.1 and returns the status code and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    Ok((status, body))
}

/// Sends `GET path` over HTTPS (HTTP/1.1), trusting only the CA `ca_pem`, to `localhost`.
pub async fn https_get(
    addr: SocketAddr,
    path: &str,
    ca_pem: &[u8],
) -> std::io::Result<(u16, String)> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots
            .add(cert.map_err(std::io::Error::other)?)
            .map_err(std::io::Error::other)?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").map_err(std::io::Error::other)?;
    let mut stream = connector.connect(name, tcp).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut response = Vec::new();
    // A server may close without close_notify; what was read still counts.
    if let Err(e) = stream.read_to_end(&mut response).await {
        if response.is_empty() {
            return Err(e);
        }
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    Ok((status, body))
}

/// Asserts a call failed with `code` and exactly `message`.
#[track_caller]
pub fn assert_status<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, message: &str) {
    match result {
        Ok(v) => panic!("expected {code:?} {message:?}, got Ok({v:?})"),
        Err(s) => {
            assert_eq!(
                (s.code(), s.message()),
                (code, message),
                "unexpected status"
            );
        }
    }
}

/// A new event with a fresh UUIDv7 id.
pub fn event(event_type: &str, data: serde_json::Value) -> pb::EventToSave {
    pb::EventToSave {
        event_id: uuid::Uuid::now_v7().to_string(),
        event_type: event_type.to_owned(),
        data: data.to_string(),
        metadata: String::new(),
    }
}

/// A position.
pub fn pos(commit: i64, prepare: i64) -> pb::Position {
    pb::Position {
        commit_position: commit,
        prepare_position: prepare,
    }
}

/// A criterion of `key=value` tags.
pub fn criterion(tags: &[(&str, &str)]) -> pb::Criterion {
    pb::Criterion {
        tags: tags
            .iter()
            .map(|(k, v)| pb::Tag {
                key: k.to_string(),
                value: v.to_string(),
            })
            .collect(),
    }
}

/// Reads every event of a boundary, oldest first.
pub async fn read_all<I: Interceptor>(
    client: &mut EventStoreClient<InterceptedService<Channel, I>>,
    boundary: &str,
) -> Vec<pb::Event> {
    client
        .get_events(pb::GetEventsRequest {
            boundary: boundary.to_owned(),
            count: 10_000,
            ..Default::default()
        })
        .await
        .expect("read all")
        .into_inner()
        .events
}

/// A PostgreSQL database created for one test, dropped with this value.
pub struct TestDb {
    name: String,
    host: String,
    port: u16,
    user: String,
}

impl TestDb {
    fn server() -> tokio_postgres::Config {
        let text = std::env::var("ORISUN_TEST_PG")
            .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres".to_owned());
        let mut config: tokio_postgres::Config = text.parse().expect("ORISUN_TEST_PG parses");
        config.dbname("postgres");
        config
    }

    async fn execute(sql: String) -> Result<(), tokio_postgres::Error> {
        let (client, connection) = Self::server().connect(tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client.batch_execute(&sql).await
    }

    /// Creates an empty database `orisun_srv_<random>`.
    pub async fn create() -> Self {
        let server = Self::server();
        let name = format!("orisun_srv_{}", uuid::Uuid::new_v4().simple());
        Self::execute(format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create database (is PostgreSQL running? set ORISUN_TEST_PG)");
        let host = match server.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".to_owned(),
        };
        Self {
            name,
            host,
            port: server.get_ports().first().copied().unwrap_or(5432),
            user: server.get_user().unwrap_or("postgres").to_owned(),
        }
    }

    /// The store configuration of this database, for a library-mode process beside servers.
    pub fn pg_config(&self) -> orisun_postgres::PostgresConfig {
        orisun_postgres::PostgresConfig {
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            dbname: self.name.clone(),
            pool_size: 4,
            ..orisun_postgres::PostgresConfig::default()
        }
    }

    /// The `orisun serve` flags that select this database.
    pub fn server_args(&self) -> Vec<String> {
        [
            "--backend",
            "postgres",
            "--pg-host",
            &self.host,
            "--pg-port",
            &self.port.to_string(),
            "--pg-user",
            &self.user,
            "--pg-name",
            &self.name,
            "--pg-schemas",
            "orisun_admin:admin,orders:public",
            "--pg-write-max-open-conns",
            "3",
            "--pg-read-max-open-conns",
            "3",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Nothing can be awaited here: drop the database from a thread with its own runtime.
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(TestDb::execute(format!(
                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
            )))
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}: {dropped:?}", self.name);
        }
    }
}

/// Generates one `#[tokio::test]` per backend for each listed `async fn(Backend)`.
#[macro_export]
macro_rules! per_backend {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::common::Backend::Memory).await })*
        }
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::common::Backend::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::common::Backend::Postgres).await })*
        }
    };
}
