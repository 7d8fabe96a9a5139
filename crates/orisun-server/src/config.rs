//! The server's configuration: every `ORISUN_*` environment variable, its default and its
//! validation, parsed by clap (so `orisun serve --help` lists them all).
//!
//! Each setting can also be given as a command-line flag; the flag wins over the variable. The
//! value name shown in errors and help is the variable's name, so an invalid value stops start-up
//! with a message that names the variable to fix.

use crate::auth::parse_duration;
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Parser, ValueEnum};
use orisun_core::BoundaryName;
use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Which storage backend holds the events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// The embedded, durable SQLite backend under `ORISUN_DATA_DIR` (no setup needed).
    Sqlite,
    /// PostgreSQL at `ORISUN_PG_HOST`, shared by every node of a cluster.
    Postgres,
    /// Everything in memory, lost at exit: for demos and tests only.
    Memory,
}

/// `PRAGMA synchronous` of the embedded backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum SqliteSynchronous {
    /// Every commit is fsynced: an acknowledged save survives a power loss.
    Full,
    /// Fsync at checkpoints only: the last saves before a power loss may be rolled back.
    Normal,
    /// No fsync: for throw-away data.
    Off,
}

/// `ORISUN_PG_SSLMODE`: only the modes that allow a plain connection are supported so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PgSslMode {
    /// Plain TCP (Go Orisun's default).
    Disable,
    /// Plain TCP (TLS would only be tried if the server demanded it; ours never asks).
    Allow,
    /// Plain TCP (TLS is not implemented yet, so "prefer" falls back to plain).
    Prefer,
}

/// Format of the log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// A boundary declared in `ORISUN_BOUNDARIES`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BoundaryDef {
    /// The boundary's name (an identifier: `[A-Za-z_][A-Za-z0-9_]*`, at most 63 characters).
    #[serde(deserialize_with = "de_boundary")]
    pub name: BoundaryName,
    /// Free text shown to operators.
    #[serde(default)]
    pub description: String,
}

/// One `boundary:schema` pair of `ORISUN_PG_SCHEMAS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaMapping {
    /// The boundary.
    pub boundary: BoundaryName,
    /// The PostgreSQL schema that holds its tables.
    pub schema: String,
}

