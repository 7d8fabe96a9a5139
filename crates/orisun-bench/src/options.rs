//! The command-line options of `orisun bench` and the sizes each `--scale` stands for.

use clap::{Args, ValueEnum};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// Options of `orisun bench` (a clap `Args` struct, so the CLI embeds it as a subcommand).
#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:\n  \
    orisun bench                       # quick run, embedded + PostgreSQL when reachable\n  \
    orisun bench --scale full --json bench.json\n  \
    orisun bench --backend postgres --pg 'host=127.0.0.1 port=5432 user=postgres'\n  \
    orisun bench --addr http://127.0.0.1:5005 --server-pid 1234")]
pub struct BenchOptions {
    /// Backend of the server the bench starts. Default: both when PostgreSQL (`--pg`) is
    /// reachable, else embedded only.
    #[arg(long, value_enum)]
    pub backend: Option<BackendChoice>,

    /// Benchmark a running server at this address instead of starting one (its boundaries
    /// must exist: see the error message for the ORISUN_BOUNDARIES value to set).
    #[arg(long)]
    pub addr: Option<String>,

    /// Process id of the server given with `--addr`, to sample its memory (else RSS is n/a).
    #[arg(long, requires = "addr")]
    pub server_pid: Option<u32>,

    /// PostgreSQL connection (libpq key=value form) used both by the server under test and
    /// by the raw baseline; the bench creates and drops its own database on that server.
    #[arg(
        long,
        env = "ORISUN_BENCH_PG",
        default_value = "host=127.0.0.1 port=5432 user=postgres"
    )]
    pub pg: String,

    /// Sizes and durations: smoke (seconds, for tests), quick (about 1–2 minutes per
    /// backend), full (the sizes of the published targets: 1,000,000-event boundary).
    #[arg(long, value_enum, default_value_t = Scale::Quick)]
    pub scale: Scale,

    /// Also write every figure as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// Duration of each throughput scenario (e.g. 500ms, 10s, 1m), overriding the scale's.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Rounds of the scenarios compared with a raw baseline: each round runs our scenario and
    /// its baseline one after the other for `duration / rounds`, and the table shows the round
    /// whose ratio is the median, so that a slow spell of a shared machine hits both sides.
    /// Default: 3 (1 at the smoke scale).
    #[arg(long)]
    pub rounds: Option<u32>,

    /// Concurrent clients of the single-event scenarios, overriding `1,16,64`.
    #[arg(long, value_delimiter = ',')]
    pub clients: Option<Vec<usize>>,

    /// Events in the large boundary (preload), overriding the scale's.
    #[arg(long)]
    pub preload: Option<u64>,

    /// Run only the scenarios whose id starts with one of these (e.g. `batch,single_uncond`;
    /// `lib` for library mode alone, which starts no server); the preload and the baselines
    /// they need run too.
    #[arg(long, value_delimiter = ',')]
    pub only: Option<Vec<String>>,

    /// The `orisun` executable to start as `<bin> serve`. Default: this executable.
    #[arg(long)]
    pub server_bin: Option<PathBuf>,

    /// Username the clients authenticate with (Basic once, then the `x-auth-token`).
    #[arg(long, default_value = "admin")]
    pub user: String,

    /// Password the clients authenticate with.
    #[arg(long, default_value = "changeit", hide_default_value = true)]
    pub password: String,

    /// OTLP/gRPC endpoint of the server with tracing on in `observed_single_uncond_c16`
    /// (default: a closed loopback port, as with a collector down).
    #[arg(long)]
    pub otel_endpoint: Option<String>,

    /// Prefix of the boundaries the bench writes to (`<prefix>_single`, `<prefix>_big`, ...).
    #[arg(long, default_value = "bench")]
    pub boundary_prefix: String,

    /// Also measure another event store in the same run: `umadb` starts UmaDB 0.7.8 (from its
    /// PyPI wheel, installed into `--umadb-venv` when missing) on a free loopback port and runs
    /// the single-event, concurrent, 4-client batch and whole-log read scenarios against it, in
    /// alternating rounds with ours; each of our figures then comes with its ratio to UmaDB's.
    #[arg(long, value_enum)]
    pub baseline: Option<ExternalBaseline>,

    /// The virtualenv UmaDB is installed into (created with `python3 -m venv` and `pip install
    /// umadb==0.7.8` when it lacks that version). Default: `$XDG_CACHE_HOME/orisun-bench/umadb-0.7.8`
    /// (`~/.cache/...`).
    #[arg(long, env = "ORISUN_BENCH_UMADB_VENV")]
    pub umadb_venv: Option<PathBuf>,

    /// An `umadb` server executable to start instead of the one in `--umadb-venv`.
    #[arg(long)]
    pub umadb_bin: Option<PathBuf>,
}

