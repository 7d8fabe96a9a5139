//! The raw PostgreSQL baseline: the same rows written and read by plain SQL with the same
//! durability (`synchronous_commit = on`), on the same server and in the same database as the
//! server under test, so each of our figures can be given as a ratio of what PostgreSQL itself
//! does on this machine today.
//!
//! The table has the columns of an event row (bigint id, uuid event id, type, jsonb data and
//! metadata, timestamptz) with a primary key and a unique event id, as ours has. Writes are
//! one row per transaction (autocommit) over N connections, or one multi-row
//! `INSERT ... SELECT FROM unnest(...)` per batch (and, for reference, one binary `COPY` per
//! batch); reads are a keyset-paged `SELECT`.
//!
//! This file holds the baseline's tables: their statements, the rows written to them, and
//! [`Raw`] with its connections. The measurements are in `writes` (single-row, multi-row and
//! COPY inserts, and the preload) and `reads` (the keyset-paged read); the PostgreSQL server
//! itself is in `pg_server`.

mod pg_server;
mod reads;
mod writes;

pub use pg_server::PgServer;

use crate::payload;
use anyhow::Context;
use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::Client;
use uuid::Uuid;

/// Schema of the baseline tables inside the bench's database.
const SCHEMA: &str = "bench_raw";

/// The baseline's tables in one database.
#[derive(Debug)]
pub struct Raw {
    server: PgServer,
    dbname: String,
    /// Next id of the write table (shared by all connections).
    next_write_id: Arc<AtomicI64>,
    /// Next id of the large table.
    next_big_id: Arc<AtomicI64>,
}

/// The create statement of a baseline table.
fn create_table(name: &str) -> String {
    format!(
        "CREATE TABLE {SCHEMA}.{name} (
            id           bigint      NOT NULL PRIMARY KEY,
            event_id     uuid        NOT NULL UNIQUE,
            event_type   text        NOT NULL,
            data         jsonb       NOT NULL,
            metadata     jsonb       NOT NULL,
            date_created timestamptz NOT NULL DEFAULT now()
        )"
    )
}

fn insert_one(table: &str) -> String {
    format!(
        "INSERT INTO {SCHEMA}.{table} (id, event_id, event_type, data, metadata) \
         VALUES ($1, $2, $3, $4::text::jsonb, $5::text::jsonb)"
    )
}

fn insert_many(table: &str) -> String {
    format!(
        "INSERT INTO {SCHEMA}.{table} (id, event_id, event_type, data, metadata) \
         SELECT i, e, t, d::jsonb, m::jsonb \
         FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::text[], $5::text[]) AS u(i, e, t, d, m)"
    )
}

fn copy_in(table: &str) -> String {
    format!(
        "COPY {SCHEMA}.{table} (id, event_id, event_type, data, metadata) FROM STDIN (FORMAT binary)"
    )
}

fn select_page(table: &str) -> String {
    format!(
        "SELECT id, event_id, event_type, data::text, metadata::text, date_created \
         FROM {SCHEMA}.{table} WHERE id > $1 ORDER BY id LIMIT $2"
    )
}

/// Columns of one batch, ready to bind.
struct Rows {
    ids: Vec<i64>,
    event_ids: Vec<Uuid>,
    types: Vec<String>,
    data: Vec<String>,
    metadata: Vec<String>,
}

fn rows(first_id: i64, count: usize, client: &str) -> Rows {
    let mut r = Rows {
        ids: Vec::with_capacity(count),
        event_ids: Vec::with_capacity(count),
        types: Vec::with_capacity(count),
        data: Vec::with_capacity(count),
        metadata: Vec::with_capacity(count),
    };
    for i in 0..count {
        let id = first_id + i as i64;
        let e = payload::event(client, &payload::entity_of(id as u64), id as u64);
        r.ids.push(id);
        r.event_ids.push(Uuid::now_v7());
        r.types.push(e.event_type);
        r.data.push(e.data);
        r.metadata.push(e.metadata);
    }
    r
}

impl Raw {
    /// Creates the baseline tables in `dbname` (created by the bench) and reads the settings.
    pub async fn setup(server: &PgServer, dbname: &str) -> anyhow::Result<(Self, String)> {
        let client = server.connect(dbname).await?;
        client
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {SCHEMA}; {}; {};",
                create_table("writes"),
                create_table("big")
            ))
            .await
            .context("creating the baseline tables")?;
        let mut settings = Vec::new();
        for name in [
            "synchronous_commit",
            "fsync",
            "wal_sync_method",
            "max_connections",
        ] {
            let row = client
                .query_one(&format!("SHOW {name}"), &[])
                .await
                .with_context(|| format!("SHOW {name}"))?;
            let value: String = row.get(0);
            settings.push(format!("{name}={value}"));
        }
        Ok((
            Self {
                server: server.clone(),
                dbname: dbname.to_owned(),
                next_write_id: Arc::new(AtomicI64::new(0)),
                next_big_id: Arc::new(AtomicI64::new(0)),
            },
            settings.join(", "),
        ))
    }

    /// Returns how many more connections the server accepts now (our server under test
    /// holds some while the baseline runs), keeping a few for others.
    async fn free_slots(&self) -> anyhow::Result<usize> {
        let client = self.server.connect(&self.dbname).await?;
        let free: i32 = client
            .query_one(
                "SELECT current_setting('max_connections')::int - \
                 current_setting('superuser_reserved_connections')::int - \
                 (SELECT count(*)::int FROM pg_stat_activity)",
                &[],
            )
            .await
            .context("reading the free connection slots")?
            .get(0);
        Ok(usize::try_from(free).unwrap_or(0).saturating_sub(4).max(1))
    }

    /// Returns the free connection slots once there are `wanted`, or after a few seconds
    /// whatever there are: the connections of the previous round take a moment to go away
    /// after they are dropped, and must not be counted against this one.
    async fn wait_for_slots(&self, wanted: usize) -> anyhow::Result<usize> {
        let mut free = self.free_slots().await?;
        for _ in 0..50 {
            if free >= wanted {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            free = self.free_slots().await?;
        }
        Ok(free)
    }

    async fn connection(&self) -> anyhow::Result<Client> {
        let client = self.server.connect(&self.dbname).await?;
        // The server's default, stated so that a changed default cannot flatter the baseline.
        client.batch_execute("SET synchronous_commit = on").await?;
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_name_the_schema() {
        assert!(create_table("big").contains("bench_raw.big"));
        assert!(insert_many("writes").contains("unnest($1::bigint[]"));
        assert!(select_page("big").contains("WHERE id > $1 ORDER BY id LIMIT $2"));
        assert!(copy_in("writes").starts_with("COPY bench_raw.writes (id, event_id"));
        let r = rows(10, 3, "c");
        assert_eq!(r.ids, [10, 11, 12]);
        assert_eq!(r.data.len(), 3);
    }
}
