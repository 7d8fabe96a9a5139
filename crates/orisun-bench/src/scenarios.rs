//! The scenarios, run over gRPC against one server the way real clients use it: single-event
//! saves (closed loop, each client on its own connection and, when conditional, its own
//! context), batches, conditional saves on a large boundary, GetEvents paging, catch-up
//! subscription, and commit-to-subscriber latency under an open-loop writer at a fixed rate,
//! with the subscriber on the same node or on a second one.

use crate::client::{self, Client};
use crate::options::{Backend, Plan};
use crate::payload;
use crate::progress::Progress;
use crate::report::ScenarioResult;
use crate::rss;
use crate::stats::{rate, Latencies};
use anyhow::Context;
use futures::future::try_join_all;
use futures::StreamExt;
use orisun_proto::{
    CatchUpSubscribeToEventStoreRequest, Criterion, GetEventsRequest, GetLatestByCriteriaRequest,
    Position, Query, SaveEventsRequest, SaveQuery, Tag,
};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Barrier, Semaphore};
use tokio::task::JoinSet;
use tonic::Status;

/// A client stops after this many failed requests (the scenario reports them).
const MAX_ERRORS_PER_CLIENT: u64 = 10;

/// Most saves in flight in the fixed-rate scenario; beyond it ticks are skipped (overload).
const MAX_IN_FLIGHT: usize = 1_000;

/// Connections the fixed-rate writer spreads its saves over.
const LATENCY_WRITERS: usize = 4;

/// How long a reader waits for the next event before giving up.
const READ_STALL: Duration = Duration::from_secs(30);

/// The boundaries the bench writes to, named from a prefix.
#[derive(Debug, Clone)]
pub struct Boundaries {
    /// Unconditional single-event saves.
    pub single: String,
    /// Conditional single-event saves.
    pub cond: String,
    /// Batches.
    pub batch: String,
    /// The preloaded boundary (conditional saves on it, reads, catch-up).
    pub big: String,
    /// Commit-to-subscriber latency.
    pub latency: String,
}

impl Boundaries {
    /// Names the boundaries `<prefix>_single`, `<prefix>_cond`, ...
    pub fn new(prefix: &str) -> Self {
        Self {
            single: format!("{prefix}_single"),
            cond: format!("{prefix}_cond"),
            batch: format!("{prefix}_batch"),
            big: format!("{prefix}_big"),
            latency: format!("{prefix}_latency"),
        }
    }

    /// Returns all of them.
    pub fn all(&self) -> Vec<String> {
        vec![
            self.single.clone(),
            self.cond.clone(),
            self.batch.clone(),
            self.big.clone(),
            self.latency.clone(),
        ]
    }
}

/// What one client (or one scenario, once merged) counted.
#[derive(Debug, Default)]
struct Tally {
    events: u64,
    requests: u64,
    errors: u64,
    first_error: Option<String>,
    latencies: Latencies,
    /// Wall time of the measured loop (clients: the longest of them).
    elapsed: Duration,
}

impl Tally {
    fn ok(&mut self, latency: Duration, events: u64) {
        self.requests += 1;
        self.events += events;
        self.latencies.record(latency);
    }

    /// Counts a failure; returns whether the client should stop.
    fn failed(&mut self, status: &Status) -> bool {
        self.requests += 1;
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(format!("{:?}: {}", status.code(), status.message()));
        }
        self.errors >= MAX_ERRORS_PER_CLIENT
    }

    fn merge(&mut self, other: Tally) {
        self.events += other.events;
        self.requests += other.requests;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latencies.add(&other.latencies);
        self.elapsed = self.elapsed.max(other.elapsed);
    }

    fn into_result(self, id: &str, description: String) -> ScenarioResult {
        let mut r = ScenarioResult::new(id, description);
        r.events = self.events;
        r.requests = self.requests;
        r.errors = self.errors;
        r.first_error = self.first_error;
        r.elapsed_s = self.elapsed.as_secs_f64();
        r.events_per_s = rate(self.events, self.elapsed);
        r.latency = self.latencies.summary();
        r
    }
}

/// A connected bench against one server.
pub struct Bench {
    backend: Backend,
    endpoint: String,
    user: String,
    password: String,
    pid: Option<u32>,
    plan: Plan,
    boundaries: Boundaries,
    pool: Vec<Client>,
    /// Distinguishes this run's contexts and subscriber names from earlier runs' (`--addr`).
    run_id: String,
}