/// Another event store measured beside ours (`--baseline`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExternalBaseline {
    /// UmaDB 0.7.8, a DCB event store in Rust (gRPC API `umadb.v1.DCB`).
    Umadb,
}

/// Which backends to benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// The embedded SQLite backend (a fresh data directory).
    Embedded,
    /// PostgreSQL (a fresh database), with the raw baseline.
    Postgres,
    /// Both, one after the other.
    Both,
}

/// One backend under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The embedded SQLite backend.
    Embedded,
    /// PostgreSQL.
    Postgres,
    /// A running server of unknown backend (`--addr` without `--backend`).
    Remote,
}

impl Backend {
    /// Returns the name used in the table and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Embedded => "embedded",
            Backend::Postgres => "postgres",
            Backend::Remote => "remote",
        }
    }
}

/// How big a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// Seconds: tiny sizes, for the smoke test.
    Smoke,
    /// About 1–2 minutes per backend: 100,000-event boundary, 5 s scenarios.
    Quick,
    /// The sizes: 1,000,000-event boundary, 10 s scenarios.
    Full,
}

impl Scale {
    /// Returns the name used on the command line (`smoke`, `quick`, `full`).
    pub fn name(self) -> &'static str {
        match self {
            Scale::Smoke => "smoke",
            Scale::Quick => "quick",
            Scale::Full => "full",
        }
    }
}

/// The sizes and durations of one run, resolved from the scale and the overrides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// The scale the plan came from.
    pub scale: Scale,
    /// Duration of each throughput scenario.
    #[serde(serialize_with = "crate::report::ser_secs")]
    pub duration: Duration,
    /// Duration of the commit-to-subscriber latency scenarios (one node and two).
    #[serde(serialize_with = "crate::report::ser_secs")]
    pub latency_duration: Duration,
    /// Concurrent clients of the single-event scenarios.
    pub clients: Vec<usize>,
    /// Events per request of the batch scenarios.
    pub batch_sizes: Vec<usize>,
    /// Fewest batches a batch scenario sends, however long they take.
    pub min_batches: u64,
    /// Alternating rounds of each scenario compared with a raw baseline (see `--rounds`).
    pub rounds: u32,
    /// Events in the large boundary (conditional saves, reads, catch-up).
    pub preload: u64,
    /// Events per request while preloading.
    pub preload_batch: usize,
    /// Events per GetEvents page (and rows per page of the raw paged SELECT).
    pub page_size: u32,
    /// Rate of the commit-to-subscriber writer, in events per second.
    pub latency_rate: u32,
    /// Events library mode's partitioned projection handles: the last ones of its preload
    /// (all of them when it holds fewer), so that each worker count and round takes seconds
    /// of 1 ms sleeps, not minutes.
    pub partition_events: u64,
    /// Prefixes of the scenario ids to run (empty: all).
    pub only: Vec<String>,
    /// Whether UmaDB runs beside ours (`--baseline umadb`).
    pub umadb: bool,
    /// Clients of the concurrent batch scenarios (`batch_c4_*`).
    pub batch_clients: usize,
    /// Events per request of the concurrent batch scenarios.
    pub concurrent_batch_sizes: Vec<usize>,
}

impl Plan {
    /// Resolves the plan of `options`.
    pub fn from_options(options: &BenchOptions) -> anyhow::Result<Self> {
        let mut plan = Self::for_scale(options.scale);
        if let Some(d) = options.duration {
            anyhow::ensure!(!d.is_zero(), "--duration must be positive");
            plan.duration = d;
            plan.latency_duration = plan.latency_duration.max(d);
        }
        if let Some(rounds) = options.rounds {
            anyhow::ensure!(
                (1..=20).contains(&rounds),
                "--rounds must be between 1 and 20"
            );
            plan.rounds = rounds;
        }
        if let Some(clients) = &options.clients {
            anyhow::ensure!(
                !clients.is_empty() && clients.iter().all(|&c| (1..=1024).contains(&c)),
                "--clients must list numbers between 1 and 1024"
            );
            plan.clients = clients.clone();
        }
        if let Some(only) = &options.only {
            plan.only = only
                .iter()
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .collect();
        }
        if let Some(n) = options.preload {
            anyhow::ensure!(n > 0, "--preload must be positive");
            plan.preload = n;
        }
        plan.umadb = options.baseline == Some(ExternalBaseline::Umadb);
        Ok(plan)
    }

