//! The figures of a run (serialized as the JSON report), their pairing with the raw PostgreSQL
//! baseline, the targets they are checked against, and the text table printed at the end.
//!
//! This file holds the report's data types; the targets and the baseline pairing are in
//! `targets`, the text table and the JSON in `render`, library mode's figures and their
//! section of the table in `library`, and the number formats in `format`.

mod format;
mod library;
mod render;
mod targets;

#[cfg(test)]
mod fixtures;

pub use format::{fmt_duration, mib, ser_secs, short, thousands};
pub use library::LibraryReport;
pub use targets::{baseline_for, evaluate_targets, umadb_for};

use crate::options::{Backend, Plan};
use crate::stats::{ratio, LatencySummary};
use serde::Serialize;

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// When the run started (RFC 3339, UTC).
    pub started_at: String,
    /// CPU cores the machine offers (figures only compare on like machines).
    pub cores: usize,
    /// Sizes and durations used.
    pub plan: Plan,
    /// One entry per backend benchmarked.
    pub backends: Vec<BackendReport>,
}

/// The figures of one backend.
#[derive(Debug, Clone, Serialize)]
pub struct BackendReport {
    /// Which backend.
    pub backend: Backend,
    /// The gRPC address benchmarked.
    pub addr: String,
    /// The server's process id, when known (RSS is only read then).
    pub server_pid: Option<u32>,
    /// The server's RSS after start-up, before any scenario, in bytes.
    pub idle_rss_bytes: Option<u64>,
    /// The server's peak RSS over the whole run (`VmHWM` at the end), in bytes.
    pub peak_rss_bytes: Option<u64>,
    /// PostgreSQL's durability settings, so a reader knows the baseline's terms.
    pub pg_settings: Option<String>,
    /// Our scenarios, in the order they ran.
    pub scenarios: Vec<ScenarioResult>,
    /// The raw PostgreSQL measurements (PostgreSQL only).
    pub baselines: Vec<BaselineResult>,
    /// The targets and whether they are met.
    pub targets: Vec<TargetCheck>,
    /// The library-mode scenarios, run in the bench's process on a store of this backend
    /// opened for them (`None` when they did not run).
    pub library: Option<LibraryReport>,
    /// UmaDB's figures measured beside this backend's (`--baseline umadb`), named
    /// `umadb_<our id>`; the rounds kept are those of our scenarios they are paired with.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub umadb: Vec<BaselineResult>,
    /// UmaDB's head at the end of the run and the events it acknowledged during it (every
    /// round's): equal when UmaDB's log really holds what it acknowledged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub umadb_log: Option<UmaDbLog>,
    /// Why the run of this backend stopped early, if it did.
    pub error: Option<String>,
}

/// What UmaDB's log held at the end of a run, against what it acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct UmaDbLog {
    /// The position of its last event (positions start at 1 and have no gaps).
    pub head: u64,
    /// Events whose append it acknowledged.
    pub acknowledged: u64,
}

impl BackendReport {
    /// Creates an empty report for `backend` at `addr`.
    pub fn new(backend: Backend, addr: String, server_pid: Option<u32>) -> Self {
        Self {
            backend,
            addr,
            server_pid,
            idle_rss_bytes: None,
            peak_rss_bytes: None,
            pg_settings: None,
            scenarios: Vec::new(),
            baselines: Vec::new(),
            targets: Vec::new(),
            library: None,
            umadb: Vec::new(),
            umadb_log: None,
            error: None,
        }
    }

