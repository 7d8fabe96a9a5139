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

use crate::payload;
use crate::progress::Progress;
use crate::report::BaselineResult;
use crate::server::Storage;
use crate::stats::{rate, Latencies};
use anyhow::Context;
use futures::future::try_join_all;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::config::Host;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, NoTls};
use uuid::Uuid;

/// Schema of the baseline tables inside the bench's database.
const SCHEMA: &str = "bench_raw";

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

    /// One row per transaction (autocommit INSERT) over `connections` connections for
    /// `duration` into the write table (or the large one when `big`).
    pub async fn single(
        &self,
        backend: &str,
        connections: usize,
        duration: Duration,
        big: bool,
    ) -> anyhow::Result<BaselineResult> {
        let (table, ids, id) = if big {
            ("big", self.next_big_id.clone(), "raw_single_big".to_owned())
        } else {
            (
                "writes",
                self.next_write_id.clone(),
                format!("raw_single_c{connections}"),
            )
        };
        let used = connections.min(self.wait_for_slots(connections).await?);
        let progress = Progress::start(backend, &id);
        let counter = progress.counter();
        let mut clients = Vec::with_capacity(used);
        for _ in 0..used {
            clients.push(self.connection().await?);
        }
        let barrier = Arc::new(tokio::sync::Barrier::new(used));
        let sql = insert_one(table);
        let workers = clients.into_iter().enumerate().map(|(c, client)| {
            let (ids, counter, barrier, sql) =
                (ids.clone(), counter.clone(), barrier.clone(), sql.clone());
            async move {
                let statement = client.prepare(&sql).await?;
                let name = format!("raw{c}");
                let mut latencies = Latencies::new();
                barrier.wait().await;
                let start = Instant::now();
                let mut n = 0u64;
                while start.elapsed() < duration {
                    let id = ids.fetch_add(1, Ordering::Relaxed);
                    let e = payload::event(&name, &payload::entity_of(id as u64), n);
                    let t = Instant::now();
                    client
                        .execute(
                            &statement,
                            &[&id, &Uuid::now_v7(), &e.event_type, &e.data, &e.metadata],
                        )
                        .await?;
                    latencies.record(t.elapsed());
                    n += 1;
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok((n, latencies, start.elapsed()))
            }
        });
        let results = try_join_all(workers).await;
        progress.finish();
        let results = results.context("raw single-row inserts")?;
        let mut latencies = Latencies::new();
        let mut rows = 0;
        let mut elapsed = Duration::ZERO;
        for (n, l, e) in &results {
            rows += n;
            latencies.add(l);
            elapsed = elapsed.max(*e);
        }
        let note = if used < connections {
            format!(" (capped at {used} by max_connections)")
        } else {
            String::new()
        };
        Ok(BaselineResult {
            id,
            description: format!(
                "INSERT of one row per transaction, {used} connection(s), table {table}{note}"
            ),
            connections: used,
            rows,
            elapsed_s: elapsed.as_secs_f64(),
            events_per_s: rate(rows, elapsed),
            latency: latencies.summary(),
        })
    }

    /// Multi-row INSERTs of `size` rows, one per transaction, on one connection, for
    /// `duration` (and at least `min_batches`).
    pub async fn batch(
        &self,
        backend: &str,
        size: usize,
        duration: Duration,
        min_batches: u64,
    ) -> anyhow::Result<BaselineResult> {
        let id = format!("raw_batch_{size}");
        let progress = Progress::start(backend, &id);
        let counter = progress.counter();
        let result = async {
            let client = self.connection().await?;
            let statement = client.prepare(&insert_many("writes")).await?;
            let mut latencies = Latencies::new();
            let mut batches = 0u64;
            let mut measured = Duration::ZERO;
            let start = Instant::now();
            while start.elapsed() < duration || batches < min_batches {
                let first = self.next_write_id.fetch_add(size as i64, Ordering::Relaxed);
                let r = rows(first, size, "rawbatch");
                // Building rows is the client's work, as building a request is ours: time only
                // the statement, and count throughput over the statements' time too.
                let t = Instant::now();
                client
                    .execute(
                        &statement,
                        &[&r.ids, &r.event_ids, &r.types, &r.data, &r.metadata],
                    )
                    .await?;
                let took = t.elapsed();
                latencies.record(took);
                measured += took;
                batches += 1;
                counter.fetch_add(size as u64, Ordering::Relaxed);
            }
            anyhow::Ok((batches, latencies, measured))
        }
        .await;
        progress.finish();
        let (batches, latencies, measured) = result.context("raw multi-row inserts")?;
        let rows = batches * size as u64;
        Ok(BaselineResult {
            id,
            description: format!("multi-row INSERT (unnest) of {size} rows per transaction"),
            connections: 1,
            rows,
            elapsed_s: measured.as_secs_f64(),
            events_per_s: rate(rows, measured),
            latency: latencies.summary(),
        })
    }

    /// Binary `COPY ... FROM STDIN` of `size` rows per transaction, on one connection, for
    /// `duration` (and at least `min_batches`): the fastest way PostgreSQL takes rows, for
    /// comparison with the multi-row INSERT (`raw_batch_{size}`) that our batches are judged
    /// against. Building and parsing the rows is left out of the time, as for the INSERT.
    pub async fn copy_batch(
        &self,
        backend: &str,
        size: usize,
        duration: Duration,
        min_batches: u64,
    ) -> anyhow::Result<BaselineResult> {
        let id = format!("raw_copy_{size}");
        let progress = Progress::start(backend, &id);
        let counter = progress.counter();
        let result = async {
            let client = self.connection().await?;
            let sql = copy_in("writes");
            let mut latencies = Latencies::new();
            let mut batches = 0u64;
            let mut measured = Duration::ZERO;
            let start = Instant::now();
            while start.elapsed() < duration || batches < min_batches {
                let first = self.next_write_id.fetch_add(size as i64, Ordering::Relaxed);
                let r = rows(first, size, "rawcopy");
                let parse = |texts: &[String]| -> anyhow::Result<Vec<serde_json::Value>> {
                    texts
                        .iter()
                        .map(|t| serde_json::from_str(t).context("the bench's own JSON"))
                        .collect()
                };
                let (data, metadata) = (parse(&r.data)?, parse(&r.metadata)?);
                let t = Instant::now();
                let sink = client.copy_in(&sql).await?;
                let writer = BinaryCopyInWriter::new(
                    sink,
                    &[Type::INT8, Type::UUID, Type::TEXT, Type::JSONB, Type::JSONB],
                );
                futures::pin_mut!(writer);
                for i in 0..size {
                    let row: [&(dyn ToSql + Sync); 5] = [
                        &r.ids[i],
                        &r.event_ids[i],
                        &r.types[i],
                        &data[i],
                        &metadata[i],
                    ];
                    writer.as_mut().write(&row).await?;
                }
                writer.finish().await?;
                let took = t.elapsed();
                latencies.record(took);
                measured += took;
                batches += 1;
                counter.fetch_add(size as u64, Ordering::Relaxed);
            }
            anyhow::Ok((batches, latencies, measured))
        }
        .await;
        progress.finish();
        let (batches, latencies, measured) = result.context("raw binary COPY")?;
        let rows = batches * size as u64;
        Ok(BaselineResult {
            id,
            description: format!("binary COPY of {size} rows per transaction"),
            connections: 1,
            rows,
            elapsed_s: measured.as_secs_f64(),
            events_per_s: rate(rows, measured),
            latency: latencies.summary(),
        })
    }

    /// Fills the large table with `rows` rows in batches of `batch` over two connections
    /// (the way the bench preloads our boundary).
    pub async fn preload(
        &self,
        backend: &str,
        rows_wanted: u64,
        batch: usize,
    ) -> anyhow::Result<BaselineResult> {
        let id = "raw_preload".to_owned();
        let progress = Progress::start(backend, &id);
        let counter = progress.counter();
        let started = Instant::now();
        let sql = insert_many("big");
        let workers = (0..2).map(|_| {
            let (ids, counter, sql) = (self.next_big_id.clone(), counter.clone(), sql.clone());
            async move {
                let client = self.connection().await?;
                let statement = client.prepare(&sql).await?;
                loop {
                    let first = ids.fetch_add(batch as i64, Ordering::Relaxed);
                    if first as u64 >= rows_wanted {
                        break;
                    }
                    let n = (rows_wanted - first as u64).min(batch as u64) as usize;
                    let r = rows(first, n, "rawpreload");
                    client
                        .execute(
                            &statement,
                            &[&r.ids, &r.event_ids, &r.types, &r.data, &r.metadata],
                        )
                        .await?;
                    counter.fetch_add(n as u64, Ordering::Relaxed);
                }
                anyhow::Ok(())
            }
        });
        let result = try_join_all(workers).await;
        progress.finish();
        result.context("raw preload")?;
        let elapsed = started.elapsed();
        // The workers overshoot the id counter by up to a batch each: continue after the rows.
        self.next_big_id.store(
            i64::try_from(rows_wanted).unwrap_or(i64::MAX),
            Ordering::Relaxed,
        );
        let client = self.connection().await?;
        client
            .batch_execute(&format!("ANALYZE {SCHEMA}.big"))
            .await
            .context("ANALYZE")?;
        Ok(BaselineResult {
            id,
            description: format!("multi-row INSERT of {batch} rows per transaction, 2 connections"),
            connections: 2,
            rows: rows_wanted,
            elapsed_s: elapsed.as_secs_f64(),
            events_per_s: rate(rows_wanted, elapsed),
            latency: None,
        })
    }

    /// Reads `rows` rows of the large table by keyset paging (`WHERE id > last ORDER BY id
    /// LIMIT page`), decoding every column, on one connection.
    pub async fn paged_read(
        &self,
        backend: &str,
        rows_wanted: u64,
        page: u32,
    ) -> anyhow::Result<BaselineResult> {
        let id = "raw_paged_read".to_owned();
        let progress = Progress::start(backend, &id);
        let counter = progress.counter();
        let result = async {
            let client = self.connection().await?;
            let statement = client.prepare(&select_page("big")).await?;
            let mut latencies = Latencies::new();
            let mut last = -1i64;
            let mut read = 0u64;
            let mut bytes = 0usize;
            let start = Instant::now();
            while read < rows_wanted {
                let t = Instant::now();
                let page_rows = client.query(&statement, &[&last, &i64::from(page)]).await?;
                if page_rows.is_empty() {
                    break;
                }
                for row in &page_rows {
                    last = row.try_get(0)?;
                    let _event_id: Uuid = row.try_get(1)?;
                    let event_type: &str = row.try_get(2)?;
                    let data: &str = row.try_get(3)?;
                    let metadata: &str = row.try_get(4)?;
                    let _created: SystemTime = row.try_get(5)?;
                    bytes += event_type.len() + data.len() + metadata.len();
                }
                latencies.record(t.elapsed());
                read += page_rows.len() as u64;
                counter.fetch_add(page_rows.len() as u64, Ordering::Relaxed);
            }
            anyhow::Ok((read, latencies, start.elapsed(), bytes))
        }
        .await;
        progress.finish();
        let (read, latencies, elapsed, _bytes) = result.context("raw paged read")?;
        Ok(BaselineResult {
            id,
            description: format!("keyset-paged SELECT, {page} rows per page"),
            connections: 1,
            rows: read,
            elapsed_s: elapsed.as_secs_f64(),
            events_per_s: rate(read, elapsed),
            latency: latencies.summary(),
        })
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