/// The whole configuration of `orisun serve`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "orisun serve",
    about = "Runs the Orisun event store server (gRPC API and admin HTTP endpoint).",
    long_about = "Runs the Orisun event store server. Every setting is read from its ORISUN_* \
                  environment variable; a command-line flag overrides the variable."
)]
pub struct Config {
    // --- storage -------------------------------------------------------------------------
    /// Storage backend. Default: `postgres` when ORISUN_PG_HOST is set, else the embedded
    /// `sqlite` backend.
    #[arg(
        long,
        env = "ORISUN_BACKEND",
        value_name = "ORISUN_BACKEND",
        value_enum,
        ignore_case = true,
        help_heading = "Storage"
    )]
    pub backend: Option<BackendKind>,

    /// Directory of the embedded (SQLite) backend: one database file per boundary.
    #[arg(
        long,
        env = "ORISUN_DATA_DIR",
        value_name = "ORISUN_DATA_DIR",
        default_value = "./data",
        help_heading = "Storage"
    )]
    pub data_dir: PathBuf,

    /// Durability of an embedded-backend commit: FULL (fsync every commit), NORMAL, OFF.
    #[arg(
        long,
        env = "ORISUN_SQLITE_SYNCHRONOUS",
        value_name = "ORISUN_SQLITE_SYNCHRONOUS",
        value_enum,
        ignore_case = true,
        default_value = "FULL",
        help_heading = "Storage"
    )]
    pub sqlite_synchronous: SqliteSynchronous,

    /// PostgreSQL host; setting it selects the PostgreSQL backend.
    #[arg(
        long,
        env = "ORISUN_PG_HOST",
        value_name = "ORISUN_PG_HOST",
        help_heading = "PostgreSQL"
    )]
    pub pg_host: Option<String>,

    /// PostgreSQL port.
    #[arg(
        long,
        env = "ORISUN_PG_PORT",
        value_name = "ORISUN_PG_PORT",
        default_value_t = 5432,
        help_heading = "PostgreSQL"
    )]
    pub pg_port: u16,

    /// PostgreSQL user.
    #[arg(
        long,
        env = "ORISUN_PG_USER",
        value_name = "ORISUN_PG_USER",
        default_value = "postgres",
        help_heading = "PostgreSQL"
    )]
    pub pg_user: String,

    /// PostgreSQL password (none: trust or peer authentication).
    #[arg(
        long,
        env = "ORISUN_PG_PASSWORD",
        value_name = "ORISUN_PG_PASSWORD",
        hide_env_values = true,
        help_heading = "PostgreSQL"
    )]
    pub pg_password: Option<String>,

    /// PostgreSQL database.
    #[arg(
        long,
        env = "ORISUN_PG_NAME",
        value_name = "ORISUN_PG_NAME",
        default_value = "orisun",
        help_heading = "PostgreSQL"
    )]
    pub pg_name: String,

    /// PostgreSQL TLS mode: disable, allow or prefer (connections are plain for now;
    /// require/verify-ca/verify-full are refused rather than silently downgraded).
    #[arg(
        long,
        env = "ORISUN_PG_SSLMODE",
        value_name = "ORISUN_PG_SSLMODE",
        value_enum,
        ignore_case = true,
        default_value = "disable",
        help_heading = "PostgreSQL"
    )]
    pub pg_sslmode: PgSslMode,

    /// Comma-separated `boundary:schema` pairs: each boundary is created in that schema (its
    /// tables prefixed by the boundary name). Boundaries not listed go to schema `public`.
    #[arg(long, env = "ORISUN_PG_SCHEMAS", value_name = "ORISUN_PG_SCHEMAS", value_delimiter = ',', value_parser = parse_schema_mapping, help_heading = "PostgreSQL")]
    pub pg_schemas: Vec<SchemaMapping>,

    /// Keep a LISTEN connection so appends made by other nodes wake subscribers at once
    /// (without it they are noticed by a fallback poll).
    #[arg(long, env = "ORISUN_PG_LISTEN_ENABLED", value_name = "ORISUN_PG_LISTEN_ENABLED", default_value_t = true, action = ArgAction::Set, value_parser = BoolishValueParser::new(), help_heading = "PostgreSQL")]
    pub pg_listen_enabled: bool,

    /// Connections for writes; the pool holds this plus ORISUN_PG_READ_MAX_OPEN_CONNS.
    #[arg(long, env = "ORISUN_PG_WRITE_MAX_OPEN_CONNS", value_name = "ORISUN_PG_WRITE_MAX_OPEN_CONNS", default_value_t = 25, value_parser = clap::value_parser!(u32).range(1..), help_heading = "PostgreSQL")]
    pub pg_write_max_open_conns: u32,

    /// Connections for reads and subscriptions.
    #[arg(long, env = "ORISUN_PG_READ_MAX_OPEN_CONNS", value_name = "ORISUN_PG_READ_MAX_OPEN_CONNS", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..), help_heading = "PostgreSQL")]
    pub pg_read_max_open_conns: u32,

    // --- boundaries and users ------------------------------------------------------------
    /// Boundaries to create at start-up, as a JSON list: `[{"name":"orders","description":"..."}]`.
    #[arg(long, env = "ORISUN_BOUNDARIES", value_name = "ORISUN_BOUNDARIES", default_value = "[]", value_parser = parse_boundaries, help_heading = "Boundaries and users")]
    pub boundaries: BoundaryList,

    /// Boundary holding users, sessions' source of truth and other admin state; always created.
    #[arg(long, env = "ORISUN_ADMIN_BOUNDARY", value_name = "ORISUN_ADMIN_BOUNDARY", default_value = "orisun_admin", value_parser = parse_boundary_name, help_heading = "Boundaries and users")]
    pub admin_boundary: BoundaryName,

    /// Username of the bootstrap administrator, created at start-up if missing.
    #[arg(
        long,
        env = "ORISUN_ADMIN_USERNAME",
        value_name = "ORISUN_ADMIN_USERNAME",
        default_value = "admin",
        help_heading = "Boundaries and users"
    )]
    pub admin_username: String,

    /// Password of the bootstrap administrator (change it: the default is logged as a warning).
    #[arg(
        long,
        env = "ORISUN_ADMIN_PASSWORD",
        value_name = "ORISUN_ADMIN_PASSWORD",
        default_value = "changeit",
        hide_default_value = false,
        hide_env_values = true,
        help_heading = "Boundaries and users"
    )]
    pub admin_password: String,

    /// Lifetime of an `x-auth-token` session token (e.g. 30m, 1h, 24h).
    #[arg(long, env = "ORISUN_AUTH_TOKEN_TTL", value_name = "ORISUN_AUTH_TOKEN_TTL", default_value = "1h", value_parser = parse_duration, help_heading = "Boundaries and users")]
    pub auth_token_ttl: Duration,

    // --- network -------------------------------------------------------------------------
    /// Address the gRPC and admin HTTP servers listen on.
    #[arg(long, env = "ORISUN_HOST", value_name = "ORISUN_HOST", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED), help_heading = "Network")]
    pub host: IpAddr,

    /// gRPC port (EventStore, Admin, reflection, health).
    #[arg(
        long,
        env = "ORISUN_GRPC_PORT",
        value_name = "ORISUN_GRPC_PORT",
        default_value_t = 5005,
        help_heading = "Network"
    )]
    pub grpc_port: u16,

    /// Admin HTTP port (`/health`, `/ready`).
    #[arg(
        long,
        env = "ORISUN_ADMIN_PORT",
        value_name = "ORISUN_ADMIN_PORT",
        default_value_t = 8991,
        help_heading = "Network"
    )]
    pub admin_port: u16,

    /// Serve gRPC server reflection (v1 and v1alpha), authenticated like every other RPC.
    #[arg(long, env = "ORISUN_GRPC_ENABLE_REFLECTION", value_name = "ORISUN_GRPC_ENABLE_REFLECTION", default_value_t = true, action = ArgAction::Set, value_parser = BoolishValueParser::new(), help_heading = "Network")]
    pub grpc_enable_reflection: bool,

    /// Largest request message, in bytes; larger ones fail with RESOURCE_EXHAUSTED.
    #[arg(long, env = "ORISUN_GRPC_MAX_RECEIVE_MESSAGE_SIZE", value_name = "ORISUN_GRPC_MAX_RECEIVE_MESSAGE_SIZE", default_value_t = 64 * 1024 * 1024, value_parser = parse_message_size, help_heading = "Network")]
    pub grpc_max_receive_message_size: usize,

    /// Largest response message, in bytes.
    #[arg(long, env = "ORISUN_GRPC_MAX_SEND_MESSAGE_SIZE", value_name = "ORISUN_GRPC_MAX_SEND_MESSAGE_SIZE", default_value_t = 64 * 1024 * 1024, value_parser = parse_message_size, help_heading = "Network")]
    pub grpc_max_send_message_size: usize,

    /// Most concurrent streams (calls) per HTTP/2 connection.
    #[arg(long, env = "ORISUN_GRPC_MAX_CONCURRENT_STREAMS", value_name = "ORISUN_GRPC_MAX_CONCURRENT_STREAMS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..), help_heading = "Network")]
    pub grpc_max_concurrent_streams: u32,

    /// Interval of the server's HTTP/2 keepalive pings (0s: no pings).
    #[arg(long, env = "ORISUN_GRPC_KEEP_ALIVE_TIME", value_name = "ORISUN_GRPC_KEEP_ALIVE_TIME", default_value = "30s", value_parser = parse_duration, help_heading = "Network")]
    pub grpc_keep_alive_time: Duration,

    /// How long a keepalive ping may go unanswered before the connection is closed.
    #[arg(long, env = "ORISUN_GRPC_KEEP_ALIVE_TIMEOUT", value_name = "ORISUN_GRPC_KEEP_ALIVE_TIMEOUT", default_value = "5s", value_parser = parse_duration, help_heading = "Network")]
    pub grpc_keep_alive_timeout: Duration,

    /// HTTP/2 initial stream flow-control window, in bytes.
    #[arg(long, env = "ORISUN_GRPC_INITIAL_WINDOW_SIZE", value_name = "ORISUN_GRPC_INITIAL_WINDOW_SIZE", default_value_t = 1024 * 1024, value_parser = clap::value_parser!(u32).range(65_535..=2_147_483_647), help_heading = "Network")]
    pub grpc_initial_window_size: u32,

    /// HTTP/2 initial connection flow-control window, in bytes.
    #[arg(long, env = "ORISUN_GRPC_INITIAL_CONN_WINDOW_SIZE", value_name = "ORISUN_GRPC_INITIAL_CONN_WINDOW_SIZE", default_value_t = 1024 * 1024, value_parser = clap::value_parser!(u32).range(65_535..=2_147_483_647), help_heading = "Network")]
    pub grpc_initial_conn_window_size: u32,

    /// How long a graceful shutdown waits for in-flight calls before closing connections.
    #[arg(long, env = "ORISUN_SHUTDOWN_TIMEOUT", value_name = "ORISUN_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse_duration, help_heading = "Network")]
    pub shutdown_timeout: Duration,

    // --- TLS -----------------------------------------------------------------------------
    /// Serve gRPC over TLS (TLS 1.2+).
    #[arg(long, env = "ORISUN_GRPC_TLS_ENABLED", value_name = "ORISUN_GRPC_TLS_ENABLED", default_value_t = false, action = ArgAction::Set, value_parser = BoolishValueParser::new(), help_heading = "TLS")]
    pub grpc_tls_enabled: bool,

    /// Server certificate chain (PEM).
    #[arg(
        long,
        env = "ORISUN_GRPC_TLS_CERT_FILE",
        value_name = "ORISUN_GRPC_TLS_CERT_FILE",
        default_value = "/etc/orisun/tls/server.crt",
        help_heading = "TLS"
    )]
    pub grpc_tls_cert_file: PathBuf,

    /// Server private key (PEM).
    #[arg(
        long,
        env = "ORISUN_GRPC_TLS_KEY_FILE",
        value_name = "ORISUN_GRPC_TLS_KEY_FILE",
        default_value = "/etc/orisun/tls/server.key",
        help_heading = "TLS"
    )]
    pub grpc_tls_key_file: PathBuf,

    /// CA certificate(s) (PEM) that client certificates must chain to (mutual TLS).
    #[arg(
        long,
        env = "ORISUN_GRPC_TLS_CA_FILE",
        value_name = "ORISUN_GRPC_TLS_CA_FILE",
        default_value = "/etc/orisun/tls/ca.crt",
        help_heading = "TLS"
    )]
    pub grpc_tls_ca_file: PathBuf,

    /// Require a client certificate signed by ORISUN_GRPC_TLS_CA_FILE (mutual TLS).
    #[arg(long, env = "ORISUN_GRPC_TLS_CLIENT_AUTH_REQUIRED", value_name = "ORISUN_GRPC_TLS_CLIENT_AUTH_REQUIRED", default_value_t = false, action = ArgAction::Set, value_parser = BoolishValueParser::new(), help_heading = "TLS")]
    pub grpc_tls_client_auth_required: bool,

    // --- delivery and logs ---------------------------------------------------------------
    /// NATS server to publish every boundary's events to (JetStream); empty: no publishing.
    #[arg(
        long,
        env = "ORISUN_NATS_URL",
        value_name = "ORISUN_NATS_URL",
        help_heading = "Delivery and logs"
    )]
    pub nats_url: Option<String>,

    /// Size cap of each boundary's JetStream stream in bytes (-1: none); the oldest messages
    /// are discarded past it.
    #[arg(
        long,
        env = "ORISUN_NATS_EVENT_STREAM_MAX_BYTES",
        value_name = "ORISUN_NATS_EVENT_STREAM_MAX_BYTES",
        default_value_t = 536_870_912,
        allow_negative_numbers = true,
        help_heading = "Delivery and logs"
    )]
    pub nats_event_stream_max_bytes: i64,

    /// Message cap of each boundary's JetStream stream (-1: none); the oldest are discarded
    /// past it.
    #[arg(long, env = "ORISUN_NATS_EVENT_STREAM_MAX_MSGS", value_name = "ORISUN_NATS_EVENT_STREAM_MAX_MSGS", default_value_t = -1, allow_negative_numbers = true, help_heading = "Delivery and logs")]
    pub nats_event_stream_max_msgs: i64,

    /// Messages older than this are discarded from each boundary's JetStream stream (0: kept).
    #[arg(long, env = "ORISUN_NATS_EVENT_STREAM_MAX_AGE", value_name = "ORISUN_NATS_EVENT_STREAM_MAX_AGE", default_value = "5m", value_parser = parse_duration, help_heading = "Delivery and logs")]
    pub nats_event_stream_max_age: Duration,

    /// Lifetime of the lease that makes a named subscriber exclusive across the cluster; it is
    /// renewed every third of it, and a dead node's names are free again at most this long
    /// after it died (at least 1s).
    #[arg(long, env = "ORISUN_SUBSCRIBER_LEASE_TTL", value_name = "ORISUN_SUBSCRIBER_LEASE_TTL", default_value = "10s", value_parser = parse_duration, help_heading = "Delivery and logs")]
    pub subscriber_lease_ttl: Duration,

    /// Log level (DEBUG, INFO, WARN, ERROR) or a tracing filter such as `info,orisun_server=debug`.
    #[arg(long, env = "ORISUN_LOGGING_LEVEL", value_name = "ORISUN_LOGGING_LEVEL", default_value = "INFO", value_parser = parse_log_level, help_heading = "Delivery and logs")]
    pub logging_level: LogLevel,

    /// Log line format: text or json.
    #[arg(
        long,
        env = "ORISUN_LOGGING_FORMAT",
        value_name = "ORISUN_LOGGING_FORMAT",
        value_enum,
        ignore_case = true,
        default_value = "text",
        help_heading = "Delivery and logs"
    )]
    pub logging_format: LogFormat,
}

