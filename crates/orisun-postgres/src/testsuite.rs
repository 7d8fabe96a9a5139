//! Test support for crates that test against PostgreSQL (feature `testsuite`, for
//! dev-dependencies only): a fresh database per test, dropped when the test ends (even on
//! panic), and a conformance-suite factory.
//!
//! The server comes from `ORISUN_TEST_PG` (a libpq-style string), by default
//! `host=127.0.0.1 port=5432 user=postgres`. Tests that stop or reconfigure their server start
//! a private one instead ([`cluster::Cluster`]).

pub mod cluster;

pub mod pgbouncer;

use crate::{PostgresConfig, PostgresStore};
use orisun_store::testsuite::Owned;
use orisun_store::EventStore;
use std::sync::Arc;

/// The server tests run against, with `dbname` pointing at a database that always exists.
pub fn server() -> PostgresConfig {
    let text = std::env::var("ORISUN_TEST_PG")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres".to_owned());
    let mut config = PostgresConfig::from_connection_string(&text).expect("ORISUN_TEST_PG parses");
    if !text.contains("dbname") {
        config.dbname = "postgres".to_owned();
    }
    config.pool_size = 8;
    config
}

/// Opens a direct connection (for test SQL) and drives it in the background.
pub async fn connect(config: &PostgresConfig) -> tokio_postgres::Client {
    let mut pg = tokio_postgres::Config::new();
    pg.host(&config.host)
        .port(config.port)
        .user(&config.user)
        .dbname(&config.dbname)
        .application_name("orisun_test");
    if let Some(p) = &config.password {
        pg.password(p);
    }
    let (client, connection) = pg.connect(tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A database created for one test and dropped with this value.
pub struct TestDb {
    /// Its name.
    pub name: String,
    server: PostgresConfig,
}

impl TestDb {
    /// Creates an empty database `orisun_test_<random>`.
    pub async fn create() -> Self {
        let server = server();
        let name = format!("orisun_test_{}", uuid::Uuid::new_v4().simple());
        connect(&server)
            .await
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create database");
        Self { name, server }
    }

    /// The store configuration for this database.
    pub fn config(&self) -> PostgresConfig {
        self.server.clone().with_dbname(&self.name)
    }

    /// Opens a store on this database.
    pub async fn store(&self) -> PostgresStore {
        PostgresStore::connect(self.config())
            .await
            .expect("connect store")
    }

    /// Opens a direct connection to this database.
    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.config()).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime (or while unwinding), where nothing can be
        // awaited: drop the database from a thread with its own runtime.
        let server = self.server.clone();
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                connect(&server)
                    .await
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}: {dropped:?}", self.name);
        }
    }
}

/// A store on its own database, which is dropped with the store: the conformance suite's
/// factory hands these out.
pub type OwnedStore = Owned<PostgresStore, TestDb>;

/// Creates a database and opens a store on it.
pub async fn owned_store() -> OwnedStore {
    let db = TestDb::create().await;
    Owned::new(db.store().await, db)
}

/// The conformance suite's factory: a fresh store on a fresh database.
pub async fn fresh_store() -> Arc<dyn EventStore> {
    Arc::new(owned_store().await)
}