    /// Pairs each scenario with its baseline (by [`baseline_for`]) and evaluates the targets.
    pub fn finish(&mut self) {
        for s in &mut self.scenarios {
            let Some(id) = baseline_for(&s.id) else {
                continue;
            };
            if let Some(b) = self.baselines.iter().find(|b| b.id == id) {
                s.baseline = Some(BaselineRef {
                    id: b.id.clone(),
                    events_per_s: b.events_per_s,
                    ratio: ratio(s.events_per_s, b.events_per_s),
                });
            }
        }
        for s in &mut self.scenarios {
            let Some(id) = umadb_for(&s.id) else {
                continue;
            };
            if let Some(b) = self.umadb.iter().find(|b| b.id == id) {
                s.umadb = Some(BaselineRef {
                    id: b.id.clone(),
                    events_per_s: b.events_per_s,
                    ratio: ratio(s.events_per_s, b.events_per_s),
                });
            }
        }
        // Without a server (library mode only) there is nothing to judge.
        if !(self.addr.is_empty() && self.scenarios.is_empty()) {
            self.targets = evaluate_targets(self);
        }
        if let Some(library) = &mut self.library {
            library.finish();
        }
    }

    /// Returns the scenario `id`, if it ran.
    pub fn scenario(&self, id: &str) -> Option<&ScenarioResult> {
        self.scenarios.iter().find(|s| s.id == id)
    }
}

/// The figures of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    /// Stable identifier (`single_cond_c16`, `batch_1000`, `catch_up`, ...).
    pub id: String,
    /// What the scenario does, in words.
    pub description: String,
    /// Events written or read.
    pub events: u64,
    /// Requests (saves, pages) sent.
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// The first failure, to explain `errors`.
    pub first_error: Option<String>,
    /// Measured time, in seconds.
    pub elapsed_s: f64,
    /// Throughput.
    pub events_per_s: f64,
    /// Per-request latency (per-event delivery latency for `commit_to_subscriber`).
    pub latency: Option<LatencySummary>,
    /// The server's peak RSS during the scenario, in bytes.
    pub peak_rss_bytes: Option<u64>,
    /// The raw PostgreSQL figure this one is compared with.
    pub baseline: Option<BaselineRef>,
    /// The ratio to the baseline in each alternating round, in the order run (empty when the
    /// scenario ran once); the figures above are those of the median round.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub round_ratios: Vec<f64>,
    /// UmaDB's figure this one is compared with (`--baseline umadb`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub umadb: Option<BaselineRef>,
    /// The ratio to UmaDB's figure in each alternating round, in the order run (empty when
    /// the scenario ran once or without UmaDB).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub umadb_round_ratios: Vec<f64>,
}

impl ScenarioResult {
    /// Creates a result with throughput computed from `events` and `elapsed`.
    pub fn new(id: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            description: description.into(),
            events: 0,
            requests: 0,
            errors: 0,
            first_error: None,
            elapsed_s: 0.0,
            events_per_s: 0.0,
            latency: None,
            peak_rss_bytes: None,
            baseline: None,
            round_ratios: Vec::new(),
            umadb: None,
            umadb_round_ratios: Vec::new(),
        }
    }
}

/// A baseline figure attached to a scenario.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineRef {
    /// The baseline's identifier in [`BackendReport::baselines`].
    pub id: String,
    /// Its throughput.
    pub events_per_s: f64,
    /// Our throughput divided by it.
    pub ratio: Option<f64>,
}

/// One raw PostgreSQL measurement, or one of UmaDB's figures.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineResult {
    /// Stable identifier (`raw_single_c64`, `raw_batch_1000`, `raw_paged_read`, ...).
    pub id: String,
    /// What was run, in words.
    pub description: String,
    /// Connections used at once.
    pub connections: usize,
    /// Rows inserted or read.
    pub rows: u64,
    /// Measured time, in seconds.
    pub elapsed_s: f64,
    /// Rows per second.
    pub events_per_s: f64,
    /// Per-statement latency.
    pub latency: Option<LatencySummary>,
}

/// One target of the issue, checked against this run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    /// What is required, in words.
    pub description: String,
    /// The figure it is judged on (a ratio, milliseconds, MiB or events/s).
    pub figure: Option<f64>,
    /// The bound, in words (`>= 0.70`).
    pub goal: String,
    /// Whether it is met; `None` when the figure is missing.
    pub met: Option<bool>,
}
