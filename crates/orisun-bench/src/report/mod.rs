//! The figures of a run (serialized as the JSON report), their pairing with the raw PostgreSQL
//! baseline, the targets they are checked against, and the text table printed at the end.

use crate::options::{Backend, Plan};
use crate::stats::{ratio, LatencySummary};
use serde::{Serialize, Serializer};
use std::fmt::Write as _;
use std::time::Duration;

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
    /// Why the run of this backend stopped early, if it did.
    pub error: Option<String>,
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
        self.targets = evaluate_targets(self);
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

/// One raw PostgreSQL measurement.
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

/// Returns the baseline a scenario is compared with.
pub fn baseline_for(scenario: &str) -> Option<String> {
    if let Some(c) = scenario
        .strip_prefix("single_uncond_c")
        .or_else(|| scenario.strip_prefix("single_cond_c"))
    {
        return Some(format!("raw_single_c{c}"));
    }
    if let Some(b) = scenario.strip_prefix("batch_") {
        return Some(format!("raw_batch_{b}"));
    }
    match scenario {
        "preload" => Some("raw_preload".to_owned()),
        "big_uncond" | "big_cond" => Some("raw_single_big".to_owned()),
        "get_events" | "catch_up" => Some("raw_paged_read".to_owned()),
        _ => None,
    }
}

const MIB: f64 = 1024.0 * 1024.0;

fn at_least(description: &str, figure: Option<f64>, bound: f64, unit: &str) -> TargetCheck {
    TargetCheck {
        description: description.to_owned(),
        figure,
        goal: format!(">= {}{unit}", short(bound)),
        met: figure.map(|f| f >= bound),
    }
}

fn at_most(description: &str, figure: Option<f64>, bound: f64, unit: &str) -> TargetCheck {
    TargetCheck {
        description: description.to_owned(),
        figure,
        goal: format!("<= {}{unit}", short(bound)),
        met: figure.map(|f| f <= bound),
    }
}

/// Returns the targets for this backend, judged on its figures.
pub fn evaluate_targets(r: &BackendReport) -> Vec<TargetCheck> {
    let ratio_of = |id: &str| r.scenario(id).and_then(|s| s.baseline.as_ref()?.ratio);
    let p50 = |id: &str| r.scenario(id).and_then(|s| Some(s.latency?.p50_ms));
    let mut out = Vec::new();
    if r.backend == Backend::Postgres {
        out.push(at_least(
            "single saves, 1 client / raw 1-row commits on 1 connection",
            ratio_of("single_uncond_c1"),
            0.7,
            "",
        ));
        out.push(at_least(
            "single saves, 64 clients / raw 1-row transactions on 64 connections",
            ratio_of("single_uncond_c64"),
            2.0,
            "",
        ));
        for b in ["1000", "10000"] {
            out.push(at_least(
                &format!("batches of {b} / raw multi-row INSERT of {b}"),
                ratio_of(&format!("batch_{b}")),
                0.6,
                "",
            ));
        }
        let cond_vs_uncond = match (p50("big_cond"), p50("big_uncond")) {
            (Some(c), Some(u)) => ratio(c, u),
            _ => None,
        };
        out.push(at_most(
            "conditional save p50 / unconditional p50 on the large boundary",
            cond_vs_uncond,
            1.3,
            "",
        ));
        out.push(at_least(
            "catch-up subscription / raw keyset-paged SELECT",
            ratio_of("catch_up"),
            0.5,
            "",
        ));
    }
    if r.backend == Backend::Embedded {
        out.push(at_least(
            "single saves, 64 clients (events/s)",
            r.scenario("single_uncond_c64").map(|s| s.events_per_s),
            10_000.0,
            " ev/s",
        ));
    }
    out.push(at_most(
        "commit-to-subscriber p99 at 1,000 ev/s (ms)",
        r.scenario("commit_to_subscriber")
            .and_then(|s| Some(s.latency?.p99_ms)),
        20.0,
        " ms",
    ));
    out.push(at_most(
        "server idle RSS (MiB)",
        r.idle_rss_bytes.map(|b| b as f64 / MIB),
        30.0,
        " MiB",
    ));
    out
}

