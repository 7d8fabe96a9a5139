//! The commit-to-subscriber latency scenarios: an open-loop writer at a fixed rate, and live
//! subscribers (on the same node, or also on a second one) that time each event from its
//! send to its receipt.

use super::{before_first, Bench, Tally, READ_STALL};
use crate::client::{self, Client};
use crate::payload;
use crate::report::ScenarioResult;
use crate::stats::{rate, Latencies};
use anyhow::Context;
use futures::StreamExt;
use orisun_proto::{CatchUpSubscribeToEventStoreRequest, SaveEventsRequest};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tonic::Status;

/// Most saves in flight in the fixed-rate scenario; beyond it ticks are skipped (overload).
const MAX_IN_FLIGHT: usize = 1_000;

/// Connections the fixed-rate writer spreads its saves over.
const LATENCY_WRITERS: usize = 4;

impl Bench {
    /// Commit-to-subscriber latency: a subscriber follows the latency boundary live while an
    /// open-loop writer saves single events at the plan's fixed rate over a few connections,
    /// each carrying its send time; latency = receive time - send time, on this process's
    /// clock.
    pub async fn commit_to_subscriber(&mut self) -> anyhow::Result<ScenarioResult> {
        self.ensure_pool(LATENCY_WRITERS + 1).await?;
        let subscriber = self.pool[LATENCY_WRITERS].clone();
        let id = "commit_to_subscriber";
        let per_second = self.plan.latency_rate;
        let run = self.fixed_rate_delivery(id, vec![subscriber]);
        self.measured(id, |counter| async move {
            let d = run.go(counter).await?;
            let mut r = ScenarioResult::new(
                id,
                format!(
                    "single-event saves at a fixed {per_second} ev/s over {LATENCY_WRITERS} connections, one live subscriber; latency = receive - send ({})",
                    d.save_note()
                ),
            );
            d.fill(&mut r, 0);
            Ok(r)
        })
        .await
    }

    /// Commit-to-subscriber latency across two nodes: the same fixed-rate writer on this
    /// server, one live subscriber on it and one on `other` (a second server on the same
    /// PostgreSQL database), both at once. The figures are those of the subscriber on the
    /// other node; the description gives the same-node subscriber's for comparison.
    pub async fn commit_to_subscriber_two_nodes(
        &mut self,
        other: &str,
    ) -> anyhow::Result<ScenarioResult> {
        self.ensure_pool(LATENCY_WRITERS + 1).await?;
        let here = self.pool[LATENCY_WRITERS].clone();
        let there = client::connect(other, &self.user, &self.password)
            .await
            .context("connecting to the second node")?;
        let id = "commit_to_subscriber_two_nodes";
        let per_second = self.plan.latency_rate;
        let run = self.fixed_rate_delivery(id, vec![there, here]);
        self.measured(id, |counter| async move {
            let d = run.go(counter).await?;
            let same = d.subscribers[1].0.summary();
            let (same_p50, same_p99) = same.map_or((0.0, 0.0), |s| (s.p50_ms, s.p99_ms));
            let mut r = ScenarioResult::new(
                id,
                format!(
                    "single-event saves at a fixed {per_second} ev/s over {LATENCY_WRITERS} connections to node A, live subscribers on node A and on node B (same database); figures: node B's; node A's at the same time p50 {same_p50:.2} ms, p99 {same_p99:.2} ms ({})",
                    d.save_note()
                ),
            );
            d.fill(&mut r, 0);
            Ok(r)
        })
        .await
    }

    /// Prepares a fixed-rate delivery run through this bench's writers to `subscribers`.
    fn fixed_rate_delivery(&self, id: &str, subscribers: Vec<Client>) -> FixedRate {
        FixedRate {
            boundary: self.boundaries.latency.clone(),
            duration: self.plan.latency_duration,
            per_second: self.plan.latency_rate,
            writers: self.pool[..LATENCY_WRITERS].to_vec(),
            subscribers,
            name: format!("bench-{id}-{}", self.run_id),
        }
    }
}

/// An open-loop writer at a fixed rate and the live subscribers that time its events.
struct FixedRate {
    boundary: String,
    duration: Duration,
    per_second: u32,
    writers: Vec<Client>,
    subscribers: Vec<Client>,
    /// Prefix of the subscriber names.
    name: String,
}

/// What a fixed-rate delivery run measured.
struct Delivered {
    /// The writer's saves (their round trips as latencies).
    saves: Tally,
    /// Ticks skipped because [`MAX_IN_FLIGHT`] saves were pending.
    skipped: u64,
    /// Events saved.
    written: u64,
    /// How long the writer ran.
    write_time: Duration,
    /// Per subscriber, in the order given: delivery latencies and events received.
    subscribers: Vec<(Latencies, u64)>,
}

impl Delivered {
    /// The writer's side, in words.
    fn save_note(&self) -> String {
        let s = self.saves.latencies.summary();
        format!(
            "save p50 {} ms, p99 {} ms; {} ticks skipped for overload",
            s.map_or(0.0, |s| s.p50_ms),
            s.map_or(0.0, |s| s.p99_ms),
            self.skipped
        )
    }

    /// Fills `r` with the figures of subscriber `k`.
    fn fill(self, r: &mut ScenarioResult, k: usize) {
        let (latencies, received) = &self.subscribers[k];
        let (written, received) = (self.written, *received);
        r.events = received;
        r.requests = self.saves.requests;
        r.errors = self.saves.errors + written.saturating_sub(received) + self.skipped;
        r.first_error = self.saves.first_error.or_else(|| {
            (written > received)
                .then(|| format!("{} saved events were not delivered", written - received))
        });
        r.elapsed_s = self.write_time.as_secs_f64();
        r.events_per_s = rate(received, self.write_time);
        r.latency = latencies.summary();
    }
}