    /// Returns the default plan of `scale`.
    pub fn for_scale(scale: Scale) -> Self {
        let (duration, latency_duration, preload, min_batches, rounds, partition_events) =
            match scale {
                // Fewer partitioned events than preloaded ones: the test runs the start from
                // a placed checkpoint that the full scale uses.
                Scale::Smoke => (
                    Duration::from_millis(700),
                    Duration::from_secs(1),
                    3_000,
                    1,
                    1,
                    2_000,
                ),
                Scale::Quick => (
                    Duration::from_secs(5),
                    Duration::from_secs(10),
                    100_000,
                    3,
                    3,
                    100_000,
                ),
                Scale::Full => (
                    Duration::from_secs(10),
                    Duration::from_secs(20),
                    1_000_000,
                    3,
                    3,
                    100_000,
                ),
            };
        Self {
            scale,
            duration,
            latency_duration,
            clients: vec![1, 16, 64],
            batch_sizes: vec![100, 1_000, 10_000],
            min_batches,
            rounds,
            preload,
            preload_batch: 10_000,
            page_size: 1_000,
            latency_rate: 1_000,
            partition_events,
            only: Vec::new(),
            umadb: false,
            batch_clients: 4,
            concurrent_batch_sizes: vec![100, 1_000],
        }
    }

    /// Returns the id of the concurrent batch scenario of `size` events per request.
    pub fn concurrent_batch_id(&self, size: usize) -> String {
        format!("batch_c{}_{size}", self.batch_clients)
    }

    /// Returns whether the concurrent batch scenario `id` is to run: with `--baseline umadb`
    /// (they are rows of its comparison) when `--only` allows it, or when named in `--only`
    /// (`batch_c` or longer), as they are not part of the default run.
    pub fn wants_concurrent_batch(&self, id: &str) -> bool {
        (self.umadb && self.wants(id))
            || self
                .only
                .iter()
                .any(|p| p.starts_with("batch_c") && id.starts_with(p.as_str()))
    }

    /// Returns whether scenario `id` is to run (`--only`).
    pub fn wants(&self, id: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| id.starts_with(p.as_str()))
    }

    /// Returns whether any scenario on the preloaded boundary is to run.
    pub fn wants_preload(&self) -> bool {
        [
            "preload",
            "big_uncond",
            "big_cond",
            "get_events",
            "catch_up",
        ]
        .iter()
        .any(|id| self.wants(id))
    }

    /// Returns the ids of the scenarios run against the server.
    pub fn server_scenarios(&self) -> Vec<String> {
        let mut ids = Vec::new();
        for c in &self.clients {
            ids.push(format!("single_uncond_c{c}"));
            ids.push(format!("single_cond_c{c}"));
        }
        ids.extend(self.batch_sizes.iter().map(|b| format!("batch_{b}")));
        ids.extend(
            self.concurrent_batch_sizes
                .iter()
                .map(|&b| self.concurrent_batch_id(b))
                .filter(|id| self.wants_concurrent_batch(id)),
        );
        ids.extend(
            [
                "preload",
                "big_uncond",
                "big_cond",
                "get_events",
                "catch_up",
                "commit_to_subscriber",
                "commit_to_subscriber_two_nodes",
            ]
            .map(str::to_owned),
        );
        ids.push(crate::observed::ID.to_owned());
        ids
    }

    /// Returns whether `observed_single_uncond_c16` is to run: only when named in `--only`
    /// (it starts a second server), e.g. `--only single_uncond_c16,observed`.
    pub fn wants_observed(&self) -> bool {
        self.only
            .iter()
            .any(|p| !p.is_empty() && crate::observed::ID.starts_with(p.as_str()))
    }

    /// Returns whether any scenario against the server is to run (else none is started).
    pub fn wants_server(&self) -> bool {
        self.server_scenarios().iter().any(|id| self.wants(id))
    }

    /// Returns whether any library-mode scenario is to run (ids starting with `lib_`: `--only
    /// lib` selects them all).
    pub fn wants_library(&self) -> bool {
        LIBRARY_SCENARIOS.iter().any(|id| self.wants(id))
    }

    /// Returns the most clients any scenario uses at once.
    pub fn max_clients(&self) -> usize {
        self.clients.iter().copied().max().unwrap_or(1)
    }
}

/// The ids of the library-mode scenarios, in the order they run.
pub const LIBRARY_SCENARIOS: [&str; 7] = [
    "lib_preload",
    "lib_aggregate_read",
    "lib_projection",
    "lib_partitions_1",
    "lib_partitions_2",
    "lib_partitions_4",
    "lib_aggregate_append",
];

