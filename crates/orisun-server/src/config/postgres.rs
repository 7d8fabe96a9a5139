//! Owns the PostgreSQL flags (`ORISUN_PG_*`): connection, pool sizes, schema placement, and
//! their conversion into [`orisun_postgres::PostgresConfig`].

use super::ConfigError;
use crate::backend::DEFAULT_PG_SCHEMA;
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, ValueEnum};
use orisun_core::BoundaryName;
use orisun_postgres::{PgTls, PostgresConfig, SslMode};
use std::path::PathBuf;
use std::time::Duration;

/// `ORISUN_PG_SSLMODE`, with libpq's names and meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PgSslMode {
    /// Plain TCP (Go Orisun's default).
    Disable,
    /// As `prefer` (the driver cannot switch to TLS on the server's demand).
    Allow,
    /// TLS when the server offers it, without checking its certificate.
    Prefer,
    /// TLS or no connection; the certificate is checked only if ORISUN_PG_SSLROOTCERT is set.
    Require,
    /// TLS, with a certificate chaining to ORISUN_PG_SSLROOTCERT.
    VerifyCa,
    /// TLS, with a certificate chaining to ORISUN_PG_SSLROOTCERT and naming ORISUN_PG_HOST.
    VerifyFull,
}

impl From<PgSslMode> for SslMode {
    fn from(mode: PgSslMode) -> Self {
        match mode {
            PgSslMode::Disable => SslMode::Disable,
            PgSslMode::Allow => SslMode::Allow,
            PgSslMode::Prefer => SslMode::Prefer,
            PgSslMode::Require => SslMode::Require,
            PgSslMode::VerifyCa => SslMode::VerifyCa,
            PgSslMode::VerifyFull => SslMode::VerifyFull,
        }
    }
}

/// One `boundary:schema` pair of `ORISUN_PG_SCHEMAS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaMapping {
    /// The boundary.
    pub boundary: BoundaryName,
    /// The PostgreSQL schema that holds its tables.
    pub schema: String,
}

/// The PostgreSQL section of the configuration.
#[derive(Debug, Clone, Args)]
pub struct PostgresSection {
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

    /// PostgreSQL TLS mode: disable, allow, prefer, require, verify-ca or verify-full (libpq's
    /// meanings; TLS by rustls).
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

