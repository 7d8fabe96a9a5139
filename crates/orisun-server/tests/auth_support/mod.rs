//! Support for the authentication and Admin tests: nodes started with `serve`/`serve_with_store`
//! (so several nodes can share one store or one database), raw credential headers, and helpers
//! that read the `x-auth-token` response header.
//!
//! Uses the server's shared harness in `tests/common` (the test file declares `mod common;`).

#![allow(dead_code)]

use crate::common::{self, Credentials, ADMIN, BOUNDARIES};
use clap::Parser;
use orisun_proto as pb;
use orisun_proto::admin_client::AdminClient;
use orisun_proto::event_store_client::EventStoreClient;
use orisun_server::{Config, ServerError};
use orisun_store::EventStore;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::Channel;
use tonic::{Request, Status};

/// An Admin client with credentials.
pub type Admin = AdminClient<InterceptedService<Channel, Headers>>;
/// An EventStore client with credentials.
pub type Events = EventStoreClient<InterceptedService<Channel, Headers>>;

/// Arbitrary request headers added to every call (credentials, possibly malformed).
#[derive(Clone, Default)]
pub struct Headers(pub Vec<(&'static str, String)>);

impl Headers {
    /// No headers.
    pub fn none() -> Self {
        Self(Vec::new())
    }

    /// `authorization: Basic base64(user:password)`.
    pub fn basic(user: &str, password: &str) -> Self {
        Self(vec![("authorization", basic_value(user, password))])
    }

    /// `x-auth-token: token`.
    pub fn token(token: &str) -> Self {
        Self(vec![("x-auth-token", token.to_owned())])
    }

    /// A raw `authorization` header.
    pub fn authorization(value: &str) -> Self {
        Self(vec![("authorization", value.to_owned())])
    }

    /// These headers plus `other`'s.
    pub fn and(mut self, other: Headers) -> Self {
        self.0.extend(other.0);
        self
    }
}

/// The value of a Basic `authorization` header.
pub fn basic_value(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

impl Interceptor for Headers {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        for (name, value) in &self.0 {
            let value: MetadataValue<_> = value
                .parse()
                .map_err(|_| Status::internal("test header is not ASCII"))?;
            request.metadata_mut().insert(*name, value);
        }
        Ok(request)
    }
}

/// Returns the `x-auth-token` header of a response.
pub fn token_of<T>(response: &tonic::Response<T>) -> String {
    response
        .metadata()
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .expect("response carries x-auth-token")
        .to_owned()
}

/// One running server ("node").
pub struct Node {
    /// gRPC address.
    pub grpc: SocketAddr,
    /// Admin HTTP address.
    pub http: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServerError>>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Node {
    /// Starts `orisun serve` with `args` (after the declared test boundaries), over `store` when
    /// given (the backend named by `--backend` must then be `memory`), else over the backend the
    /// arguments select.
    pub async fn start(args: &[String], store: Option<Arc<dyn EventStore>>) -> Self {
        let grpc_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind gRPC");
        let http_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind HTTP");
        let grpc = grpc_listener.local_addr().expect("gRPC address");
        let http = http_listener.local_addr().expect("HTTP address");
        let mut argv: Vec<String> = vec![
            "orisun serve".into(),
            "--boundaries".into(),
            BOUNDARIES.into(),
        ];
        argv.extend(args.iter().cloned());
        let config = Config::try_parse_from(&argv).expect("test configuration parses");
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let task = match store {
            Some(store) => tokio::spawn(orisun_server::serve_with_store(
                config,
                store,
                grpc_listener,
                http_listener,
                shutdown,
            )),
            None => tokio::spawn(orisun_server::serve(
                config,
                grpc_listener,
                http_listener,
                shutdown,
            )),
        };
        let mut node = Self {
            grpc,
            http,
            stop: Some(stop),
            task: Some(task),
        };
        node.wait_ready().await;
        node
    }

    /// Starts a node over a memory store (shared when the same store is passed twice).
    pub async fn memory(store: Arc<dyn EventStore>, extra: &[&str]) -> Self {
        let mut args: Vec<String> = vec!["--backend".into(), "memory".into()];
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::start(&args, Some(store)).await
    }

    async fn wait_ready(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, _)) = common::http_get(self.http, "/ready").await {
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
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the node gracefully.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// A channel to the node.
    pub async fn channel(&self) -> Channel {
        channel(self.grpc).await
    }

    /// An Admin client sending `headers`.
    pub async fn admin(&self, headers: Headers) -> Admin {
        AdminClient::with_interceptor(self.channel().await, headers)
    }

    /// An EventStore client sending `headers`.
    pub async fn events(&self, headers: Headers) -> Events {
        EventStoreClient::with_interceptor(self.channel().await, headers)
    }
}

/// A channel to `addr`.
pub async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect")
}

/// An Admin client to `addr` sending `headers`.
pub async fn admin_at(addr: SocketAddr, headers: Headers) -> Admin {
    AdminClient::with_interceptor(channel(addr).await, headers)
}

/// An EventStore client to `addr` sending `headers`.
pub async fn events_at(addr: SocketAddr, headers: Headers) -> Events {
    EventStoreClient::with_interceptor(channel(addr).await, headers)
}

/// The bootstrap admin's headers.
pub fn admin_headers() -> Headers {
    Headers::basic(ADMIN.0, ADMIN.1)
}

/// Creates a user through `addr`'s Admin service as the bootstrap admin; returns it.
pub async fn create_user(
    addr: SocketAddr,
    username: &str,
    password: &str,
    roles: &[&str],
) -> pb::AdminUser {
    admin_at(addr, admin_headers())
        .await
        .create_user(pb::CreateUserRequest {
            name: format!("{username} (test)"),
            username: username.to_owned(),
            password: password.to_owned(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        })
        .await
        .expect("user created")
        .into_inner()
        .user
        .expect("user in response")
}

/// Pings `addr` with `headers`; returns the response (with its headers) or the status.
pub async fn ping(
    addr: SocketAddr,
    headers: Headers,
) -> Result<tonic::Response<pb::PingResponse>, Status> {
    events_at(addr, headers)
        .await
        .ping(pb::PingRequest {})
        .await
}

/// Retries `check` every 20 ms for up to `within`, returning as soon as it holds.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `Credentials` of the shared harness for the bootstrap admin (for its helpers).
pub fn admin_credentials() -> Credentials {
    Credentials::basic(ADMIN.0, ADMIN.1)
}
