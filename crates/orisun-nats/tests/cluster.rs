//! Fail-over between nodes that share a PostgreSQL database: each node has its own store
//! connection and its own `PostgresCoordination`, so the lease, the fencing and the wake-ups
//! all go through the database, as in a real cluster.
//!
//! PostgreSQL comes from `ORISUN_TEST_PG` (libpq-style), by default
//! `host=127.0.0.1 port=5432 user=postgres`; each run creates and drops its own database.

mod common;

use anyhow::{Context as _, Result};
use common::*;
use orisun_postgres::{PostgresConfig, PostgresStore};
use orisun_store::EventStore;
use std::sync::Arc;

fn server() -> Result<PostgresConfig> {
    let text = std::env::var("ORISUN_TEST_PG")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres".to_owned());
    let mut config = PostgresConfig::from_connection_string(&text)?;
    if !text.contains("dbname") {
        config.dbname = "postgres".to_owned();
    }
    config.pool_size = 4;
    Ok(config)
}

async fn execute(config: &PostgresConfig, sql: &str) -> Result<()> {
    let mut pg = tokio_postgres::Config::new();
    pg.host(&config.host)
        .port(config.port)
        .user(&config.user)
        .dbname(&config.dbname);
    if let Some(p) = &config.password {
        pg.password(p);
    }
    let (client, connection) = pg
        .connect(tokio_postgres::NoTls)
        .await
        .context("connecting to PostgreSQL (set ORISUN_TEST_PG)")?;
    let driver = tokio::spawn(connection);
    client.batch_execute(sql).await?;
    drop(client);
    let _ = driver.await;
    Ok(())
}

#[tokio::test]
async fn fails_over_between_postgres_nodes_without_gap_or_duplicate() -> Result<()> {
    init_tracing();
    let server = server()?;
    let db = format!("orisun_nats_test_{}", uuid::Uuid::new_v4().simple());
    execute(&server, &format!("CREATE DATABASE \"{db}\"")).await?;
    let result = async {
        let boundary = unique_boundary("pg_failover");
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let store = PostgresStore::connect(server.clone().with_dbname(&db)).await?;
            let coordination = store.coordination();
            nodes.push((Arc::new(store) as Arc<dyn EventStore>, coordination));
        }
        nodes[0].0.create_boundary(&boundary).await?;
        let nodes: [NodeParts; 3] = nodes
            .try_into()
            .map_err(|_| anyhow::anyhow!("three nodes"))?;
        failover_scenario(&boundary, nodes).await
    }
    .await;
    execute(
        &server,
        &format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"),
    )
    .await?;
    result
}
