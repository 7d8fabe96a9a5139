//! The server's configuration: every `ORISUN_*` environment variable, its default and its
//! validation, parsed by clap (so `orisun serve --help` lists them all).
//!
//! Each setting can also be given as a command-line flag; the flag wins over the variable. The
//! value name shown in errors and help is the variable's name, so an invalid value stops start-up
//! with a message that names the variable to fix.
//!
//! [`Config`] is made of one flattened section per concern, each in its own file beside the
//! conversion into the configuration type of the crate it sets up: [`StorageSection`],
//! [`SqliteSection`], [`PostgresSection`], [`BoundariesSection`], [`AuthSection`],
//! [`GrpcSection`], [`AdminHttpSection`], [`TlsSection`], [`NatsSection`],
//! [`SubscriptionsSection`], [`LoggingSection`], [`MetricsSection`], [`OtelSection`] and
//! [`PprofSection`]. This file holds what spans sections: the
//! backend choice, the start-up boundaries and the checks that involve several sections.

mod admin_http;
mod auth;
mod boundaries;
mod duration;
mod grpc;
mod logging;
mod metrics;
mod nats;
mod otel;
mod postgres;
mod pprof;
mod sqlite;
mod storage;
mod subscriptions;
mod tls;

pub use admin_http::AdminHttpSection;
pub use auth::AuthSection;
pub use boundaries::{BoundariesSection, BoundaryDef, BoundaryList};
pub use duration::parse_duration;
pub use grpc::GrpcSection;
pub use logging::{LogFormat, LogLevel, LoggingSection};
pub use metrics::MetricsSection;
pub use nats::NatsSection;
pub use otel::OtelSection;
pub use postgres::{PgSslMode, PostgresSection, SchemaMapping};
pub use pprof::PprofSection;
pub use sqlite::{SqliteSection, SqliteSynchronous};
pub use storage::{BackendKind, StorageSection};
pub use subscriptions::SubscriptionsSection;
pub use tls::TlsSection;

use clap::Parser;
use orisun_core::BoundaryName;
use std::net::SocketAddr;

/// The whole configuration of `orisun serve`.
///
/// The sections are flattened in the order their variables appear in `--help`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "orisun serve",
    about = "Runs the Orisun event store server (gRPC API and admin HTTP endpoint).",
    long_about = "Runs the Orisun event store server. Every setting is read from its ORISUN_* \
                  environment variable; a command-line flag overrides the variable."
)]
pub struct Config {
    /// Backend choice and data directory.
    #[command(flatten)]
    pub storage: StorageSection,

    /// Embedded (SQLite) backend settings.
    #[command(flatten)]
    pub sqlite: SqliteSection,

    /// PostgreSQL backend settings.
    #[command(flatten)]
    pub postgres: PostgresSection,

    /// Boundaries declared for creation at start-up.
    #[command(flatten)]
    pub boundaries: BoundariesSection,

    /// Admin boundary, bootstrap administrator and tokens.
    #[command(flatten)]
    pub auth: AuthSection,

    /// gRPC listen address, limits and shutdown timeout.
    #[command(flatten)]
    pub grpc: GrpcSection,

    /// Admin HTTP endpoint.
    #[command(flatten)]
    pub admin_http: AdminHttpSection,

    /// gRPC TLS.
    #[command(flatten)]
    pub tls: TlsSection,

    /// NATS publishing.
    #[command(flatten)]
    pub nats: NatsSection,

    /// Exclusive subscribers.
    #[command(flatten)]
    pub subscriptions: SubscriptionsSection,

    /// Log level and format.
    #[command(flatten)]
    pub logging: LoggingSection,

    /// `/metrics` access.
    #[command(flatten)]
    pub metrics: MetricsSection,

    /// OpenTelemetry traces.
    #[command(flatten)]
    pub otel: OtelSection,

    /// CPU profiler.
    #[command(flatten)]
    pub pprof: PprofSection,
}

impl Config {
    /// Parses the configuration from the environment only (no command-line flags), the way the
    /// server reads it when started without arguments.
    pub fn from_env() -> Result<Self, clap::Error> {
        Self::try_parse_from(["orisun serve"])
    }

    /// Returns the backend to use: ORISUN_BACKEND if set, else PostgreSQL when a host is set,
    /// else the embedded backend.
    pub fn backend_kind(&self) -> BackendKind {
        self.storage.backend_kind(self.postgres.pg_host.is_some())
    }

    /// Returns the gRPC listen address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc.addr()
    }

    /// Returns the admin HTTP listen address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_http.addr(self.grpc.host)
    }

    /// Returns every boundary to create at start-up, without repeats, in this order: the admin
    /// boundary, those of ORISUN_BOUNDARIES, those of ORISUN_PG_SCHEMAS.
    pub fn startup_boundaries(&self) -> Vec<BoundaryName> {
        let mut names = vec![self.auth.admin_boundary.clone()];
        let declared = self.boundaries.declared().iter().map(|b| b.name.clone());
        let mapped = self.postgres.pg_schemas.iter().map(|m| m.boundary.clone());
        for name in declared.chain(mapped) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }

    /// Returns the NATS settings when `ORISUN_NATS_URL` is set (and not empty), the admin
    /// boundary excluded from publishing; see [`NatsSection::nats_config`].
    pub fn nats_config(&self) -> Option<orisun_nats::NatsConfig> {
        self.nats.nats_config(&self.auth.admin_boundary)
    }

    /// Checks the rules that involve several variables; clap has checked each one alone.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.backend_kind() == BackendKind::Postgres && self.postgres.pg_host.is_none() {
            return Err(ConfigError::new(
                "ORISUN_PG_HOST",
                "must be set when ORISUN_BACKEND is postgres",
            ));
        }
        self.postgres.validate()?;
        self.boundaries.validate()?;
        self.auth.validate()?;
        self.subscriptions.validate()?;
        self.nats.validate()
    }
}

/// A configuration value that is invalid in combination with others.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {variable} {reason}")]
pub struct ConfigError {
    /// The environment variable to fix.
    pub variable: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    /// Creates an error about `variable`.
    pub fn new(variable: &'static str, reason: impl Into<String>) -> Self {
        Self {
            variable,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests;