/// Formats a number with thousands separators, rounded to a whole number.
pub fn thousands(value: f64) -> String {
    if !value.is_finite() {
        return "n/a".to_owned();
    }
    let rounded = value.round();
    let digits = format!("{}", rounded.abs() as u64);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if rounded < 0.0 {
        out.insert(0, '-');
    }
    out
}

/// Formats a small figure (milliseconds, ratios) with 2 significant decimals when small.
pub fn short(value: f64) -> String {
    if !value.is_finite() {
        "n/a".to_owned()
    } else if value.abs() < 10.0 {
        format!("{value:.2}")
    } else if value.abs() < 100.0 {
        format!("{value:.1}")
    } else {
        thousands(value)
    }
}

/// Formats bytes as MiB.
pub fn mib(bytes: Option<u64>) -> String {
    bytes.map_or_else(
        || "n/a".to_owned(),
        |b| format!("{:.1} MiB", b as f64 / MIB),
    )
}

fn opt(value: Option<f64>, f: fn(f64) -> String) -> String {
    value.map_or_else(|| "-".to_owned(), f)
}

/// A fixed-width text table: the first column left-aligned, the others right-aligned.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            if i == 0 {
                let _ = write!(text, "{cell:<w$}");
            } else {
                let _ = write!(text, "  {cell:>w$}");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(rule.iter().map(String::as_str).collect());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

impl Report {
    /// Renders the final text table: per backend, the scenarios with their baselines and
    /// ratios, the raw baseline figures, and the targets.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "orisun bench — scale {}, {} per scenario, {} cores, started {}",
            self.plan.scale.name(),
            fmt_duration(self.plan.duration),
            self.cores,
            self.started_at
        );
        for b in &self.backends {
            out.push('\n');
            let _ = writeln!(
                out,
                "== {} ({}{}) idle RSS {}, peak RSS {}{}",
                b.backend.name(),
                b.addr,
                b.server_pid
                    .map_or_else(String::new, |p| format!(", pid {p}")),
                mib(b.idle_rss_bytes),
                mib(b.peak_rss_bytes),
                b.pg_settings
                    .as_ref()
                    .map_or_else(String::new, |s| format!(", {s}")),
            );
            let with_baseline = !b.baselines.is_empty();
            let mut header = vec![
                "scenario", "events/s", "p50 ms", "p99 ms", "max ms", "peak RSS", "errors",
            ];
            if with_baseline {
                header.extend(["raw PG/s", "ratio"]);
            }
            let rows: Vec<Vec<String>> = b
                .scenarios
                .iter()
                .map(|s| {
                    let mut row = vec![
                        s.id.clone(),
                        thousands(s.events_per_s),
                        opt(s.latency.map(|l| l.p50_ms), short),
                        opt(s.latency.map(|l| l.p99_ms), short),
                        opt(s.latency.map(|l| l.max_ms), short),
                        mib(s.peak_rss_bytes),
                        thousands(s.errors as f64),
                    ];
                    if with_baseline {
                        row.push(opt(s.baseline.as_ref().map(|r| r.events_per_s), thousands));
                        row.push(opt(s.baseline.as_ref().and_then(|r| r.ratio), short));
                    }
                    row
                })
                .collect();
            out.push_str(&table(&header, &rows));
            let rounds: Vec<Vec<String>> = b
                .scenarios
                .iter()
                .filter(|s| s.round_ratios.len() > 1)
                .map(|s| {
                    let mut row = vec![s.id.clone()];
                    row.extend(s.round_ratios.iter().map(|&r| format!("{r:.3}")));
                    row
                })
                .collect();
            if let Some(width) = rounds.iter().map(Vec::len).max() {
                out.push('\n');
                let _ = writeln!(
                    out,
                    "ratio in each round (ours, then raw, alternating; the rows above are the \
                     median round's):"
                );
                let mut header: Vec<String> = vec!["scenario".to_owned()];
                header.extend((1..width).map(|i| format!("round {i}")));
                let header: Vec<&str> = header.iter().map(String::as_str).collect();
                out.push_str(&table(&header, &rounds));
            }
            if with_baseline {
                out.push('\n');
                let rows: Vec<Vec<String>> = b
                    .baselines
                    .iter()
                    .map(|r| {
                        vec![
                            r.id.clone(),
                            thousands(r.events_per_s),
                            opt(r.latency.map(|l| l.p50_ms), short),
                            opt(r.latency.map(|l| l.p99_ms), short),
                            opt(r.latency.map(|l| l.max_ms), short),
                            r.connections.to_string(),
                            r.description.clone(),
                        ]
                    })
                    .collect();
                out.push_str(&table(
                    &[
                        "raw baseline",
                        "rows/s",
                        "p50 ms",
                        "p99 ms",
                        "max ms",
                        "conns",
                        "what",
                    ],
                    &rows,
                ));
            }
            if !b.targets.is_empty() {
                out.push('\n');
                let rows: Vec<Vec<String>> = b
                    .targets
                    .iter()
                    .map(|t| {
                        vec![
                            t.description.clone(),
                            // Three decimals: a verdict must not hide behind rounding (1.302 > 1.30).
                            opt(t.figure, |f| {
                                if f.abs() < 10.0 {
                                    format!("{f:.3}")
                                } else {
                                    short(f)
                                }
                            }),
                            t.goal.clone(),
                            match t.met {
                                Some(true) => "met".to_owned(),
                                Some(false) => "MISSED".to_owned(),
                                None => "n/a".to_owned(),
                            },
                        ]
                    })
                    .collect();
                out.push_str(&table(&["target", "figure", "goal", "result"], &rows));
            }
            for s in b.scenarios.iter().filter(|s| s.errors > 0) {
                let _ = writeln!(
                    out,
                    "{}: {} errors, first: {}",
                    s.id,
                    s.errors,
                    s.first_error.as_deref().unwrap_or("?")
                );
            }
            if let Some(e) = &b.error {
                let _ = writeln!(out, "run stopped early: {e}");
            }
        }
        out
    }

    /// Returns the report as pretty JSON.
    pub fn to_json(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }
}