    /// CA certificates (PEM) the server's certificate must chain to (verify-ca, verify-full,
    /// and require when set).
    #[arg(
        long,
        env = "ORISUN_PG_SSLROOTCERT",
        value_name = "ORISUN_PG_SSLROOTCERT",
        help_heading = "PostgreSQL"
    )]
    pub pg_sslrootcert: Option<PathBuf>,

    /// Client certificate (PEM) for servers that authenticate clients by certificate.
    #[arg(
        long,
        env = "ORISUN_PG_SSLCERT",
        value_name = "ORISUN_PG_SSLCERT",
        help_heading = "PostgreSQL"
    )]
    pub pg_sslcert: Option<PathBuf>,

    /// The client certificate's private key (PEM).
    #[arg(
        long,
        env = "ORISUN_PG_SSLKEY",
        value_name = "ORISUN_PG_SSLKEY",
        help_heading = "PostgreSQL"
    )]
    pub pg_sslkey: Option<PathBuf>,

    /// Comma-separated `boundary:schema` pairs: each boundary is created in that schema (its
    /// tables prefixed by the boundary name). Boundaries not listed go to schema `public`.
    #[arg(long, env = "ORISUN_PG_SCHEMAS", value_name = "ORISUN_PG_SCHEMAS", value_delimiter = ',', value_parser = parse_schema_mapping, help_heading = "PostgreSQL")]
    pub pg_schemas: Vec<SchemaMapping>,

    /// Keep a LISTEN connection so appends made by other nodes wake subscribers at once
    /// (without it they are noticed by a fallback poll).
    #[arg(long, env = "ORISUN_PG_LISTEN_ENABLED", value_name = "ORISUN_PG_LISTEN_ENABLED", default_value_t = true, action = ArgAction::Set, value_parser = BoolishValueParser::new(), help_heading = "PostgreSQL")]
    pub pg_listen_enabled: bool,

    /// Host for the LISTEN connection when ORISUN_PG_HOST is a transaction-mode pooler
    /// (PgBouncer): LISTEN needs a direct session with PostgreSQL. Default: ORISUN_PG_HOST.
    #[arg(
        long,
        env = "ORISUN_PG_LISTEN_HOST",
        value_name = "ORISUN_PG_LISTEN_HOST",
        help_heading = "PostgreSQL"
    )]
    pub pg_listen_host: Option<String>,

    /// Port for the LISTEN connection. Default: ORISUN_PG_PORT.
    #[arg(
        long,
        env = "ORISUN_PG_LISTEN_PORT",
        value_name = "ORISUN_PG_LISTEN_PORT",
        help_heading = "PostgreSQL"
    )]
    pub pg_listen_port: Option<u16>,

    /// Prepare statements once per pooled connection and cache them. Set false behind a
    /// transaction-mode pooler without prepared-statement support (PgBouncer before 1.21, or
    /// max_prepared_statements = 0): every statement is then sent unnamed.
    #[arg(long, env = "ORISUN_PG_STATEMENT_CACHE", value_name = "ORISUN_PG_STATEMENT_CACHE", default_value_t = true, action = ArgAction::Set, value_parser = BoolishValueParser::new(), help_heading = "PostgreSQL")]
    pub pg_statement_cache: bool,

    /// Connections for writes; the pool holds this plus ORISUN_PG_READ_MAX_OPEN_CONNS.
    #[arg(long, env = "ORISUN_PG_WRITE_MAX_OPEN_CONNS", value_name = "ORISUN_PG_WRITE_MAX_OPEN_CONNS", default_value_t = 25, value_parser = clap::value_parser!(u32).range(1..), help_heading = "PostgreSQL")]
    pub pg_write_max_open_conns: u32,

    /// Connections for reads and subscriptions.
    #[arg(long, env = "ORISUN_PG_READ_MAX_OPEN_CONNS", value_name = "ORISUN_PG_READ_MAX_OPEN_CONNS", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..), help_heading = "PostgreSQL")]
    pub pg_read_max_open_conns: u32,
}

impl PostgresSection {
    /// Returns the schema ORISUN_PG_SCHEMAS assigns to `boundary`, if any.
    pub fn schema_of(&self, boundary: &BoundaryName) -> Option<&str> {
        self.pg_schemas
            .iter()
            .find(|m| &m.boundary == boundary)
            .map(|m| m.schema.as_str())
    }

    /// Checks the rules of this section that clap cannot: no boundary is mapped twice in
    /// ORISUN_PG_SCHEMAS.
    pub fn validate(&self) -> Result<(), ConfigError> {
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
        Ok(())
    }
}

impl TryFrom<&PostgresSection> for PostgresConfig {
    type Error = ConfigError;

    /// Builds the store configuration: the pool holds the write plus the read connections (at
    /// least 2), unplaced boundaries go to schema `public`. Fails when ORISUN_PG_HOST is unset.
    fn try_from(section: &PostgresSection) -> Result<Self, Self::Error> {
        let host = section.pg_host.clone().ok_or_else(|| {
            ConfigError::new("ORISUN_PG_HOST", "must be set for the postgres backend")
        })?;
        let pool_size = usize::try_from(
            section
                .pg_write_max_open_conns
                .saturating_add(section.pg_read_max_open_conns),
        )
        .unwrap_or(usize::MAX);
        Ok(PostgresConfig {
            host,
            port: section.pg_port,
            user: section.pg_user.clone(),
            password: section.pg_password.clone().filter(|p| !p.is_empty()),
            dbname: section.pg_name.clone(),
            pool_size: pool_size.max(2),
            default_schema: DEFAULT_PG_SCHEMA.to_owned(),
            listen: section.pg_listen_enabled,
            listen_host: section.pg_listen_host.clone(),
            listen_port: section.pg_listen_port,
            statement_cache: section.pg_statement_cache,
            application_name: "orisun".to_owned(),
            connect_timeout: Duration::from_secs(10),
            tls: PgTls {
                mode: section.pg_sslmode.into(),
                root_cert: section.pg_sslrootcert.clone(),
                client_cert: section.pg_sslcert.clone(),
                client_key: section.pg_sslkey.clone(),
            },
        })
    }
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
