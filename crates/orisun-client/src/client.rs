//! [`OrisunClient`] and the way every call is made: credentials from the session, a deadline
//! per attempt, one Basic fallback for a rejected token, and retries of transient failures.

use crate::auth::Session;
use crate::retry::{self, RetryPolicy};
use crate::ClientBuilder;
use orisun_proto::admin_client::AdminClient;
use orisun_proto::event_store_client::EventStoreClient;
use orisun_proto::{self as pb, status};
use orisun_store::StoreError;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};

/// A client of one Orisun server that implements [`orisun_store::EventStore`] over gRPC.
///
/// Cheap to clone: clones share the connection and the session token. See the
/// [crate documentation](crate) for what it guarantees.
#[derive(Clone)]
pub struct OrisunClient {
    inner: Arc<Inner>,
}

/// What the clones of a client share.
pub(crate) struct Inner {
    /// The endpoint URL, for messages.
    endpoint: String,
    /// The HTTP/2 connection, reopened by tonic when it breaks.
    channel: Channel,
    session: Session,
    retry: RetryPolicy,
    request_timeout: Option<Duration>,
    max_message_size: usize,
    /// The server's storage backend, which `CreateBoundary` must name; asked once.
    pub(crate) backend: tokio::sync::OnceCell<String>,
}

impl Inner {
    pub(crate) fn new(
        endpoint: String,
        channel: Channel,
        session: Session,
        retry: RetryPolicy,
        request_timeout: Option<Duration>,
        max_message_size: usize,
    ) -> Self {
        Self {
            endpoint,
            channel,
            session,
            retry,
            request_timeout,
            max_message_size,
            backend: tokio::sync::OnceCell::new(),
        }
    }
}

impl std::fmt::Debug for OrisunClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrisunClient")
            .field("endpoint", &self.inner.endpoint)
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

/// How an attempt is bounded in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The whole call is bounded by the request timeout, which the server is told too.
    Unary,
    /// Only the opening of the stream is bounded: a subscription lives as long as its reader.
    Stream,
}

impl OrisunClient {
    /// Starts configuring a client of the server at `endpoint` (`http://host:port` or
    /// `https://host:port`).
    pub fn builder(endpoint: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(endpoint)
    }

    pub(crate) fn from_inner(inner: Arc<Inner>) -> Self {
        Self { inner }
    }

    /// The endpoint this client calls.
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    /// The session token the server returned last (`None` before the first successful call),
    /// e.g. to hand to another process's [`ClientBuilder::session_token`].
    pub fn session_token(&self) -> Option<String> {
        self.inner.session.token()
    }

    /// The retry policy of this client.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.inner.retry
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// Checks that the server answers and accepts the credentials.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.call("Ping", &pb::PingRequest {}, |r| {
            let mut c = self.event_store();
            async move { c.ping(r).await }
        })
        .await
        .map(drop)
        .map_err(|s| status::store_error(&s))
    }

    /// A stub of the `orisun.EventStore` service on the shared connection.
    pub(crate) fn event_store(&self) -> EventStoreClient<Channel> {
        EventStoreClient::new(self.inner.channel.clone())
            .max_decoding_message_size(self.inner.max_message_size)
            .max_encoding_message_size(self.inner.max_message_size)
    }

    /// A stub of the `orisun.Admin` service on the shared connection.
    pub(crate) fn admin(&self) -> AdminClient<Channel> {
        AdminClient::new(self.inner.channel.clone())
            .max_decoding_message_size(self.inner.max_message_size)
            .max_encoding_message_size(self.inner.max_message_size)
    }

    /// Makes a unary call with `send`, retrying transient failures as the policy allows.
    ///
    /// Only idempotent calls come here: reads, and saves, which are idempotent because their
    /// event ids make the server report a retried batch at its original position.
    pub(crate) async fn call<M, R, F, Fut>(
        &self,
        rpc: &'static str,
        message: &M,
        send: F,
    ) -> Result<Response<R>, Status>
    where
        M: Clone,
        F: Fn(Request<M>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        let mut failures = 0;
        loop {
            match self.authenticated(Kind::Unary, message, &send).await {
                Ok(response) => return Ok(response),
                Err(status) => {
                    failures += 1;
                    if !(retry::is_transient(&status) && self.inner.retry.allows_retry(failures)) {
                        return Err(status);
                    }
                    let wait = self.inner.retry.backoff(failures);
                    tracing::debug!(rpc, failures, ?wait, code = ?status.code(),
                        message = status.message(), "retrying a call");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Makes one attempt, repeated once with Basic credentials when the server rejects the
    /// session token.
    pub(crate) async fn authenticated<M, R, F, Fut>(
        &self,
        kind: Kind,
        message: &M,
        send: &F,
    ) -> Result<Response<R>, Status>
    where
        M: Clone,
        F: Fn(Request<M>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        let (sent, result) = self.attempt(kind, message.clone(), false, send).await;
        match result {
            Err(status)
                if status.code() == Code::Unauthenticated && self.inner.session.rejected(&sent) =>
            {
                tracing::debug!(
                    message = status.message(),
                    "session token rejected, sending the password"
                );
                self.attempt(kind, message.clone(), true, send).await.1
            }
            other => other,
        }
    }

    async fn attempt<M, R, F, Fut>(
        &self,
        kind: Kind,
        message: M,
        force_basic: bool,
        send: &F,
    ) -> (crate::auth::Sent, Result<Response<R>, Status>)
    where
        F: Fn(Request<M>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        let mut request = Request::new(message);
        let sent = self
            .inner
            .session
            .authorize(request.metadata_mut(), force_basic);
        let result = match self.inner.request_timeout {
            Some(timeout) => {
                if kind == Kind::Unary {
                    request.set_timeout(timeout);
                }
                tokio::time::timeout(timeout, send(request))
                    .await
                    .unwrap_or_else(|_| {
                        Err(Status::deadline_exceeded(format!(
                            "no answer from {} within {timeout:?}",
                            self.inner.endpoint
                        )))
                    })
            }
            None => send(request).await,
        };
        match &result {
            Ok(response) => self.inner.session.observe(response.metadata()),
            Err(status) => self.inner.session.observe(status.metadata()),
        }
        (sent, result)
    }
}