/// Formats a duration as `10s` or `700ms`.
pub fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Serializes a duration as seconds (f64).
pub fn ser_secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Scale;

    fn scenario(id: &str, rate: f64, p50: f64) -> ScenarioResult {
        let mut s = ScenarioResult::new(id, "test");
        s.events_per_s = rate;
        s.latency = Some(LatencySummary {
            count: 10,
            p50_ms: p50,
            p99_ms: p50 * 2.0,
            max_ms: p50 * 3.0,
            mean_ms: p50,
        });
        s
    }

    fn baseline(id: &str, rate: f64) -> BaselineResult {
        BaselineResult {
            id: id.to_owned(),
            description: "raw".to_owned(),
            connections: 1,
            rows: 100,
            elapsed_s: 1.0,
            events_per_s: rate,
            latency: None,
        }
    }

    fn postgres_report() -> BackendReport {
        let mut r = BackendReport::new(Backend::Postgres, "http://x".to_owned(), Some(1));
        r.idle_rss_bytes = Some(20 * 1024 * 1024);
        r.scenarios = vec![
            scenario("single_uncond_c1", 800.0, 1.2),
            scenario("single_uncond_c64", 5_000.0, 12.0),
            scenario("batch_1000", 50_000.0, 20.0),
            scenario("batch_10000", 40_000.0, 250.0),
            scenario("big_uncond", 700.0, 1.0),
            scenario("big_cond", 650.0, 1.4),
            scenario("catch_up", 200_000.0, 0.0),
            scenario("commit_to_subscriber", 1_000.0, 3.0),
        ];
        r.baselines = vec![
            baseline("raw_single_c1", 1_000.0),
            baseline("raw_single_c64", 3_000.0),
            baseline("raw_batch_1000", 60_000.0),
            baseline("raw_batch_10000", 100_000.0),
            baseline("raw_paged_read", 300_000.0),
        ];
        r.finish();
        r
    }

    #[test]
    fn pairs_scenarios_with_baselines() {
        assert_eq!(
            baseline_for("single_cond_c16").as_deref(),
            Some("raw_single_c16")
        );
        assert_eq!(baseline_for("batch_100").as_deref(), Some("raw_batch_100"));
        assert_eq!(baseline_for("catch_up").as_deref(), Some("raw_paged_read"));
        assert_eq!(baseline_for("commit_to_subscriber"), None);
        let r = postgres_report();
        let s = r.scenario("single_uncond_c1").expect("ran");
        assert_eq!(s.baseline.as_ref().and_then(|b| b.ratio), Some(0.8));
        // No raw_single_big was measured: no pairing.
        assert!(r.scenario("big_cond").expect("ran").baseline.is_none());
    }

    #[test]
    fn evaluates_targets() {
        let r = postgres_report();
        let verdict = |prefix: &str| {
            r.targets
                .iter()
                .find(|t| t.description.starts_with(prefix))
                .and_then(|t| t.met)
        };
        assert_eq!(verdict("single saves, 1 client"), Some(true)); // 0.8 >= 0.7
        assert_eq!(verdict("single saves, 64 clients"), Some(false)); // 1.67 < 2
        assert_eq!(verdict("batches of 1000"), Some(true)); // 0.83
        assert_eq!(verdict("batches of 10000"), Some(false)); // 0.4
        assert_eq!(verdict("conditional save p50"), Some(false)); // 1.4
        assert_eq!(verdict("catch-up"), Some(true)); // 0.67
        assert_eq!(verdict("commit-to-subscriber"), Some(true)); // p99 6 ms
        assert_eq!(verdict("server idle RSS"), Some(true));

        let mut e = BackendReport::new(Backend::Embedded, "http://x".to_owned(), None);
        e.scenarios = vec![scenario("single_uncond_c64", 12_000.0, 5.0)];
        e.finish();
        assert_eq!(e.targets[0].met, Some(true));
        // Unknown RSS: the target is n/a, not failed.
        assert_eq!(e.targets.last().and_then(|t| t.met), None);
    }

    #[test]
    fn number_formats() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1_234_567.8), "1,234,568");
        assert_eq!(thousands(-1500.0), "-1,500");
        assert_eq!(short(1.234), "1.23");
        assert_eq!(short(12.34), "12.3");
        assert_eq!(short(1234.0), "1,234");
        assert_eq!(mib(Some(3 * 1024 * 1024 / 2)), "1.5 MiB");
        assert_eq!(mib(None), "n/a");
        assert_eq!(fmt_duration(Duration::from_secs(10)), "10s");
        assert_eq!(fmt_duration(Duration::from_millis(700)), "700ms");
    }

    #[test]
    fn renders_table_and_json() {
        let mut backend = postgres_report();
        backend.scenarios[2].round_ratios = vec![0.75, 0.8333, 0.9];
        let report = Report {
            started_at: "2026-01-01T00:00:00Z".to_owned(),
            cores: 2,
            plan: Plan::for_scale(Scale::Smoke),
            backends: vec![backend],
        };
        let text = report.render();
        assert!(text.contains("ratio in each round"), "{text}");
        let rounds = text
            .lines()
            .filter(|l| l.starts_with("batch_1000 "))
            .nth(1)
            .expect("rounds row");
        assert!(
            rounds.contains("0.750") && rounds.ends_with("0.900"),
            "{rounds}"
        );
        assert!(text.contains("round 3"), "{text}");
        assert!(text.contains("== postgres"), "{text}");
        let line = text
            .lines()
            .find(|l| l.starts_with("single_uncond_c1 "))
            .expect("row");
        // events/s, p50, p99, max, RSS, errors, raw, ratio
        assert!(
            line.contains("800") && line.contains("1,000") && line.ends_with("0.80"),
            "{line}"
        );
        assert!(text.contains("raw_single_c64"));
        assert!(text.contains("MISSED") && text.contains("met"));
        let json: serde_json::Value =
            serde_json::from_str(&report.to_json().expect("json")).expect("parses");
        assert_eq!(json["backends"][0]["backend"], "postgres");
        assert_eq!(
            json["backends"][0]["scenarios"][0]["baseline"]["ratio"],
            0.8
        );
        assert_eq!(json["backends"][0]["scenarios"][2]["round_ratios"][2], 0.9);
        assert!(json["backends"][0]["scenarios"][0]
            .get("round_ratios")
            .is_none());
        assert_eq!(json["plan"]["scale"], "smoke");
        assert_eq!(json["plan"]["duration"], 0.7);
    }
}