/// Parses a duration such as `500ms`, `10s`, `2m` (a bare number means seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 500ms, 10s or 2m"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?} (use ms, s, m or h)"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchOptions,
    }

    fn parse(args: &[&str]) -> Result<BenchOptions, clap::Error> {
        Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied())).map(|c| c.bench)
    }

    #[test]
    fn defaults() {
        let o = parse(&[]).expect("defaults parse");
        assert_eq!(o.backend, None);
        assert_eq!(o.scale, Scale::Quick);
        assert_eq!(o.user, "admin");
        assert_eq!(o.boundary_prefix, "bench");
        let plan = Plan::from_options(&o).expect("plan");
        assert_eq!(plan.clients, [1, 16, 64]);
        assert_eq!(plan.batch_sizes, [100, 1_000, 10_000]);
        assert_eq!(plan.preload, 100_000);
        assert_eq!(plan.max_clients(), 64);
        assert_eq!(plan.rounds, 3);
        assert_eq!(Plan::for_scale(Scale::Smoke).rounds, 1);
        let smoke = Plan::for_scale(Scale::Smoke);
        assert!(smoke.partition_events < smoke.preload);
        assert_eq!(Plan::for_scale(Scale::Full).partition_events, 100_000);
    }

    #[test]
    fn overrides() {
        let o = parse(&[
            "--backend",
            "postgres",
            "--scale",
            "full",
            "--duration",
            "1500ms",
            "--clients",
            "2,8",
            "--json",
            "out.json",
            "--addr",
            "http://127.0.0.1:5005",
            "--server-pid",
            "42",
        ])
        .expect("parses");
        assert_eq!(o.backend, Some(BackendChoice::Postgres));
        assert_eq!(o.server_pid, Some(42));
        assert_eq!(o.json.as_deref(), Some(std::path::Path::new("out.json")));
        let plan = Plan::from_options(&o).expect("plan");
        assert_eq!(plan.preload, 1_000_000);
        assert_eq!(plan.duration, Duration::from_millis(1500));
        assert_eq!(plan.clients, [2, 8]);
    }

    #[test]
    fn rejects_bad_values() {
        assert!(parse(&["--scale", "huge"]).is_err());
        assert!(parse(&["--backend", "mysql"]).is_err());
        assert!(parse(&["--duration", "5y"]).is_err());
        // --server-pid only makes sense with --addr.
        assert!(parse(&["--server-pid", "1"]).is_err());
        let o = parse(&["--only", "batch,single_uncond"]).expect("parses");
        let plan = Plan::from_options(&o).expect("plan");
        assert!(plan.wants("batch_1000") && plan.wants("single_uncond_c64"));
        assert!(!plan.wants("single_cond_c1") && !plan.wants_preload());
        assert!(!plan.wants_library());
        let o = parse(&["--only", "lib"]).expect("parses");
        let plan = Plan::from_options(&o).expect("plan");
        assert!(plan.wants_library() && plan.wants("lib_partitions_4"));
        assert!(!plan.wants_server() && !plan.wants_preload());
        assert!(Plan::for_scale(Scale::Quick).wants_server());
        assert!(Plan::for_scale(Scale::Quick).wants("catch_up"));
        // A prefix selects every scenario it begins: both delivery scenarios here.
        let o = parse(&["--only", "commit_to_subscriber"]).expect("parses");
        let plan = Plan::from_options(&o).expect("plan");
        assert!(plan.wants("commit_to_subscriber_two_nodes") && !plan.wants_preload());
        let o = parse(&["--only", "commit_to_subscriber_two_nodes"]).expect("parses");
        let plan = Plan::from_options(&o).expect("plan");
        assert!(!plan.wants("commit_to_subscriber"));
        let o = parse(&["--clients", "0"]).expect("parses");
        assert!(Plan::from_options(&o).is_err());
        for bad in ["0", "21"] {
            let o = parse(&["--rounds", bad]).expect("parses");
            assert!(Plan::from_options(&o).is_err(), "--rounds {bad}");
        }
        // The 4-client batches run with UmaDB beside, or when named.
        let o = parse(&["--only", "batch"]).expect("parses");
        let plan = Plan::from_options(&o).expect("plan");
        assert!(!plan.wants_concurrent_batch("batch_c4_100"));
        let o = parse(&["--only", "batch_c4_1000"]).expect("parses");
        let plan = Plan::from_options(&o).expect("plan");
        assert!(plan.wants_concurrent_batch("batch_c4_1000") && plan.wants_server());
        assert!(!plan.wants_concurrent_batch("batch_c4_100"));
        let o = parse(&["--baseline", "umadb", "--only", "single,batch"]).expect("parses");
        let plan = Plan::from_options(&o).expect("plan");
        assert!(plan.umadb && plan.wants_concurrent_batch("batch_c4_100"));
        assert!(parse(&["--baseline", "eventstoredb"]).is_err());
        let o = parse(&["--rounds", "5"]).expect("parses");
        assert_eq!(Plan::from_options(&o).expect("plan").rounds, 5);
        assert!(parse(&["--rounds", "-1"]).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
