//! The Orisun benchmark instrument behind `orisun bench`.
//!
//! [`run`] starts the server under test as a child process (`<bin> serve` on free loopback
//! ports, embedded backend in a fresh directory or PostgreSQL in a fresh database), or uses a
//! running one (`--addr`), and drives it over gRPC like real clients: one connection per
//! client, Basic authentication once, then the `x-auth-token`. For each scenario it measures
//! events/s, p50/p99/max latency and the server's peak RSS; with PostgreSQL it also measures
//! the same rows written and read by plain SQL on the same server (the raw baseline) and gives
//! each figure as a ratio of it, and starts a second server on the same database to time
//! delivery across nodes. Then, in library mode (`library`), it opens a store of the same
//! backend in its own process and measures the aggregate and projection libraries against
//! plain `EventStore` calls. With `--baseline umadb` it also starts UmaDB (`umadb`) beside
//! each backend's server and runs the counterparts of the write and read scenarios against it
//! in alternating rounds with ours, giving each of our figures as a ratio of UmaDB's.
//! Progress goes to stderr, the final table to stdout, and every figure to a JSON file on
//! request.

pub mod child;
pub mod client;
pub mod library;
pub mod observed;
pub mod options;
pub mod payload;
pub mod progress;
pub mod raw;
pub mod report;
mod rounds;
pub mod rss;
pub mod scenarios;
pub mod server;
pub mod stats;
pub mod umadb;

pub use options::{Backend, BackendChoice, BenchOptions, ExternalBaseline, Plan, Scale};
pub use report::{BackendReport, Report};

use anyhow::Context;
use library::Library;
use raw::{PgServer, Raw};
use report::{BaselineResult, LibraryReport, ScenarioResult, UmaDbLog};
use rounds::{first_ratio, first_umadb_ratio, median_round, median_round_with, KeptRound};
use scenarios::{Bench, Boundaries};
use server::{ServerProcess, Storage};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The error text of a run stopped by Ctrl-C.
const INTERRUPTED: &str = "interrupted";

/// How long the server sits idle after start-up before its idle RSS is read.
const IDLE_SETTLE: Duration = Duration::from_secs(1);

