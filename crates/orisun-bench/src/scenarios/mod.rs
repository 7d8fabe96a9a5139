//! The scenarios, run over gRPC against one server the way real clients use it: single-event
//! saves (closed loop, each client on its own connection and, when conditional, its own
//! context), batches (by one client or several), conditional saves on a large boundary, GetEvents paging, catch-up
//! subscription, and commit-to-subscriber latency under an open-loop writer at a fixed rate,
//! with the subscriber on the same node or on a second one.
//!
//! This file holds what every scenario shares: the boundaries, the per-client tally, and the
//! connected [`Bench`] with its connection pool and its measuring wrapper. The scenarios
//! themselves are in `saves` (single-event and conditional saves), `batches` (batches and
//! the preload), `reads` (GetEvents paging and catch-up) and `delivery` (commit-to-subscriber
//! latency).

mod batches;
mod delivery;
mod reads;
mod saves;

use crate::client::{self, Client};
use crate::options::{Backend, Plan};
use crate::progress::Progress;
use crate::report::ScenarioResult;
use crate::rss;
use crate::stats::{rate, Latencies};
use anyhow::Context;
use futures::future::try_join_all;
use orisun_proto::{Criterion, Position, Tag};
use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;
use tonic::Status;

/// A client stops after this many failed requests (the scenario reports them).
const MAX_ERRORS_PER_CLIENT: u64 = 10;

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
    /// Catch-up subscriptions made so far (each gets its own subscriber name).
    catch_ups: u32,
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
            catch_ups: 0,
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
}
