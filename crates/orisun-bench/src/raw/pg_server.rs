//! The PostgreSQL server given by `--pg`: its connection string, connections to it, the fresh
//! database the bench creates (and drops) for each run, and how the server under test reaches
//! that database.

use crate::server::Storage;
use anyhow::Context;
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::config::Host;
use tokio_postgres::{Client, NoTls};
use uuid::Uuid;

/// A PostgreSQL server given by `--pg`.
#[derive(Debug, Clone)]
pub struct PgServer {
    config: tokio_postgres::Config,
    host: String,
    port: u16,
    user: String,
    password: Option<String>,
    /// The database to connect to for administration (create/drop).
    admin_db: String,
}

impl PgServer {
    /// Parses a libpq key=value connection string (`host=... port=... user=...`).
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let config = tokio_postgres::Config::from_str(text)
            .with_context(|| format!("--pg {text:?} is not a PostgreSQL connection string"))?;
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(_)) => {
                anyhow::bail!("--pg: the server connects over TCP; give host=...")
            }
            None => "127.0.0.1".to_owned(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().unwrap_or("postgres").to_owned();
        let password = config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        let admin_db = config.get_dbname().unwrap_or("postgres").to_owned();
        Ok(Self {
            config,
            host,
            port,
            user,
            password,
            admin_db,
        })
    }

    /// Returns a short description (`postgres@127.0.0.1:5432`).
    pub fn describe(&self) -> String {
        format!("{}@{}:{}", self.user, self.host, self.port)
    }

    /// Opens a connection to `dbname`, driven in the background.
    pub async fn connect(&self, dbname: &str) -> anyhow::Result<Client> {
        let mut config = self.config.clone();
        config
            .dbname(dbname)
            .application_name("orisun_bench")
            .connect_timeout(Duration::from_secs(5));
        let (client, connection) = config
            .connect(NoTls)
            .await
            .with_context(|| format!("connecting to PostgreSQL {} db {dbname}", self.describe()))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Returns whether the server accepts a connection.
    pub async fn reachable(&self) -> bool {
        self.connect(&self.admin_db).await.is_ok()
    }

    /// Creates a fresh database `orisun_bench_<random>` and returns its name.
    pub async fn create_database(&self) -> anyhow::Result<String> {
        let name = format!(
            "orisun_bench_{}",
            &Uuid::new_v4().simple().to_string()[..12]
        );
        self.connect(&self.admin_db)
            .await?
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .with_context(|| format!("creating database {name}"))?;
        Ok(name)
    }

    /// Drops a database the bench created, disconnecting whoever still uses it.
    pub async fn drop_database(&self, name: &str) -> anyhow::Result<()> {
        self.connect(&self.admin_db)
            .await?
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await
            .with_context(|| format!("dropping database {name}"))
    }

    /// Returns how the server under test reaches database `dbname`.
    pub fn storage(&self, dbname: &str) -> Storage {
        Storage::Postgres {
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            password: self.password.clone(),
            dbname: dbname.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_connection_strings() {
        let s = PgServer::parse("host=db.local port=6543 user=alice password=secret dbname=ops")
            .expect("parses");
        assert_eq!(s.describe(), "alice@db.local:6543");
        assert_eq!(s.admin_db, "ops");
        match s.storage("orisun_bench_1") {
            Storage::Postgres {
                password, dbname, ..
            } => {
                assert_eq!(password.as_deref(), Some("secret"));
                assert_eq!(dbname, "orisun_bench_1");
            }
            Storage::Embedded => panic!("postgres expected"),
        }
        let d = PgServer::parse("host=127.0.0.1").expect("parses");
        assert_eq!(
            (d.port, d.user.as_str(), d.admin_db.as_str()),
            (5432, "postgres", "postgres")
        );
        assert!(PgServer::parse("host=/var/run/postgresql").is_err());
    }
}
