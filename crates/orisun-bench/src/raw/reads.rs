//! The raw baseline's read: the large table read by keyset paging, decoding every column.

use super::{select_page, Raw};
use crate::progress::Progress;
use crate::report::BaselineResult;
use crate::stats::{rate, Latencies};
use anyhow::Context;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};
use uuid::Uuid;

impl Raw {
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
