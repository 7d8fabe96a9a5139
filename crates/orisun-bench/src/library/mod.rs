//! Library mode: the aggregate and projection libraries measured in the bench's own process
//! (no gRPC, no server), each against the plain `EventStore` call doing the same work,
//! measured in the same run in alternating rounds and reported as a ratio.
//!
//! The store is opened directly: a `SqliteStore` in a temporary directory with its durable
//! defaults (embedded), or a `PostgresStore` on a fresh database the bench creates and drops
//! (PostgreSQL). A preload fills one boundary with aggregate streams of 1,000 events each,
//! interleaved over the whole log (`layout`); then the scenarios run in this order, so that the
//! reads and projections see exactly the preloaded events and only the last one adds to them:
//!
//! | scenario | compared with |
//! |---|---|
//! | `lib_aggregate_read`: `Aggregates::read(&id, ..)` of a random stream | `lib_store_read_1000`: `EventStore::read` of 1,000 consecutive events from a random event |
//! | `lib_projection`: a one-off processor over the boundary, batches of 1,000, a handler that does nothing | `lib_store_paged_read`: the same events read in pages of 1,000 |
//! | `lib_partitions_{1,2,4}`: the same projection in 1, 2 and 4 partitions, one task each, batches of 100, a handler that sleeps 1 ms per batch | `lib_partitions_1` (the speed-up) |
//! | `lib_aggregate_append`: `Aggregates::append(Any)` of one event to a random stream | `lib_store_append`: `EventStore::append` of one event, no condition |
//!
//! This file holds the opened store, the tally the scenarios share and the order they run
//! in; the preload is in `layout`, the aggregate scenarios in `aggregates`, the projection
//! scenarios in `projections`.

mod aggregates;
mod layout;
mod projections;

use crate::options::{Backend, Plan};
use crate::progress::Progress;
use crate::report::{BaselineResult, LibraryReport, ScenarioResult};
use crate::rounds::{first_ratio, median_round};
use crate::server::Storage;
use crate::stats::{rate, Latencies};
use anyhow::Context;
use orisun_core::BoundaryName;
use orisun_postgres::{PostgresConfig, PostgresStore};
use orisun_sqlite::{SqliteConfig, SqliteStore};
use orisun_store::EventStore;
use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

/// The boundary library mode writes to.
const BOUNDARY: &str = "bench_library";

/// The store library mode opened, and what it needs to stay open.
enum Backing {
    /// The embedded store; the directory is removed after the store is closed (fields drop
    /// in declaration order).
    Sqlite {
        store: SqliteStore,
        _dir: tempfile::TempDir,
    },
    /// PostgreSQL, on a database the caller created and drops.
    Postgres(PostgresStore),
}

/// A store opened in the bench's process, with the boundary the scenarios use.
pub struct Library {
    backend: Backend,
    backing: Backing,
    store: Arc<dyn EventStore>,
    boundary: BoundaryName,
    plan: Plan,
    /// Distinguishes this run's projection names.
    run_id: String,
}

/// What one scenario or baseline counted.
#[derive(Debug, Default)]
struct Tally {
    events: u64,
    requests: u64,
    latencies: Latencies,
    elapsed: Duration,
}

impl Tally {
    fn ok(&mut self, latency: Duration, events: u64) {
        self.requests += 1;
        self.events += events;
        self.latencies.record(latency);
    }

    fn scenario(self, id: &str, description: String) -> ScenarioResult {
        let mut r = ScenarioResult::new(id, description);
        r.events = self.events;
        r.requests = self.requests;
        r.elapsed_s = self.elapsed.as_secs_f64();
        r.events_per_s = rate(self.events, self.elapsed);
        r.latency = self.latencies.summary();
        r
    }

    fn baseline(self, id: &str, description: String) -> BaselineResult {
        BaselineResult {
            id: id.to_owned(),
            description,
            connections: 1,
            rows: self.events,
            elapsed_s: self.elapsed.as_secs_f64(),
            events_per_s: rate(self.events, self.elapsed),
            latency: self.latencies.summary(),
        }
    }
}

