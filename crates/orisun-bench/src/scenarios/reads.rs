//! The read scenarios over the preloaded large boundary: GetEvents paging from the start, and
//! a catch-up subscription from the beginning.

use super::{before_first, Bench, Tally, READ_STALL};
use crate::client;
use crate::report::ScenarioResult;
use anyhow::Context;
use futures::StreamExt;
use orisun_proto::{CatchUpSubscribeToEventStoreRequest, GetEventsRequest, Position};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

impl Bench {
    /// Reads the large boundary's first events (the plan's preload size) with GetEvents,
    /// page after page, on one client.
    pub async fn get_events(&mut self) -> anyhow::Result<ScenarioResult> {
        let boundary = self.boundaries.big.clone();
        let (wanted, page) = (self.plan.preload, self.plan.page_size);
        let mut client = self.pool[0].clone();
        self.measured("get_events", |counter| async move {
            let mut tally = Tally::default();
            let mut from: Option<Position> = None;
            let start = Instant::now();
            while tally.events < wanted {
                let t = Instant::now();
                let response = client
                    .get_events(GetEventsRequest {
                        boundary: boundary.clone(),
                        from_position: from,
                        count: page,
                        direction: orisun_proto::Direction::Asc as i32,
                        query: None,
                    })
                    .await
                    .context("GetEvents")?
                    .into_inner();
                let Some(last) = response.events.last().and_then(|e| e.position) else {
                    break;
                };
                let n = response.events.len() as u64;
                tally.ok(t.elapsed(), n);
                counter.fetch_add(n, Ordering::Relaxed);
                from = Some(client::after(&last));
            }
            tally.elapsed = start.elapsed();
            Ok(tally.into_result(
                "get_events",
                format!("GetEvents paging from the start, {page} events per page, one client"),
            ))
        })
        .await
    }

    /// Subscribes to the large boundary from the beginning and receives the plan's preload
    /// size of events, checking that their positions strictly increase.
    pub async fn catch_up(&mut self) -> anyhow::Result<ScenarioResult> {
        let boundary = self.boundaries.big.clone();
        let wanted = self.plan.preload;
        let mut client = self.pool[0].clone();
        // A name of its own each time: the catch-up may run once per alternating round.
        self.catch_ups += 1;
        let name = format!("bench-catchup-{}-{}", self.run_id, self.catch_ups);
        self.measured("catch_up", |counter| async move {
            let start = Instant::now();
            let mut stream = client
                .catch_up_subscribe_to_events(CatchUpSubscribeToEventStoreRequest {
                    after_position: Some(before_first()),
                    query: None,
                    subscriber_name: name,
                    boundary,
                })
                .await
                .context("CatchUpSubscribeToEvents")?
                .into_inner();
            let mut tally = Tally::default();
            let mut first_event: Option<Duration> = None;
            let mut last = (-1i64, -1i64);
            while tally.events < wanted {
                let item = tokio::time::timeout(READ_STALL, stream.next())
                    .await
                    .with_context(|| {
                        format!("no event for {}s after {}", READ_STALL.as_secs(), tally.events)
                    })?;
                match item {
                    Some(Ok(event)) => {
                        let p = event.position.context("an event without a position")?;
                        let at = (p.commit_position, p.prepare_position);
                        anyhow::ensure!(
                            at > last,
                            "out of order or repeated: {at:?} after {last:?}"
                        );
                        last = at;
                        tally.events += 1;
                        if first_event.is_none() {
                            first_event = Some(start.elapsed());
                        }
                        // Count in chunks: an atomic add per event would cost more than it tells.
                        if tally.events % 1_000 == 0 {
                            counter.fetch_add(1_000, Ordering::Relaxed);
                        }
                    }
                    Some(Err(status)) => anyhow::bail!("subscription failed: {status}"),
                    None => anyhow::bail!("the server ended the subscription after {} events", tally.events),
                }
            }
            tally.elapsed = start.elapsed();
            tally.requests = 1;
            let first_ms = first_event.map_or(0.0, |d| d.as_secs_f64() * 1000.0);
            Ok(tally.into_result(
                "catch_up",
                format!(
                    "catch-up subscription from the beginning, one subscriber (first event after {first_ms:.1} ms)"
                ),
            ))
        })
        .await
    }
}
