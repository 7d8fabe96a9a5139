//! Renders a report: the fixed-width text table printed at the end of a run, and the pretty
//! JSON written on request.

use super::{fmt_duration, mib, short, thousands, BackendReport, Report, ScenarioResult};
use std::fmt::Write as _;

pub(super) fn opt(value: Option<f64>, f: fn(f64) -> String) -> String {
    value.map_or_else(|| "-".to_owned(), f)
}

/// A fixed-width text table: the first column left-aligned, the others right-aligned.
pub(super) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
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

/// The table of every round's ratio of the scenarios that ran in rounds, with a line saying
/// what alternated (`order`); empty when none did.
pub(super) fn rounds_table(scenarios: &[ScenarioResult], order: &str) -> String {
    rounds_table_of(scenarios, order, |s| &s.round_ratios)
}

/// [`rounds_table`] of the ratios `of` picks (to raw, or to UmaDB).
fn rounds_table_of(
    scenarios: &[ScenarioResult],
    order: &str,
    of: fn(&ScenarioResult) -> &Vec<f64>,
) -> String {
    let rounds: Vec<Vec<String>> = scenarios
        .iter()
        .filter(|s| of(s).len() > 1)
        .map(|s| {
            let mut row = vec![s.id.clone()];
            row.extend(of(s).iter().map(|&r| format!("{r:.3}")));
            row
        })
        .collect();
    let Some(width) = rounds.iter().map(Vec::len).max() else {
        return String::new();
    };
    let mut header: Vec<String> = vec!["scenario".to_owned()];
    header.extend((1..width).map(|i| format!("round {i}")));
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    format!(
        "\nratio in each round ({order}, alternating; the rows above are the median round's):\n{}",
        table(&header, &rounds)
    )
}

/// Renders the server part of one backend: its scenarios with their raw baselines and ratios,
/// every round's ratio, the raw baseline figures, and the targets.
fn render_server(b: &BackendReport, out: &mut String) {
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
    let with_umadb = !b.umadb.is_empty();
    if with_umadb {
        header.extend(["UmaDB/s", "vs UmaDB"]);
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
            if with_umadb {
                row.push(opt(s.umadb.as_ref().map(|r| r.events_per_s), thousands));
                row.push(opt(s.umadb.as_ref().and_then(|r| r.ratio), short));
            }
            row
        })
        .collect();
    out.push_str(&table(&header, &rows));
    out.push_str(&rounds_table(&b.scenarios, "ours, then raw"));
    out.push_str(&rounds_table_of(
        &b.scenarios,
        "ours / UmaDB: ours, then UmaDB",
        |s| &s.umadb_round_ratios,
    ));
    for (title, figures) in [("raw baseline", &b.baselines), ("UmaDB", &b.umadb)] {
        if figures.is_empty() {
            continue;
        }
        out.push('\n');
        let rows: Vec<Vec<String>> = figures
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
                title,
                if title == "UmaDB" {
                    "events/s"
                } else {
                    "rows/s"
                },
                "p50 ms",
                "p99 ms",
                "max ms",
                "conns",
                "what",
            ],
            &rows,
        ));
    }
    if let Some(log) = &b.umadb_log {
        let _ = writeln!(
            out,
            "UmaDB {}: head {} after {} acknowledged events ({})",
            crate::umadb::VERSION,
            thousands(log.head as f64),
            thousands(log.acknowledged as f64),
            if log.head == log.acknowledged {
                "none lost"
            } else {
                "MISMATCH"
            }
        );
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
}

/// The rows of the comparison with UmaDB (issue 17's table): a label and our scenario.
const UMADB_ROWS: [(&str, &str); 7] = [
    ("1 client, single event", "single_uncond_c1"),
    ("1 client, single event, conditional", "single_cond_c1"),
    ("16 clients, conditional", "single_cond_c16"),
    ("64 clients, conditional", "single_cond_c64"),
    ("4 clients, batches of 100", "batch_c4_100"),
    ("4 clients, batches of 1,000", "batch_c4_1000"),
    ("one reader, whole log (catch-up)", "catch_up"),
];

/// The comparison with UmaDB in one table (events/s): per backend, UmaDB's figure measured
/// beside it, ours and the ratio, and on PostgreSQL the raw baseline; empty without UmaDB.
fn umadb_summary(backends: &[BackendReport]) -> String {
    let with: Vec<&BackendReport> = backends.iter().filter(|b| !b.umadb.is_empty()).collect();
    if with.is_empty() {
        return String::new();
    }
    let mut header = vec!["scenario".to_owned()];
    for b in &with {
        let name = b.backend.name();
        header.extend([
            format!("UmaDB ({name} run)"),
            format!("ours, {name}"),
            "ratio".to_owned(),
        ]);
        if !b.baselines.is_empty() {
            header.push("raw PG".to_owned());
        }
    }
    let rows: Vec<Vec<String>> = UMADB_ROWS
        .iter()
        .filter(|(_, id)| with.iter().any(|b| b.scenario(id).is_some()))
        .map(|(label, id)| {
            let mut row = vec![(*label).to_owned()];
            for b in &with {
                let s = b.scenario(id);
                let uma = s.and_then(|s| s.umadb.as_ref());
                row.push(opt(uma.map(|u| u.events_per_s), thousands));
                row.push(opt(s.map(|s| s.events_per_s), thousands));
                row.push(opt(uma.and_then(|u| u.ratio), short));
                if !b.baselines.is_empty() {
                    let raw = s
                        .and_then(|s| s.baseline.as_ref())
                        .filter(|r| r.id.starts_with("raw_"));
                    row.push(opt(raw.map(|r| r.events_per_s), thousands));
                }
            }
            row
        })
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    format!(
        "\n== ours and UmaDB {} (events/s, median rounds; ratio = ours / UmaDB)\n{}",
        crate::umadb::VERSION,
        table(&header, &rows)
    )
}

impl Report {
    /// Renders the final text table: per backend, the scenarios with their baselines and
    /// ratios, the raw baseline figures, the targets, and library mode's figures.
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
            if b.addr.is_empty() && b.scenarios.is_empty() {
                let _ = writeln!(out, "== {} (no server scenarios)", b.backend.name());
            } else {
                render_server(b, &mut out);
            }
            if let Some(library) = &b.library {
                library.render_into(&mut out);
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
        out.push_str(&umadb_summary(&self.backends));
        out
    }

    /// Returns the report as pretty JSON.
    pub fn to_json(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{Plan, Scale};
    use crate::report::fixtures::postgres_report;

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