/// The parsed `ORISUN_BOUNDARIES` list (a newtype so clap takes the JSON as one value).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BoundaryList(pub Vec<BoundaryDef>);

/// A validated `ORISUN_LOGGING_LEVEL`, kept as a `tracing` filter directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLevel(String);

impl LogLevel {
    /// Returns the filter directive (`info`, `debug`, `info,orisun_server=debug`, ...).
    pub fn directive(&self) -> &str {
        &self.0
    }
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
        match (self.backend, &self.pg_host) {
            (Some(kind), _) => kind,
            (None, Some(_)) => BackendKind::Postgres,
            (None, None) => BackendKind::Sqlite,
        }
    }

    /// Returns the gRPC listen address.
    pub fn grpc_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.grpc_port)
    }

    /// Returns the admin HTTP listen address.
    pub fn admin_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.admin_port)
    }

    /// Returns every boundary to create at start-up, without repeats, in this order: the admin
    /// boundary, those of ORISUN_BOUNDARIES, those of ORISUN_PG_SCHEMAS.
    pub fn startup_boundaries(&self) -> Vec<BoundaryName> {
        let mut names = vec![self.admin_boundary.clone()];
        let declared = self.boundaries.0.iter().map(|b| b.name.clone());
        let mapped = self.pg_schemas.iter().map(|m| m.boundary.clone());
        for name in declared.chain(mapped) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }

    /// Returns the schema ORISUN_PG_SCHEMAS assigns to `boundary`, if any.
    pub fn schema_of(&self, boundary: &BoundaryName) -> Option<&str> {
        self.pg_schemas
            .iter()
            .find(|m| &m.boundary == boundary)
            .map(|m| m.schema.as_str())
    }

    /// Returns the NATS settings when `ORISUN_NATS_URL` is set (and not empty): the stream
    /// limits from `ORISUN_NATS_EVENT_STREAM_*`, the admin boundary excluded from publishing
    /// (it holds the user records).
    pub fn nats_config(&self) -> Option<orisun_nats::NatsConfig> {
        let url = self
            .nats_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())?;
        let mut nats = orisun_nats::NatsConfig::new(url);
        nats.publisher.limits.max_bytes = self.nats_event_stream_max_bytes;
        nats.publisher.limits.max_msgs = self.nats_event_stream_max_msgs;
        nats.publisher.limits.max_age = self.nats_event_stream_max_age;
        nats.excluded_boundaries = vec![self.admin_boundary.clone()];
        Some(nats)
    }

    /// Checks the rules that involve several variables; clap has checked each one alone.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.backend_kind() == BackendKind::Postgres && self.pg_host.is_none() {
            return Err(ConfigError::new(
                "ORISUN_PG_HOST",
                "must be set when ORISUN_BACKEND is postgres",
            ));
        }
        let mut seen: Vec<&BoundaryName> = Vec::new();
        for m in &self.pg_schemas {
            if seen.contains(&&m.boundary) {
                return Err(ConfigError::new(
                    "ORISUN_PG_SCHEMAS",
                    format!("boundary {} is mapped twice", m.boundary),
                ));
            }
            seen.push(&m.boundary);
        }
        let mut seen: Vec<&BoundaryName> = Vec::new();
        for b in &self.boundaries.0 {
            if seen.contains(&&b.name) {
                return Err(ConfigError::new(
                    "ORISUN_BOUNDARIES",
                    format!("boundary {} is listed twice", b.name),
                ));
            }
            seen.push(&b.name);
        }
        if self.admin_username.trim().is_empty() {
            return Err(ConfigError::new(
                "ORISUN_ADMIN_USERNAME",
                "must not be empty",
            ));
        }
        if self.admin_password.is_empty() {
            return Err(ConfigError::new(
                "ORISUN_ADMIN_PASSWORD",
                "must not be empty",
            ));
        }
        if self.auth_token_ttl.is_zero() {
            return Err(ConfigError::new(
                "ORISUN_AUTH_TOKEN_TTL",
                "must be positive",
            ));
        }
        if self.subscriber_lease_ttl < Duration::from_secs(1) {
            return Err(ConfigError::new(
                "ORISUN_SUBSCRIBER_LEASE_TTL",
                "must be at least 1s",
            ));
        }
        for (variable, value) in [
            (
                "ORISUN_NATS_EVENT_STREAM_MAX_BYTES",
                self.nats_event_stream_max_bytes,
            ),
            (
                "ORISUN_NATS_EVENT_STREAM_MAX_MSGS",
                self.nats_event_stream_max_msgs,
            ),
        ] {
            if value == 0 || value < -1 {
                return Err(ConfigError::new(
                    variable,
                    "must be -1 (no limit) or positive",
                ));
            }
        }
        if let Some(url) = &self.nats_url {
            if !url.is_empty() && !url.contains("://") && url.contains(char::is_whitespace) {
                return Err(ConfigError::new("ORISUN_NATS_URL", "is not a URL"));
            }
        }
        Ok(())
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

