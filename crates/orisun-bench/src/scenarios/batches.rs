//! The batch scenarios: batches of a given size by one client or by several at once, and the
//! preload that fills the large boundary in batches over two clients before the scenarios that
//! read it.

use super::{Bench, Tally};
use crate::client::{self, Client};
use crate::payload;
use crate::report::ScenarioResult;
use anyhow::Context;
use futures::future::try_join_all;
use orisun_proto::SaveEventsRequest;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

impl Bench {
    /// Batches of `size` events by one client, for `duration` (and at least the plan's
    /// minimum number of batches). Throughput is over the requests' time: building a batch
    /// is the client's work, not the server's.
    pub async fn batches(
        &mut self,
        size: usize,
        duration: Duration,
    ) -> anyhow::Result<ScenarioResult> {
        let id = format!("batch_{size}");
        let boundary = self.boundaries.batch.clone();
        let min_batches = self.plan.min_batches;
        let mut client = self.pool[0].clone();
        self.measured(&id.clone(), |counter| async move {
            let tally = save_batches(
                &mut client,
                &boundary,
                "batch",
                size,
                (duration, min_batches),
                &counter,
            )
            .await;
            Ok(tally.into_result(
                &id,
                format!("batches of {size} events, one client, unconditional"),
            ))
        })
        .await
    }

    /// Batches of `size` events by `clients` concurrent clients (`batch_c<clients>_<size>`),
    /// each for `duration` and at least the plan's minimum number of batches. As for one
    /// client, throughput is over the requests' time: the events of all clients over the
    /// longest of the clients' summed request times.
    pub async fn concurrent_batches(
        &mut self,
        clients: usize,
        size: usize,
        duration: Duration,
    ) -> anyhow::Result<ScenarioResult> {
        self.ensure_pool(clients).await?;
        let id = format!("batch_c{clients}_{size}");
        let boundary = self.boundaries.batch.clone();
        let min_batches = self.plan.min_batches;
        let pool: Vec<Client> = self.pool[..clients].to_vec();
        let run_id = self.run_id.clone();
        self.measured(&id.clone(), |counter| async move {
            let barrier = Arc::new(tokio::sync::Barrier::new(clients));
            let workers = pool.into_iter().enumerate().map(|(i, mut client)| {
                let (barrier, counter, boundary) =
                    (barrier.clone(), counter.clone(), boundary.clone());
                let context = format!("{run_id}-batch-c{clients}-{i}");
                async move {
                    barrier.wait().await;
                    let tally = save_batches(
                        &mut client,
                        &boundary,
                        &context,
                        size,
                        (duration, min_batches),
                        &counter,
                    )
                    .await;
                    anyhow::Ok(tally)
                }
            });
            let mut total = Tally::default();
            for t in try_join_all(workers).await? {
                total.merge(t);
            }
            Ok(total.into_result(
                &id,
                format!("batches of {size} events, {clients} concurrent clients, unconditional"),
            ))
        })
        .await
    }

    /// Fills the large boundary up to the plan's size in batches over two clients.
    pub async fn preload(&mut self) -> anyhow::Result<ScenarioResult> {
        self.ensure_pool(2).await?;
        let boundary = self.boundaries.big.clone();
        let (wanted, batch) = (self.plan.preload, self.plan.preload_batch);
        let have = client::event_count(&mut self.pool[0].clone(), &boundary).await?;
        let pool: Vec<Client> = self.pool[..2].to_vec();
        self.measured("preload", |counter| async move {
            let next = Arc::new(AtomicU64::new(have));
            let start = Instant::now();
            let workers = pool.into_iter().map(|mut client| {
                let (next, counter, boundary) = (next.clone(), counter.clone(), boundary.clone());
                async move {
                    let mut tally = Tally::default();
                    loop {
                        let first = next.fetch_add(batch as u64, Ordering::Relaxed);
                        if first >= wanted {
                            break;
                        }
                        let n = (wanted - first).min(batch as u64);
                        let events = (first..first + n)
                            .map(|k| payload::event("preload", &payload::entity_of(k), k))
                            .collect();
                        let t = Instant::now();
                        client
                            .save_events(SaveEventsRequest {
                                boundary: boundary.clone(),
                                query: None,
                                events,
                            })
                            .await
                            .context("preload batch")?;
                        tally.ok(t.elapsed(), n);
                        counter.fetch_add(n, Ordering::Relaxed);
                    }
                    anyhow::Ok(tally)
                }
            });
            let mut total = Tally::default();
            for t in try_join_all(workers).await? {
                total.merge(t);
            }
            total.elapsed = start.elapsed();
            Ok(total.into_result(
                "preload",
                format!(
                    "fills the large boundary to {wanted} events ({have} were there), batches of {batch}, 2 clients"
                ),
            ))
        })
        .await
    }
}

/// One client's closed loop of unconditional batches of `size` events of type `context`, for
/// the duration and at least the minimum number of batches of `until`; counts each stored event
/// on `counter`. The tally's elapsed time is the requests' time only: building a batch is the
/// client's work, not the server's.
async fn save_batches(
    client: &mut Client,
    boundary: &str,
    context: &str,
    size: usize,
    until: (Duration, u64),
    counter: &AtomicU64,
) -> Tally {
    let (duration, min_batches) = until;
    let mut tally = Tally::default();
    let mut measured = Duration::ZERO;
    let start = Instant::now();
    let (mut n, mut batches) = (0u64, 0u64);
    while start.elapsed() < duration || batches < min_batches {
        let events = (0..size as u64)
            .map(|k| payload::event(context, &payload::entity_of(n + k), n + k))
            .collect();
        n += size as u64;
        batches += 1;
        let request = SaveEventsRequest {
            boundary: boundary.to_owned(),
            query: None,
            events,
        };
        let t = Instant::now();
        let result = client.save_events(request).await;
        let took = t.elapsed();
        measured += took;
        match result {
            Ok(_) => {
                tally.ok(took, size as u64);
                counter.fetch_add(size as u64, Ordering::Relaxed);
            }
            Err(status) => {
                if tally.failed(&status) {
                    break;
                }
            }
        }
    }
    tally.elapsed = measured;
    tally
}
