//! [`ClientBuilder`]: how an [`OrisunClient`] is configured (endpoint, credentials, TLS,
//! timeouts, retries), and [`BuildError`], what building one can report.

use crate::auth::Session;
use crate::client::{Inner, OrisunClient};
use crate::RetryPolicy;
use orisun_store::StoreError;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

/// What can be wrong with a client's configuration.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The endpoint is not an `http://` or `https://` URL.
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    Endpoint {
        /// The endpoint given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Credentials that no call could carry, or none at all.
    #[error("invalid credentials: {0}")]
    Credentials(String),
    /// A TLS setting that cannot be used.
    #[error("invalid TLS configuration: {0}")]
    Tls(String),
    /// [`ClientBuilder::connect`] could not reach the server or authenticate.
    #[error("connecting: {0}")]
    Connect(#[source] StoreError),
}

/// The TLS settings of an `https://` endpoint.
#[derive(Debug, Clone, Default)]
struct Tls {
    /// PEM certificate(s) of the CA that signed the server's certificate; without it the
    /// system's trust store is used.
    ca_pem: Option<Vec<u8>>,
    /// The name the server's certificate must carry, when it differs from the endpoint's host.
    domain: Option<String>,
}

/// Configures an [`OrisunClient`]; start with [`OrisunClient::builder`].
#[derive(Clone)]
pub struct ClientBuilder {
    endpoint: String,
    credentials: Option<(String, String)>,
    session_token: Option<String>,
    tls: Option<Tls>,
    connect_timeout: Duration,
    request_timeout: Option<Duration>,
    keep_alive: Option<(Duration, Duration)>,
    retry: RetryPolicy,
    max_message_size: usize,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("endpoint", &self.endpoint)
            .field("username", &self.credentials.as_ref().map(|c| &c.0))
            .field("tls", &self.tls.is_some())
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// The defaults: connect timeout 5 s, request timeout 30 s, HTTP/2 keep-alive pings every
    /// 20 s (10 s to answer), [`RetryPolicy::default`], messages up to 64 MiB (the server's
    /// default limit).
    pub(crate) fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            credentials: None,
            session_token: None,
            tls: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Some(Duration::from_secs(30)),
            keep_alive: Some((Duration::from_secs(20), Duration::from_secs(10))),
            retry: RetryPolicy::default(),
            max_message_size: 64 * 1024 * 1024,
        }
    }

    /// Authenticates as `username` with `password` (Basic on the first call, then the session
    /// token the server returns).
    pub fn credentials(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some((username.into(), password.into()));
        self
    }

    /// Starts with a session token obtained earlier (see [`OrisunClient::session_token`]), so
    /// that the first call need not send the password. With credentials too, an expired token
    /// falls back to them; alone, calls fail once it expires.
    pub fn session_token(mut self, token: impl Into<String>) -> Self {
        self.session_token = Some(token.into());
        self
    }

    /// Trusts the CA certificate(s) in `pem` for the server's certificate (instead of the
    /// system's trust store). Needs an `https://` endpoint.
    pub fn ca_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls.get_or_insert_with(Tls::default).ca_pem = Some(pem.into());
        self
    }

    /// Expects the server's certificate to name `domain` (by default: the endpoint's host).
    /// Needs an `https://` endpoint.
    pub fn tls_domain(mut self, domain: impl Into<String>) -> Self {
        self.tls.get_or_insert_with(Tls::default).domain = Some(domain.into());
        self
    }

    /// How long opening a connection may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one attempt of a call may take (sent to the server as the call's deadline);
    /// `None` for no limit. A subscription is bounded only while it opens.
    pub fn request_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// HTTP/2 keep-alive: a ping every `interval`, and a connection unanswered for `timeout`
    /// counts as broken, so a subscription on a dead connection resumes instead of waiting
    /// forever. `None` sends no pings.
    pub fn keep_alive(mut self, ping: Option<(Duration, Duration)>) -> Self {
        self.keep_alive = ping;
        self
    }

    /// How calls are retried after a transient failure.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The largest message the client sends or accepts, in bytes.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Builds the client without connecting: the connection is opened by the first call (and
    /// opened again by the first call after it breaks). Must run inside a Tokio runtime.
    pub fn build(self) -> Result<OrisunClient, BuildError> {
        let session = Session::new(
            self.credentials
                .as_ref()
                .map(|(u, p)| (u.as_str(), p.as_str())),
            self.session_token.as_deref(),
        )?;
        let endpoint_error = |reason: String| BuildError::Endpoint {
            endpoint: self.endpoint.clone(),
            reason,
        };
        let mut endpoint = Endpoint::from_shared(self.endpoint.clone())
            .map_err(|e| endpoint_error(e.to_string()))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true);
        if let Some((interval, timeout)) = self.keep_alive {
            endpoint = endpoint
                .http2_keep_alive_interval(interval)
                .keep_alive_timeout(timeout)
                .keep_alive_while_idle(true);
        }
        match endpoint.uri().scheme_str() {
            Some("http") => {
                if self.tls.is_some() {
                    return Err(BuildError::Tls(
                        "a CA certificate or TLS domain needs an https:// endpoint".into(),
                    ));
                }
            }
            Some("https") => {
                let settings = self.tls.clone().unwrap_or_default();
                let mut tls = ClientTlsConfig::new();
                tls = match settings.ca_pem {
                    Some(pem) => tls.ca_certificate(Certificate::from_pem(pem)),
                    None => tls.with_native_roots(),
                };
                if let Some(domain) = settings.domain {
                    tls = tls.domain_name(domain);
                }
                endpoint = endpoint
                    .tls_config(tls)
                    .map_err(|e| BuildError::Tls(e.to_string()))?;
            }
            other => {
                return Err(endpoint_error(format!(
                    "the scheme must be http or https, not {other:?}"
                )))
            }
        }
        let channel = endpoint.connect_lazy();
        Ok(OrisunClient::from_inner(Arc::new(Inner::new(
            self.endpoint,
            channel,
            session,
            self.retry,
            self.request_timeout,
            self.max_message_size,
        ))))
    }

    /// Builds the client and checks that the server answers and accepts the credentials (one
    /// `Ping`, retried like any call).
    pub async fn connect(self) -> Result<OrisunClient, BuildError> {
        let client = self.build()?;
        client.ping().await.map_err(BuildError::Connect)?;
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bad_configurations_are_refused() {
        let ok = || ClientBuilder::new("http://127.0.0.1:5005").credentials("admin", "changeit");
        assert!(ok().build().is_ok());
        assert!(matches!(
            ClientBuilder::new("http://127.0.0.1:5005").build(),
            Err(BuildError::Credentials(_))
        ));
        assert!(matches!(
            ok().ca_certificate("pem").build(),
            Err(BuildError::Tls(_))
        ));
        let ftp = ClientBuilder::new("ftp://host")
            .credentials("a", "b")
            .build();
        assert!(matches!(ftp, Err(BuildError::Endpoint { .. })), "{ftp:?}");
        let garbage = ClientBuilder::new("not a url")
            .credentials("a", "b")
            .build();
        assert!(
            matches!(garbage, Err(BuildError::Endpoint { .. })),
            "{garbage:?}"
        );
    }

    #[test]
    fn debug_output_hides_the_password() {
        let builder = ClientBuilder::new("http://h:1").credentials("admin", "s3cret");
        let text = format!("{builder:?}");
        assert!(text.contains("admin") && !text.contains("s3cret"), "{text}");
    }
}