fn de_boundary<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BoundaryName, D::Error> {
    let name = String::deserialize(d)?;
    BoundaryName::new(name).map_err(serde::de::Error::custom)
}

fn parse_boundary_name(text: &str) -> Result<BoundaryName, String> {
    BoundaryName::new(text).map_err(|e| e.reason)
}

fn parse_boundaries(text: &str) -> Result<BoundaryList, String> {
    if text.trim().is_empty() {
        return Ok(BoundaryList::default());
    }
    serde_json::from_str::<Vec<BoundaryDef>>(text)
        .map(BoundaryList)
        .map_err(|e| {
            format!(r#"expected a JSON list like [{{"name":"orders","description":"..."}}]: {e}"#)
        })
}

fn parse_schema_mapping(text: &str) -> Result<SchemaMapping, String> {
    let (boundary, schema) = text
        .trim()
        .split_once(':')
        .ok_or_else(|| format!("{text:?} is not a boundary:schema pair"))?;
    let boundary = BoundaryName::new(boundary.trim()).map_err(|e| e.to_string())?;
    let schema = schema.trim();
    // Schemas follow the same identifier rule as boundaries, so nothing unchecked reaches SQL.
    BoundaryName::new(schema).map_err(|e| format!("schema {schema:?}: {}", e.reason))?;
    Ok(SchemaMapping {
        boundary,
        schema: schema.to_owned(),
    })
}

fn parse_log_level(text: &str) -> Result<LogLevel, String> {
    let lowered = text.trim().to_ascii_lowercase();
    let directive = match lowered.as_str() {
        "warning" => "warn".to_owned(),
        "fatal" | "panic" | "dpanic" => "error".to_owned(),
        _ => lowered,
    };
    if directive.is_empty() {
        return Err("must not be empty".to_owned());
    }
    // A directive is `level` or `target=level`, comma-separated. (tracing also accepts a bare
    // target, but a lone word that is not a level is far more likely a typo.)
    let is_level = |l: &str| matches!(l, "trace" | "debug" | "info" | "warn" | "error" | "off");
    let is_target = |t: &str| {
        !t.is_empty()
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    for part in directive.split(',').map(str::trim) {
        let ok = match part.split_once('=') {
            Some((target, level)) => is_target(target.trim()) && is_level(level.trim()),
            None => is_level(part),
        };
        if !ok {
            return Err(format!(
                "{text:?} is not a level (DEBUG, INFO, WARN, ERROR) or a filter like info,orisun_server=debug"
            ));
        }
    }
    Ok(LogLevel(directive))
}

fn parse_message_size(text: &str) -> Result<usize, String> {
    let n: usize = text
        .trim()
        .parse()
        .map_err(|e| format!("{text:?} is not a number of bytes: {e}"))?;
    if n < 1024 {
        return Err(format!("{n} is below the minimum of 1024 bytes"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("orisun serve").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let c = parse(&[]).expect("defaults parse");
        assert_eq!(c.grpc_port, 5005);
        assert_eq!(c.admin_port, 8991);
        assert_eq!(c.admin_boundary.as_str(), "orisun_admin");
        assert_eq!(c.backend_kind(), BackendKind::Sqlite);
        assert_eq!(c.grpc_max_receive_message_size, 64 * 1024 * 1024);
        assert_eq!(c.grpc_keep_alive_time, Duration::from_secs(30));
        assert!(c.grpc_enable_reflection);
        assert_eq!(c.logging_level.directive(), "info");
        assert_eq!(c.subscriber_lease_ttl, Duration::from_secs(10));
        assert!(c.validate().is_ok());
    }

    #[test]
    fn nats_settings_follow_the_environment_names() {
        let c = parse(&[]).expect("defaults parse");
        assert!(c.nats_config().is_none(), "no ORISUN_NATS_URL, no NATS");
        assert_eq!(c.nats_event_stream_max_bytes, 536_870_912);
        assert_eq!(c.nats_event_stream_max_msgs, -1);
        assert_eq!(c.nats_event_stream_max_age, Duration::from_secs(300));
        let c = parse(&[
            "--nats-url",
            "nats://127.0.0.1:4222",
            "--nats-event-stream-max-bytes",
            "-1",
            "--nats-event-stream-max-msgs",
            "1000",
            "--nats-event-stream-max-age",
            "1h",
        ])
        .expect("parses");
        let nats = c.nats_config().expect("configured");
        assert_eq!(nats.url, "nats://127.0.0.1:4222");
        assert_eq!(nats.publisher.limits.max_bytes, -1);
        assert_eq!(nats.publisher.limits.max_msgs, 1000);
        assert_eq!(nats.publisher.limits.max_age, Duration::from_secs(3600));
        assert_eq!(nats.excluded_boundaries, vec![c.admin_boundary.clone()]);
        let c = parse(&["--nats-event-stream-max-msgs", "0"]).expect("parses");
        assert_eq!(
            c.validate().expect_err("zero").variable,
            "ORISUN_NATS_EVENT_STREAM_MAX_MSGS"
        );
    }

    #[test]
    fn pg_host_selects_postgres_and_schemas_are_boundaries() {
        let c = parse(&[
            "--pg-host",
            "db",
            "--pg-schemas",
            "orders:public,orisun_admin:admin",
            "--boundaries",
            r#"[{"name":"orders","description":"o"},{"name":"payments"}]"#,
        ])
        .expect("parses");
        assert_eq!(c.backend_kind(), BackendKind::Postgres);
        let names: Vec<_> = c
            .startup_boundaries()
            .iter()
            .map(|b| b.to_string())
            .collect();
        assert_eq!(names, ["orisun_admin", "orders", "payments"]);
        let admin = BoundaryName::new("orisun_admin").expect("valid");
        assert_eq!(c.schema_of(&admin), Some("admin"));
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (args, variable) in [
            (vec!["--grpc-port", "x"], "ORISUN_GRPC_PORT"),
            (
                vec!["--boundaries", "[{\"name\":\"a-b\"}]"],
                "ORISUN_BOUNDARIES",
            ),
            (vec!["--boundaries", "{"], "ORISUN_BOUNDARIES"),
            (vec!["--pg-schemas", "orders"], "ORISUN_PG_SCHEMAS"),
            (vec!["--pg-schemas", "orders:pub lic"], "ORISUN_PG_SCHEMAS"),
            (vec!["--admin-boundary", "1x"], "ORISUN_ADMIN_BOUNDARY"),
            (
                vec!["--grpc-keep-alive-time", "5y"],
                "ORISUN_GRPC_KEEP_ALIVE_TIME",
            ),
            (vec!["--logging-level", "loud"], "ORISUN_LOGGING_LEVEL"),
            (vec!["--pg-sslmode", "require"], "ORISUN_PG_SSLMODE"),
            (
                vec!["--grpc-enable-reflection", "maybe"],
                "ORISUN_GRPC_ENABLE_REFLECTION",
            ),
            (
                vec!["--grpc-max-receive-message-size", "10"],
                "ORISUN_GRPC_MAX_RECEIVE_MESSAGE_SIZE",
            ),
        ] {
            let err = parse(&args).expect_err(variable).to_string();
            assert!(err.contains(variable), "{variable}: {err}");
        }
    }

    #[test]
    fn cross_checks_name_the_variable() {
        let c = parse(&["--backend", "postgres"]).expect("parses");
        assert_eq!(
            c.validate().expect_err("no host").variable,
            "ORISUN_PG_HOST"
        );
        let c = parse(&["--pg-schemas", "a:x,a:y"]).expect("parses");
        assert_eq!(
            c.validate().expect_err("twice").variable,
            "ORISUN_PG_SCHEMAS"
        );
    }

    #[test]
    fn levels() {
        assert_eq!(
            parse_log_level("WARNING").map(|l| l.0),
            Ok("warn".to_owned())
        );
        assert!(parse_log_level("info,orisun_server=debug").is_ok());
    }
}