fn criterion(key: &str, value: &str) -> Criterion {
    Criterion {
        tags: vec![Tag {
            key: key.to_owned(),
            value: value.to_owned(),
        }],
    }
}

fn before_first() -> Position {
    Position {
        commit_position: -1,
        prepare_position: -1,
    }
}

impl Bench {
    /// Connects one authenticated client and checks every boundary is there.
    #[allow(clippy::too_many_arguments)]
    pub async fn connect(
        backend: Backend,
        endpoint: String,
        user: String,
        password: String,
        pid: Option<u32>,
        plan: Plan,
        boundaries: Boundaries,
    ) -> anyhow::Result<Self> {
        let mut bench = Self {
            backend,
            endpoint,
            user,
            password,
            pid,
            plan,
            boundaries,
            pool: Vec::new(),
            run_id: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
        };
        bench.ensure_pool(1).await?;
        let mut first = bench.pool[0].clone();
        for b in bench.boundaries.all() {
            if client::boundary_exists(&mut first, &b).await? {
                continue;
            }
            // Only a server started elsewhere (`--addr`) can lack them; ours declares them.
            let placements: &[(&str, &str)] = match backend {
                Backend::Embedded => &[("sqlite", b.as_str())],
                Backend::Postgres => &[("postgres", "public")],
                Backend::Remote => &[("sqlite", b.as_str()), ("postgres", "public")],
            };
            eprintln!("[{}] creating boundary {b}", backend.name());
            client::create_boundary(
                &bench.endpoint,
                &bench.user,
                &bench.password,
                &b,
                placements,
            )
            .await?;
            client::head(&mut first, &b).await?;
        }
        Ok(bench)
    }

    /// Opens connections (each authenticating once) until the pool holds `n`.
    async fn ensure_pool(&mut self, n: usize) -> anyhow::Result<()> {
        while self.pool.len() < n {
            let missing = n - self.pool.len();
            // A few at a time: each login costs the server a password hash.
            let batch = missing.min(8);
            let connects =
                (0..batch).map(|_| client::connect(&self.endpoint, &self.user, &self.password));
            self.pool.extend(try_join_all(connects).await?);
        }
        Ok(())
    }

    /// Runs `body` with progress lines and RSS sampling; stamps the scenario's peak RSS.
    async fn measured<F, Fut>(&self, id: &str, body: F) -> anyhow::Result<ScenarioResult>
    where
        F: FnOnce(Arc<AtomicU64>) -> Fut,
        Fut: Future<Output = anyhow::Result<ScenarioResult>>,
    {
        let sampler = self.pid.map(rss::Sampler::start);
        let progress = Progress::start(self.backend.name(), id);
        let result = body(progress.counter()).await;
        progress.finish();
        let peak = match sampler {
            Some(s) => s.finish().await,
            None => None,
        };
        let mut result = result.with_context(|| format!("scenario {id}"))?;
        result.peak_rss_bytes = peak;
        Ok(result)
    }