impl FixedRate {
    /// Subscribes every subscriber after the boundary's head, sends one warm-up event through
    /// each, then writes for the duration and collects what each received. `counter` counts
    /// the first subscriber's events.
    async fn go(self, counter: Arc<AtomicU64>) -> anyhow::Result<Delivered> {
        let Self {
            boundary,
            duration,
            per_second,
            writers,
            subscribers,
            name,
        } = self;
        let clock = Instant::now();
        let mut streams = Vec::with_capacity(subscribers.len());
        for (k, mut subscriber) in subscribers.into_iter().enumerate() {
            let after = client::head(&mut subscriber, &boundary)
                .await?
                .unwrap_or_else(before_first);
            let stream = subscriber
                .catch_up_subscribe_to_events(CatchUpSubscribeToEventStoreRequest {
                    after_position: Some(after),
                    query: None,
                    subscriber_name: format!("{name}-{k}"),
                    boundary: boundary.clone(),
                })
                .await
                .context("CatchUpSubscribeToEvents")?
                .into_inner();
            streams.push(stream);
        }
        // Warm-up: one event through the whole path, so every subscription is live.
        let mut warm = writers[0].clone();
        warm.save_events(SaveEventsRequest {
            boundary: boundary.clone(),
            query: None,
            events: vec![payload::timed_event(0, 0)],
        })
        .await
        .context("warm-up save")?;
        for stream in &mut streams {
            loop {
                match tokio::time::timeout(READ_STALL, stream.next()).await {
                    Ok(Some(Ok(e))) if payload::sent_micros(&e.data) == Some(0) => break,
                    Ok(Some(Ok(_))) => {}
                    Ok(Some(Err(s))) => anyhow::bail!("subscription failed: {s}"),
                    Ok(None) => anyhow::bail!("the server ended the subscription"),
                    Err(_) => anyhow::bail!(
                        "the warm-up event was not delivered within {}s",
                        READ_STALL.as_secs()
                    ),
                }
            }
        }

        // Each receiver runs until told how many events to expect, or gives up after a grace
        // period.
        let (done_tx, done_rx) = tokio::sync::watch::channel::<Option<u64>>(None);
        let receivers: Vec<_> = streams
            .into_iter()
            .enumerate()
            .map(|(k, stream)| {
                let counter = (k == 0).then(|| counter.clone());
                tokio::spawn(receive(stream, clock, done_rx.clone(), counter))
            })
            .collect();

        let mut saves = Tally::default();
        let mut skipped = 0u64;
        let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let mut ticker =
            tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(per_second)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut in_flight: JoinSet<(Result<(), Status>, Duration)> = JoinSet::new();
        let start = Instant::now();
        let mut n = 1u64;
        let reap = |result: (Result<(), Status>, Duration), saves: &mut Tally| match result {
            (Ok(()), took) => saves.ok(took, 1),
            (Err(status), _) => {
                saves.failed(&status);
            }
        };
        while start.elapsed() < duration {
            ticker.tick().await;
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                skipped += 1;
                continue;
            };
            let mut client = writers[(n as usize) % writers.len()].clone();
            let boundary = boundary.clone();
            let seq = n;
            n += 1;
            in_flight.spawn(async move {
                let sent = (clock.elapsed().as_micros() as u64).max(1);
                let t = Instant::now();
                let result = client
                    .save_events(SaveEventsRequest {
                        boundary,
                        query: None,
                        events: vec![payload::timed_event(seq, sent)],
                    })
                    .await
                    .map(|_| ());
                drop(slot);
                (result, t.elapsed())
            });
            while let Some(done) = in_flight.try_join_next() {
                if let Ok(r) = done {
                    reap(r, &mut saves);
                }
            }
        }
        while let Some(done) = in_flight.join_next().await {
            if let Ok(r) = done {
                reap(r, &mut saves);
            }
        }
        let written = saves.events;
        let write_time = start.elapsed();
        let _ = done_tx.send(Some(written));
        let mut received = Vec::with_capacity(receivers.len());
        for r in receivers {
            received.push(r.await.context("a receiver panicked")??);
        }
        Ok(Delivered {
            saves,
            skipped,
            written,
            write_time,
            subscribers: received,
        })
    }
}

/// Receives timed events from `stream` until `done` says how many were written and that many
/// arrived (or a grace period after it passed); returns their latencies and count.
async fn receive(
    mut stream: tonic::Streaming<orisun_proto::Event>,
    clock: Instant,
    mut done: tokio::sync::watch::Receiver<Option<u64>>,
    counter: Option<Arc<AtomicU64>>,
) -> anyhow::Result<(Latencies, u64)> {
    let mut latencies = Latencies::new();
    let mut received = 0u64;
    let mut grace_until: Option<Instant> = None;
    loop {
        if let Some(target) = *done.borrow_and_update() {
            if received >= target {
                break;
            }
            let until =
                *grace_until.get_or_insert_with(|| Instant::now() + Duration::from_secs(10));
            if Instant::now() > until {
                break;
            }
        }
        match tokio::time::timeout(Duration::from_millis(200), stream.next()).await {
            Ok(Some(Ok(event))) => {
                let now = clock.elapsed().as_micros() as u64;
                if let Some(sent) = payload::sent_micros(&event.data).filter(|s| *s > 0) {
                    latencies.record(Duration::from_micros(now.saturating_sub(sent)));
                    received += 1;
                    if let Some(c) = &counter {
                        c.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Ok(Some(Err(s))) => anyhow::bail!("subscription failed: {s}"),
            Ok(None) => anyhow::bail!("the server ended the subscription"),
            Err(_) => {}
        }
    }
    Ok((latencies, received))
}