/// Runs the benchmark described by `opts`, prints the table to stdout, writes the JSON file
/// if asked, and returns the report. Fails after printing when a backend's run failed.
pub async fn run(opts: BenchOptions) -> anyhow::Result<Report> {
    let plan = Plan::from_options(&opts)?;
    let pg = PgServer::parse(&opts.pg)?;
    let backends = choose_backends(&opts, &pg).await?;
    let mut report = Report {
        started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        plan: plan.clone(),
        backends: Vec::new(),
    };
    // Installed once, before any measurement, so that pip's time falls outside every scenario.
    let umadb_bin = match opts.baseline {
        Some(options::ExternalBaseline::Umadb) => Some(umadb_bin(&opts).await?),
        None => None,
    };
    let mut failures = Vec::new();
    for backend in backends {
        eprintln!("== benchmarking the {} backend", backend.name());
        let mut r = run_backend(backend, &opts, &plan, &pg, umadb_bin.as_deref()).await;
        r.finish();
        let interrupted = r.error.as_deref() == Some(INTERRUPTED);
        if let Some(e) = &r.error {
            eprintln!("[{}] stopped early: {e}", backend.name());
            failures.push(format!("{}: {e}", backend.name()));
        }
        report.backends.push(r);
        if interrupted {
            break;
        }
    }
    println!("{}", report.render());
    if let Some(path) = &opts.json {
        std::fs::write(path, report.to_json()?)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if !failures.is_empty() {
        anyhow::bail!("the benchmark did not complete: {}", failures.join("; "));
    }
    Ok(report)
}

/// Resolves on Ctrl-C or SIGTERM: either way the run is dropped, so its children (our server,
/// UmaDB) are killed with it (`kill_on_drop`) instead of outliving the bench.
async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Resolves `--backend` (and its default: both when PostgreSQL is reachable).
async fn choose_backends(opts: &BenchOptions, pg: &PgServer) -> anyhow::Result<Vec<Backend>> {
    if opts.addr.is_some() {
        return Ok(vec![match opts.backend {
            Some(BackendChoice::Embedded) => Backend::Embedded,
            Some(BackendChoice::Postgres) => Backend::Postgres,
            Some(BackendChoice::Both) => {
                anyhow::bail!("--backend both needs two servers: omit --addr or pick one")
            }
            None => Backend::Remote,
        }]);
    }
    Ok(match opts.backend {
        Some(BackendChoice::Embedded) => vec![Backend::Embedded],
        Some(BackendChoice::Postgres) => vec![Backend::Postgres],
        Some(BackendChoice::Both) => vec![Backend::Embedded, Backend::Postgres],
        None => {
            if pg.reachable().await {
                vec![Backend::Embedded, Backend::Postgres]
            } else {
                eprintln!(
                    "PostgreSQL ({}) is not reachable: benchmarking the embedded backend only",
                    pg.describe()
                );
                vec![Backend::Embedded]
            }
        }
    })
}

/// Returns the executable to start as the server.
fn server_bin(opts: &BenchOptions) -> anyhow::Result<PathBuf> {
    match &opts.server_bin {
        Some(p) => Ok(p.clone()),
        None => std::env::current_exe().context("locating the current executable"),
    }
}

/// Returns the UmaDB server to start: `--umadb-bin`, else the one of `--umadb-venv` (or the
/// default virtualenv), installed from PyPI when missing.
async fn umadb_bin(opts: &BenchOptions) -> anyhow::Result<PathBuf> {
    if let Some(bin) = &opts.umadb_bin {
        return Ok(bin.clone());
    }
    let venv = opts.umadb_venv.clone().unwrap_or_else(umadb::default_venv);
    umadb::install(&venv).await
}

/// Benchmarks one backend: the server scenarios, then library mode; failures end up in the
/// report's `error`, with what was measured before them kept.
async fn run_backend(
    backend: Backend,
    opts: &BenchOptions,
    plan: &Plan,
    pg: &PgServer,
    umadb_bin: Option<&Path>,
) -> BackendReport {
    let addr = opts.addr.clone().unwrap_or_default();
    let mut report = BackendReport::new(backend, addr, opts.server_pid);
    if plan.wants_server() {
        run_server(&mut report, backend, opts, plan, pg, umadb_bin).await;
    }
    if report.error.is_none() && plan.wants_library() {
        if opts.addr.is_some() {
            eprintln!(
                "[{}] library mode skipped: it opens a store of its own, and --addr measures a \
                 running server",
                backend.name()
            );
        } else {
            run_library(&mut report, backend, plan, pg).await;
        }
    }
    report
}

/// Runs the server scenarios of one backend.
async fn run_server(
    report: &mut BackendReport,
    backend: Backend,
    opts: &BenchOptions,
    plan: &Plan,
    pg: &PgServer,
    umadb_bin: Option<&Path>,
) {
    // PostgreSQL gets a fresh database (for the started server and for the baseline).
    let db = if backend == Backend::Postgres {
        match pg.create_database().await {
            Ok(name) => Some(name),
            Err(e) => {
                report.error = Some(format!("{e:#}"));
                return;
            }
        }
    } else {
        None
    };
    // Ctrl-C or SIGTERM drops the run (killing the server child, see `kill_on_drop`) but still
    // drops the database below and prints what was measured so far.
    let outcome = tokio::select! {
        r = run_in(report, backend, opts, plan, pg, db.as_deref(), umadb_bin) => r,
        _ = interrupted() => Err(anyhow::anyhow!(INTERRUPTED)),
    };
    if let Err(e) = outcome {
        report.error = Some(format!("{e:#}"));
    }
    if let Some(name) = db {
        if let Err(e) = pg.drop_database(&name).await {
            eprintln!("could not drop database {name}: {e:#}");
        }
    }
}

/// Runs the library-mode scenarios of one backend on a store opened in this process: SQLite in
/// a temporary directory, or PostgreSQL in a fresh database of its own, dropped afterwards.
async fn run_library(report: &mut BackendReport, backend: Backend, plan: &Plan, pg: &PgServer) {
    let db = if backend == Backend::Postgres {
        match pg.create_database().await {
            Ok(name) => Some(name),
            Err(e) => {
                report.error = Some(format!("library mode: {e:#}"));
                return;
            }
        }
    } else {
        None
    };
    eprintln!(
        "[{}] library mode: opening the store in-process",
        backend.name()
    );
    let mut results = None;
    let run = async {
        let library = match &db {
            Some(name) => Library::postgres(&pg.storage(name), plan).await?,
            None => Library::sqlite(plan).await?,
        };
        let library_report = results.insert(LibraryReport::new(library.describe()));
        library.run(library_report).await
    };
    let outcome = tokio::select! {
        r = run => r,
        _ = interrupted() => Err(anyhow::anyhow!(INTERRUPTED)),
    };
    report.library = results;
    if let Err(e) = outcome {
        report.error = Some(match e.to_string().as_str() {
            INTERRUPTED => INTERRUPTED.to_owned(),
            _ => format!("library mode: {e:#}"),
        });
    }
    if let Some(name) = db {
        if let Err(e) = pg.drop_database(&name).await {
            eprintln!("could not drop database {name}: {e:#}");
        }
    }
}

async fn run_in(
    report: &mut BackendReport,
    backend: Backend,
    opts: &BenchOptions,
    plan: &Plan,
    pg: &PgServer,
    db: Option<&str>,
    umadb_bin: Option<&Path>,
) -> anyhow::Result<()> {
    let boundaries = Boundaries::new(&opts.boundary_prefix);
    let mut server = None;
    let mut second_node = None;
    let mut spawn = None;
    if opts.addr.is_none() {
        let storage = match db {
            Some(name) => pg.storage(name),
            None => Storage::Embedded,
        };
        let bin = server_bin(opts)?;
        eprintln!("[{}] starting {} serve", backend.name(), bin.display());
        let started = ServerProcess::start(&bin, &storage, &boundaries.all()).await?;
        report.addr = started.endpoint();
        report.server_pid = Some(started.pid());
        server = Some(started);
        // Only PostgreSQL lets two servers share one store.
        if db.is_some() {
            second_node = Some(SecondNode {
                bin: bin.clone(),
                storage: storage.clone(),
            });
        }
        spawn = Some(SecondNode { bin, storage });
    }
    // With PostgreSQL, each raw baseline runs right after the scenario it is compared with,
    // so that both see the same (noisy) machine.
    let raw = match db {
        Some(name) => {
            let (raw, settings) = Raw::setup(pg, name).await?;
            report.pg_settings = Some(settings);
            Some(raw)
        }
        None => None,
    };
    // UmaDB gets a fresh database of its own beside each backend, as our server does.
    let mut uma = match umadb_bin {
        Some(bin) => {
            eprintln!("[{}] starting UmaDB ({})", backend.name(), bin.display());
            let server = umadb::UmaDbServer::start(bin).await?;
            let label = format!("{}/umadb", backend.name());
            match umadb::UmaBench::connect(server.endpoint(), label, plan.clone()).await {
                Ok(bench) => Some(UmaSide { server, bench }),
                Err(e) => {
                    server.stop().await;
                    return Err(e);
                }
            }
        }
        None => None,
    };
    let mut result = scenarios(
        report,
        backend,
        opts,
        plan,
        &boundaries,
        server.as_mut(),
        second_node.as_ref(),
        spawn.as_ref(),
        raw.as_ref(),
        uma.as_mut(),
    )
    .await;
    if let Some(s) = server {
        s.stop().await;
    }
    if let Some(side) = uma {
        if result.is_ok() {
            result = side.check_log(report).await;
        }
        side.server.stop().await;
    }
    result
}

/// UmaDB beside one backend's server (`--baseline umadb`): the process and the bench driving it.
struct UmaSide {
    server: umadb::UmaDbServer,
    bench: umadb::UmaBench,
}

impl UmaSide {
    /// Records UmaDB's head against the events it acknowledged, and fails when they differ:
    /// its figures only count if its log holds every event it acknowledged.
    async fn check_log(&self, report: &mut BackendReport) -> anyhow::Result<()> {
        let head = self.bench.head().await.context("reading UmaDB's head")?;
        let acknowledged = self.bench.acknowledged();
        report.umadb_log = Some(UmaDbLog { head, acknowledged });
        anyhow::ensure!(
            head == acknowledged,
            "UmaDB's head is {head} but it acknowledged {acknowledged} events"
        );
        Ok(())
    }
}

/// Records the UmaDB figures of a kept round.
fn keep_umadb<const N: usize>(report: &mut BackendReport, kept: [Option<BaselineResult>; N]) {
    report.umadb.extend(kept.into_iter().flatten());
}

/// How to start a second server on the same store (PostgreSQL, when the bench starts them).
struct SecondNode {
    bin: PathBuf,
    storage: Storage,
}

#[allow(clippy::too_many_arguments)]
async fn scenarios(
    report: &mut BackendReport,
    backend: Backend,
    opts: &BenchOptions,
    plan: &Plan,
    boundaries: &Boundaries,
    mut server: Option<&mut ServerProcess>,
    second_node: Option<&SecondNode>,
    spawn: Option<&SecondNode>,
    raw: Option<&Raw>,
    mut uma: Option<&mut UmaSide>,
) -> anyhow::Result<()> {
    let pid = report.server_pid;
    let label = format!("{}/raw", backend.name());
    if let Some(pid) = pid {
        tokio::time::sleep(IDLE_SETTLE).await;
        report.idle_rss_bytes = rss::read(pid).map(|m| m.rss);
    }
    let mut bench = Bench::connect(
        backend,
        report.addr.clone(),
        opts.user.clone(),
        opts.password.clone(),
        pid,
        plan.clone(),
        boundaries.clone(),
    )
    .await?;
    let mut peak = report.idle_rss_bytes;
    let mut record = |report: &mut BackendReport, r: ScenarioResult| {
        peak = peak.max(r.peak_rss_bytes);
        report.peak_rss_bytes = peak;
        report.scenarios.push(r);
    };
    let mut alive = || server.as_mut().map_or(Ok(()), |s| s.check_alive());
    // Compared with a baseline, a scenario runs in alternating rounds (ours, raw, UmaDB, ours,
    // raw, UmaDB...) and the median round is kept (by the ratio to raw, else to UmaDB): a slow
    // spell of the machine then hits every side.
    let rounds = if raw.is_some() || uma.is_some() {
        plan.rounds.max(1)
    } else {
        1
    };
    let by_raw_then_umadb = |r: &[Option<ScenarioResult>; 2],
                             b: &Option<BaselineResult>,
                             u: &[Option<BaselineResult>; 2]| {
        first_ratio(r, b).or_else(|| first_umadb_ratio(r, u))
    };
    let slice = plan.duration / rounds;
    for &clients in &plan.clients {
        let (uncond, cond) = (
            plan.wants(&format!("single_uncond_c{clients}")),
            plan.wants(&format!("single_cond_c{clients}")),
        );
        if !uncond && !cond {
            continue;
        }
        let mut runs: Vec<[Option<ScenarioResult>; 2]> = Vec::new();
        let mut baselines: Vec<Option<BaselineResult>> = Vec::new();
        let mut umas: Vec<[Option<BaselineResult>; 2]> = Vec::new();
        for _ in 0..rounds {
            let u = match uncond {
                true => Some(bench.single_saves(clients, false, slice).await?),
                false => None,
            };
            baselines.push(match raw {
                Some(raw) => Some(raw.single(&label, clients, slice, false).await?),
                None => None,
            });
            let c = match cond {
                true => Some(bench.single_saves(clients, true, slice).await?),
                false => None,
            };
            runs.push([u, c]);
            alive()?;
            if let Some(side) = uma.as_deref_mut() {
                let mut round = [None, None];
                for (slot, (wanted, conditional)) in
                    round.iter_mut().zip([(uncond, false), (cond, true)])
                {
                    if wanted {
                        let r = side.bench.single_saves(clients, conditional, slice);
                        *slot = Some(r.await?);
                    }
                }
                umas.push(round);
                side.server.check_alive()?;
            }
        }
        let kept = median_round_with(runs, baselines, umas, by_raw_then_umadb);
        for r in kept.ours.into_iter().flatten() {
            record(report, r);
        }
        report.baselines.extend(kept.raw);
        keep_umadb(report, kept.umadb);
    }
    if plan.wants_observed() {
        match spawn {
            Some(node) => {
                let observed = observed::Observed {
                    bin: &node.bin,
                    storage: &node.storage,
                    otel_endpoint: opts.otel_endpoint.as_deref(),
                };
                let (result, baseline) = observed::compare(
                    &mut bench,
                    observed,
                    backend,
                    &opts.user,
                    &opts.password,
                    plan,
                    boundaries,
                    plan.rounds,
                    plan.duration / plan.rounds.max(1),
                )
                .await?;
                record(report, result);
                report.baselines.push(baseline);
                alive()?;
            }
            None => eprintln!(
                "[{}] {} skipped: it needs servers the bench starts itself",
                backend.name(),
                observed::ID
            ),
        }
    }
    for &size in &plan.batch_sizes {
        if !plan.wants(&format!("batch_{size}")) {
            continue;
        }
        let mut runs: Vec<[Option<ScenarioResult>; 1]> = Vec::new();
        let mut baselines: Vec<Option<BaselineResult>> = Vec::new();
        for _ in 0..rounds {
            runs.push([Some(bench.batches(size, slice).await?)]);
            baselines.push(match raw {
                Some(raw) => Some(raw.batch(&label, size, slice, plan.min_batches).await?),
                None => None,
            });
            alive()?;
        }
        let (kept, baseline) = median_round(runs, baselines, first_ratio);
        for r in kept.into_iter().flatten() {
            record(report, r);
        }
        report.baselines.extend(baseline);
        // For reference only (no ratio, no target): what binary COPY makes of the same rows.
        if let Some(raw) = raw {
            let b = raw.copy_batch(&label, size, slice, plan.min_batches);
            report.baselines.push(b.await?);
        }
    }
    // Batches by several clients at once (`batch_c4_*`): rows of the UmaDB comparison.
    for &size in &plan.concurrent_batch_sizes {
        let id = plan.concurrent_batch_id(size);
        if !plan.wants_concurrent_batch(&id) {
            continue;
        }
        let clients = plan.batch_clients;
        let mut runs: Vec<[Option<ScenarioResult>; 1]> = Vec::new();
        let mut umas: Vec<[Option<BaselineResult>; 1]> = Vec::new();
        for _ in 0..rounds {
            runs.push([Some(bench.concurrent_batches(clients, size, slice).await?)]);
            alive()?;
            if let Some(side) = uma.as_deref_mut() {
                umas.push([Some(side.bench.batches(clients, size, slice).await?)]);
                side.server.check_alive()?;
            }
        }
        let no_raw = vec![None; runs.len()];
        let kept = median_round_with(runs, no_raw, umas, |r, _, u| first_umadb_ratio(r, u));
        let KeptRound { ours, umadb, .. } = kept;
        for r in ours.into_iter().flatten() {
            record(report, r);
        }
        keep_umadb(report, umadb);
    }
    if plan.wants_preload() {
        record(report, bench.preload().await?);
        if let Some(raw) = raw {
            let b = raw.preload(&label, plan.preload, plan.preload_batch);
            report.baselines.push(b.await?);
        }
        if let Some(side) = uma.as_deref_mut() {
            if plan.wants("get_events") || plan.wants("catch_up") {
                report.umadb.push(side.bench.preload().await?);
                side.server.check_alive()?;
            }
        }
    }
    let (big_uncond, big_cond) = (plan.wants("big_uncond"), plan.wants("big_cond"));
    if big_uncond || big_cond {
        // Rounds here too, kept by the median conditional/unconditional p50 ratio (a target).
        let big_rounds = if big_uncond && big_cond { rounds } else { 1 };
        let big_slice = plan.duration / big_rounds;
        let mut runs: Vec<[Option<ScenarioResult>; 2]> = Vec::new();
        let mut baselines: Vec<Option<BaselineResult>> = Vec::new();
        for _ in 0..big_rounds {
            let u = match big_uncond {
                true => Some(bench.big_saves(false, big_slice).await?),
                false => None,
            };
            baselines.push(match raw {
                Some(raw) => Some(raw.single(&label, 1, big_slice, true).await?),
                None => None,
            });
            let c = match big_cond {
                true => Some(bench.big_saves(true, big_slice).await?),
                false => None,
            };
            runs.push([u, c]);
            alive()?;
        }
        let (kept, baseline) = median_round(runs, baselines, |[u, c], _| {
            let p50 = |s: &Option<ScenarioResult>| s.as_ref()?.latency.map(|l| l.p50_ms);
            Some(p50(c)? / p50(u)?)
        });
        for r in kept.into_iter().flatten() {
            record(report, r);
        }
        report.baselines.extend(baseline);
    }
    alive()?;
    if plan.wants("get_events") {
        record(report, bench.get_events().await?);
    }
    if let Some(raw) = raw.filter(|_| plan.wants("get_events") || plan.wants("catch_up")) {
        let b = raw.paged_read(&label, plan.preload, plan.page_size).await?;
        report.baselines.push(b);
    }
    match uma {
        // Our streamed read of the whole preloaded log against UmaDB's, in alternating rounds.
        Some(side) if plan.wants("catch_up") => {
            let mut runs: Vec<[Option<ScenarioResult>; 1]> = Vec::new();
            let mut umas: Vec<[Option<BaselineResult>; 1]> = Vec::new();
            for _ in 0..rounds {
                runs.push([Some(bench.catch_up().await?)]);
                umas.push([Some(side.bench.read_all().await?)]);
                side.server.check_alive()?;
            }
            let no_raw = vec![None; runs.len()];
            let kept = median_round_with(runs, no_raw, umas, |r, _, u| first_umadb_ratio(r, u));
            for r in kept.ours.into_iter().flatten() {
                record(report, r);
            }
            keep_umadb(report, kept.umadb);
        }
        Some(side) if plan.wants("get_events") => {
            report.umadb.push(side.bench.read_all().await?);
        }
        _ if plan.wants("catch_up") => record(report, bench.catch_up().await?),
        _ => {}
    }
    alive()?;
    if plan.wants("commit_to_subscriber") {
        record(report, bench.commit_to_subscriber().await?);
        alive()?;
    }
    if plan.wants("commit_to_subscriber_two_nodes") {
        match second_node {
            Some(node) => {
                eprintln!(
                    "[{}] starting a second {} serve on the same database",
                    backend.name(),
                    node.bin.display()
                );
                let mut other =
                    ServerProcess::start(&node.bin, &node.storage, &boundaries.all()).await?;
                let result = bench
                    .commit_to_subscriber_two_nodes(&other.endpoint())
                    .await;
                let other_alive = other.check_alive();
                other.stop().await;
                record(report, result?);
                other_alive.context("the second node")?;
                alive()?;
            }
            None => eprintln!(
                "[{}] commit_to_subscriber_two_nodes skipped: it needs PostgreSQL and servers \
                 the bench starts itself",
                backend.name()
            ),
        }
    }
    Ok(())
}
