//! The errors that stop the server from starting or running.

use crate::config::ConfigError;
use orisun_store::StoreError;

/// Why `serve` failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A configuration value is invalid (the message names the variable).
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// The storage backend could not be opened or refused a start-up step.
    #[error("storage: {0}")]
    Store(StoreError),

    /// Authentication could not start (admin boundary unreadable, bootstrap user not saved).
    #[error("authentication start-up failed: {0:#}")]
    Auth(anyhow::Error),

    /// The TLS settings could not be loaded.
    #[error("TLS: {0}")]
    Tls(String),

    /// The reflection service could not be built from the descriptors.
    #[error("gRPC reflection: {0}")]
    Reflection(String),

    /// The Prometheus recorder could not be installed.
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),

    /// `ORISUN_NATS_URL` could not be used.
    #[error("NATS: {0}")]
    Nats(orisun_nats::NatsError),

    /// A listener or the gRPC transport failed.
    #[error("gRPC transport: {0}")]
    Transport(tonic::transport::Error),

    /// An I/O error, with what was being done.
    #[error("{context}: {error}")]
    Io {
        /// What the server was doing.
        context: String,
        /// The underlying error.
        error: std::io::Error,
    },
}

impl ServerError {
    /// Wraps an I/O error with what the server was doing.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            error: source,
        }
    }
}

// Each variant's message already includes its cause, so none is declared as a `source`: an
// error chain printed with `{:#}` (as `orisun serve` does) would otherwise say it twice.

impl From<StoreError> for ServerError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<orisun_nats::NatsError> for ServerError {
    fn from(e: orisun_nats::NatsError) -> Self {
        Self::Nats(e)
    }
}

impl From<tonic::transport::Error> for ServerError {
    fn from(e: tonic::transport::Error) -> Self {
        Self::Transport(e)
    }
}