impl Library {
    /// Opens the embedded store in a fresh temporary directory, with its default (durable)
    /// settings.
    pub async fn sqlite(plan: &Plan) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("orisun-bench-library-")
            .tempdir()
            .context("creating the library-mode data directory")?;
        let config = SqliteConfig::new(dir.path());
        // Opening blocks on file I/O.
        let store = tokio::task::spawn_blocking(move || SqliteStore::open(config))
            .await
            .context("opening the SQLite store")??;
        let backing = Backing::Sqlite { store, _dir: dir };
        Self::open(Backend::Embedded, backing, plan).await
    }

    /// Opens a PostgreSQL store on the database of `storage` (created by the caller).
    pub async fn postgres(storage: &Storage, plan: &Plan) -> anyhow::Result<Self> {
        let Storage::Postgres {
            host,
            port,
            user,
            password,
            dbname,
        } = storage
        else {
            anyhow::bail!("library mode on PostgreSQL needs a PostgreSQL database");
        };
        let config = PostgresConfig {
            host: host.clone(),
            port: *port,
            user: user.clone(),
            password: password.clone(),
            dbname: dbname.clone(),
            application_name: "orisun_bench_library".to_owned(),
            ..PostgresConfig::default()
        };
        let store = PostgresStore::connect(config)
            .await
            .with_context(|| format!("opening a PostgreSQL store on database {dbname}"))?;
        Self::open(Backend::Postgres, Backing::Postgres(store), plan).await
    }

    async fn open(backend: Backend, backing: Backing, plan: &Plan) -> anyhow::Result<Self> {
        let store: Arc<dyn EventStore> = match &backing {
            Backing::Sqlite { store, .. } => Arc::new(store.clone()),
            Backing::Postgres(store) => Arc::new(store.clone()),
        };
        let boundary = BoundaryName::new(BOUNDARY).context("the library boundary's name")?;
        store
            .create_boundary(&boundary)
            .await
            .context("creating the library boundary")?;
        Ok(Self {
            backend,
            backing,
            store,
            boundary,
            plan: plan.clone(),
            run_id: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
        })
    }

    /// Describes the store, for the report.
    pub fn describe(&self) -> String {
        match &self.backing {
            Backing::Sqlite { store, .. } => format!(
                "SqliteStore in a fresh temporary directory, default settings (synchronous = {:?})",
                store.config().synchronous
            ),
            Backing::Postgres(store) => format!(
                "PostgresStore on a fresh database, {} (pool of {})",
                store.config().dbname,
                store.config().pool_size
            ),
        }
    }

    /// Runs the library-mode scenarios the plan asks for, adding each result to `report` as
    /// soon as it is measured.
    pub async fn run(&self, report: &mut LibraryReport) -> anyhow::Result<()> {
        let plan = self.plan.clone();
        let (layout, preload) = self.preload(&plan).await?;
        report.scenarios.push(preload);
        let rounds = plan.rounds.max(1);
        let slice = plan.duration / rounds;
        if plan.wants("lib_aggregate_read") {
            let mut runs: Vec<[Option<ScenarioResult>; 1]> = Vec::new();
            let mut baselines = Vec::new();
            for _ in 0..rounds {
                runs.push([Some(self.aggregate_reads(&layout, slice).await?)]);
                baselines.push(Some(self.store_reads(&layout, slice).await?));
            }
            keep_median(report, runs, baselines);
        }
        if plan.wants("lib_projection") {
            let mut runs: Vec<[Option<ScenarioResult>; 1]> = Vec::new();
            let mut baselines = Vec::new();
            for round in 0..rounds {
                runs.push([Some(self.projection(&layout, round).await?)]);
                baselines.push(Some(self.store_paged_read(&layout).await?));
            }
            keep_median(report, runs, baselines);
        }
        if plan.wants("lib_partitions") {
            self.partition_rounds(report, &layout, rounds).await?;
        }
        if plan.wants("lib_aggregate_append") {
            let mut runs: Vec<[Option<ScenarioResult>; 1]> = Vec::new();
            let mut baselines = Vec::new();
            for _ in 0..rounds {
                runs.push([Some(self.aggregate_appends(&layout, slice).await?)]);
                baselines.push(Some(self.store_appends(&layout, slice).await?));
            }
            keep_median(report, runs, baselines);
        }
        Ok(())
    }

    /// Runs `body` with progress lines, counting into the counter it is given.
    async fn measured<T, F, Fut>(&self, id: &str, body: F) -> anyhow::Result<T>
    where
        F: FnOnce(Arc<AtomicU64>) -> Fut,
        Fut: Future<Output = anyhow::Result<T>>,
    {
        let progress = Progress::start(self.backend.name(), id);
        let result = body(progress.counter()).await;
        progress.finish();
        result.with_context(|| format!("library scenario {id}"))
    }
}

/// Keeps the median round (by the ratio to the baseline) of a scenario and its baseline.
fn keep_median(
    report: &mut LibraryReport,
    runs: Vec<[Option<ScenarioResult>; 1]>,
    baselines: Vec<Option<BaselineResult>>,
) {
    let ([kept], baseline) = median_round(runs, baselines, first_ratio);
    report.scenarios.extend(kept);
    report.baselines.extend(baseline);
}
