//! The raw baseline's writes: one row per transaction over N connections, multi-row INSERTs
//! of a batch, binary COPY of a batch (for reference), and the preload of the large table.

use super::{copy_in, insert_many, insert_one, rows, Raw, SCHEMA};
use crate::payload;
use crate::progress::Progress;
use crate::report::BaselineResult;
use crate::stats::{rate, Latencies};
use anyhow::Context;
use futures::future::try_join_all;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use uuid::Uuid;

impl Raw {
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
}