    /// Single-event saves by `clients` concurrent clients in a closed loop for `duration`;
    /// when `conditional`, each client checks its own context (criterion
    /// `client = <its name>`) against the position of its previous write.
    pub async fn single_saves(
        &mut self,
        clients: usize,
        conditional: bool,
        duration: Duration,
    ) -> anyhow::Result<ScenarioResult> {
        self.ensure_pool(clients).await?;
        let kind = if conditional { "cond" } else { "uncond" };
        let id = format!("single_{kind}_c{clients}");
        let boundary = if conditional {
            self.boundaries.cond.clone()
        } else {
            self.boundaries.single.clone()
        };
        let pool: Vec<Client> = self.pool[..clients].to_vec();
        let run_id = self.run_id.clone();
        self.measured(&id.clone(), |counter| async move {
            let barrier = Arc::new(Barrier::new(clients));
            let workers = pool.into_iter().enumerate().map(|(i, mut client)| {
                let (barrier, counter, boundary) =
                    (barrier.clone(), counter.clone(), boundary.clone());
                let context = format!("{run_id}-{kind}-c{clients}-{i}");
                async move {
                    let mine = criterion("client", &context);
                    let mut expected = if conditional {
                        let latest = client
                            .get_latest_by_criteria(GetLatestByCriteriaRequest {
                                boundary: boundary.clone(),
                                criteria: vec![mine.clone()],
                            })
                            .await?
                            .into_inner();
                        Some(latest.context_position.unwrap_or_else(before_first))
                    } else {
                        None
                    };
                    barrier.wait().await;
                    let mut tally = Tally::default();
                    let start = Instant::now();
                    let mut n = 0u64;
                    while start.elapsed() < duration {
                        let request = SaveEventsRequest {
                            boundary: boundary.clone(),
                            query: conditional.then(|| SaveQuery {
                                expected_position: expected,
                                subset_query: Some(Query {
                                    criteria: vec![mine.clone()],
                                }),
                            }),
                            events: vec![payload::event(&context, &context, n)],
                        };
                        n += 1;
                        let t = Instant::now();
                        match client.save_events(request).await {
                            Ok(response) => {
                                tally.ok(t.elapsed(), 1);
                                counter.fetch_add(1, Ordering::Relaxed);
                                if conditional {
                                    expected = response.into_inner().log_position;
                                }
                            }
                            Err(status) => {
                                if tally.failed(&status) {
                                    break;
                                }
                            }
                        }
                    }
                    tally.elapsed = start.elapsed();
                    anyhow::Ok(tally)
                }
            });
            let mut total = Tally::default();
            for t in try_join_all(workers).await? {
                total.merge(t);
            }
            let what = if conditional {
                "conditional (own context, expected = own last write)"
            } else {
                "unconditional"
            };
            Ok(total.into_result(
                &id,
                format!("single-event saves, {clients} concurrent client(s), {what}"),
            ))
        })
        .await
    }

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
            let mut tally = Tally::default();
            let mut measured = Duration::ZERO;
            let start = Instant::now();
            let mut n = 0u64;
            let mut batches = 0u64;
            while start.elapsed() < duration || batches < min_batches {
                let events = (0..size as u64)
                    .map(|i| payload::event("batch", &payload::entity_of(n + i), n + i))
                    .collect();
                n += size as u64;
                batches += 1;
                let request = SaveEventsRequest {
                    boundary: boundary.clone(),
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
            Ok(tally.into_result(
                &id,
                format!("batches of {size} events, one client, unconditional"),
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

    /// Single-event saves by one client on the large boundary, about one entity whose
    /// earlier events are spread over the whole log: unconditional, or conditional on that
    /// entity (criterion `entity = e0`, expected = the latest matching position).
    pub async fn big_saves(
        &mut self,
        conditional: bool,
        duration: Duration,
    ) -> anyhow::Result<ScenarioResult> {
        let id = if conditional {
            "big_cond"
        } else {
            "big_uncond"
        };
        let boundary = self.boundaries.big.clone();
        let mut client = self.pool[0].clone();
        let entity = "e0";
        self.measured(id, |counter| async move {
            let matching = criterion("entity", entity);
            let mut expected = if conditional {
                let latest = client
                    .get_latest_by_criteria(GetLatestByCriteriaRequest {
                        boundary: boundary.clone(),
                        criteria: vec![matching.clone()],
                    })
                    .await?
                    .into_inner();
                Some(latest.context_position.unwrap_or_else(before_first))
            } else {
                None
            };
            let mut tally = Tally::default();
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < duration {
                let request = SaveEventsRequest {
                    boundary: boundary.clone(),
                    query: conditional.then(|| SaveQuery {
                        expected_position: expected,
                        subset_query: Some(Query {
                            criteria: vec![matching.clone()],
                        }),
                    }),
                    events: vec![payload::event(id, entity, n)],
                };
                n += 1;
                let t = Instant::now();
                match client.save_events(request).await {
                    Ok(response) => {
                        tally.ok(t.elapsed(), 1);
                        counter.fetch_add(1, Ordering::Relaxed);
                        if conditional {
                            expected = response.into_inner().log_position;
                        }
                    }
                    Err(status) => {
                        if tally.failed(&status) {
                            break;
                        }
                    }
                }
            }
            tally.elapsed = start.elapsed();
            let what = if conditional {
                "conditional on entity=e0"
            } else {
                "unconditional"
            };
            Ok(tally.into_result(
                id,
                format!("single-event saves on the large boundary, one client, {what}"),
            ))
        })
        .await
    }

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
        let name = format!("bench-catchup-{}", self.run_id);
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
