//! How to reach PostgreSQL and how the store uses it.

use crate::names::validate_schema;
use crate::tls::PgTls;
use orisun_store::StoreError;
use std::time::Duration;
use tokio_postgres::config::Host;

/// Connection and behaviour settings of a [`crate::PostgresStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// Host name or IP address (or a Unix socket directory, starting with `/`).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Role to connect as.
    pub user: String,
    /// Password, when the server asks for one.
    pub password: Option<String>,
    /// Database holding the catalog (`orisun.*`) and the boundaries' schemas.
    pub dbname: String,
    /// Maximum number of pooled connections (reads, group-commit writers, polls).
    pub pool_size: usize,
    /// Schema in which [`orisun_store::EventStore::create_boundary`] places a new boundary.
    pub default_schema: String,
    /// Whether to keep a dedicated LISTEN connection for wake-ups from other nodes. It must be a
    /// direct connection (not through a transaction-mode pooler). Without it, appends made by
    /// other processes are noticed by the fallback poll only.
    pub listen: bool,
    /// Host of the LISTEN connection, when it must bypass a pooler that `host` points at;
    /// `None`: `host`.
    pub listen_host: Option<String>,
    /// Port of the LISTEN connection; `None`: `port`.
    pub listen_port: Option<u16>,
    /// Whether statements are prepared once per pooled connection and cached (fastest). Off,
    /// every statement is sent unnamed (parse, bind and execute in one round trip), which a
    /// transaction-mode pooler without prepared-statement support needs (PgBouncer before 1.21,
    /// or with `max_prepared_statements = 0`).
    pub statement_cache: bool,
    /// `application_name` of the pooled connections; the LISTEN connection uses this name with
    /// `_listener` appended, so operators can tell them apart in `pg_stat_activity`.
    pub application_name: String,
    /// How long to wait for a new connection.
    pub connect_timeout: Duration,
    /// TLS to the server (`sslmode` and certificates); plain TCP by default.
    pub tls: PgTls,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 5432,
            user: "postgres".to_owned(),
            password: None,
            dbname: "postgres".to_owned(),
            pool_size: 16,
            default_schema: "public".to_owned(),
            listen: true,
            listen_host: None,
            listen_port: None,
            statement_cache: true,
            application_name: "orisun".to_owned(),
            connect_timeout: Duration::from_secs(10),
            tls: PgTls::default(),
        }
    }
}

impl PostgresConfig {
    /// Reads connection parameters from a libpq-style string (`host=... port=... user=...
    /// password=... dbname=...` or a `postgresql://` URL); other fields keep their defaults.
    pub fn from_connection_string(text: &str) -> Result<Self, StoreError> {
        let parsed: tokio_postgres::Config = text
            .parse()
            .map_err(|e| StoreError::invalid("connection", format!("{e}")))?;
        let mut config = Self::default();
        if let Some(host) = parsed.get_hosts().first() {
            config.host = match host {
                Host::Tcp(h) => h.clone(),
                Host::Unix(path) => path.to_string_lossy().into_owned(),
            };
        }
        if let Some(port) = parsed.get_ports().first() {
            config.port = *port;
        }
        if let Some(user) = parsed.get_user() {
            config.user = user.to_owned();
        }
        if let Some(password) = parsed.get_password() {
            config.password = Some(String::from_utf8_lossy(password).into_owned());
        }
        if let Some(dbname) = parsed.get_dbname() {
            config.dbname = dbname.to_owned();
        }
        Ok(config)
    }

    /// Returns a copy that connects to another database.
    pub fn with_dbname(mut self, dbname: impl Into<String>) -> Self {
        self.dbname = dbname.into();
        self
    }

    /// Checks the settings that are not connection parameters.
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        if self.pool_size < 2 {
            // One connection is held by a boundary's writer while a read may need another.
            return Err(StoreError::invalid("pool_size", "must be at least 2"));
        }
        validate_schema(&self.default_schema)
            .map_err(|e| StoreError::invalid("default_schema", e.reason))?;
        Ok(())
    }

    /// Builds the LISTEN connection's configuration: `listen_host`/`listen_port` when set (a
    /// direct route around a transaction-mode pooler), with `_listener` appended to the
    /// application name.
    pub(crate) fn listener_pg_config(&self) -> tokio_postgres::Config {
        self.pg_config_at(
            self.listen_host.as_deref().unwrap_or(&self.host),
            self.listen_port.unwrap_or(self.port),
            "_listener",
        )
    }

    /// Builds the driver's configuration, with `suffix` appended to the application name.
    pub(crate) fn pg_config(&self, name_suffix: &str) -> tokio_postgres::Config {
        self.pg_config_at(&self.host, self.port, name_suffix)
    }

    fn pg_config_at(&self, host: &str, port: u16, name_suffix: &str) -> tokio_postgres::Config {
        let mut pg = tokio_postgres::Config::new();
        pg.host(host)
            .port(port)
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name(format!("{}{name_suffix}", self.application_name))
            .connect_timeout(self.connect_timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .ssl_mode(self.tls.mode.driver());
        if let Some(password) = &self.password {
            pg.password(password);
        }
        pg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_key_value_strings() {
        let c =
            PostgresConfig::from_connection_string("host=db port=6543 user=u password=p dbname=d")
                .expect("parses");
        assert_eq!(
            (
                c.host.as_str(),
                c.port,
                c.user.as_str(),
                c.password.as_deref(),
                c.dbname.as_str()
            ),
            ("db", 6543, "u", Some("p"), "d")
        );
        let d = PostgresConfig::from_connection_string("host=127.0.0.1").expect("parses");
        assert_eq!(d.port, 5432);
    }

    #[test]
    fn rejects_bad_settings() {
        let mut c = PostgresConfig::default();
        assert!(c.validate().is_ok());
        c.default_schema = "a b".into();
        assert!(c.validate().is_err());
        c = PostgresConfig {
            pool_size: 1,
            ..PostgresConfig::default()
        };
        assert!(c.validate().is_err());
    }
}
