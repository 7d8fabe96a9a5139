//! The figures of library mode (the aggregate and projection libraries measured in the bench's
//! process, each against the plain store call doing the same work), their pairing with those
//! baselines, and their section of the text table.

use super::render::{opt, rounds_table, table};
use super::{baseline_for, short, thousands, BaselineRef, BaselineResult, ScenarioResult};
use crate::stats::ratio;
use serde::Serialize;
use std::fmt::Write as _;

/// What library mode measured on one backend.
#[derive(Debug, Clone, Serialize)]
pub struct LibraryReport {
    /// The store the scenarios opened in the bench's process, in words.
    pub store: String,
    /// Our scenarios, in the order they ran.
    pub scenarios: Vec<ScenarioResult>,
    /// The plain `EventStore` calls they are compared with.
    pub baselines: Vec<BaselineResult>,
}

impl LibraryReport {
    /// Creates an empty report for the store described by `store`.
    pub fn new(store: impl Into<String>) -> Self {
        Self {
            store: store.into(),
            scenarios: Vec::new(),
            baselines: Vec::new(),
        }
    }

    /// Pairs each scenario with what it is compared with (by [`baseline_for`]): a baseline,
    /// or, for the partitioned projection, the run of the same scenario with one worker.
    pub fn finish(&mut self) {
        let rates: Vec<(String, f64)> = self
            .baselines
            .iter()
            .map(|b| (b.id.clone(), b.events_per_s))
            .chain(
                self.scenarios
                    .iter()
                    .map(|s| (s.id.clone(), s.events_per_s)),
            )
            .collect();
        for s in &mut self.scenarios {
            let Some(id) = baseline_for(&s.id) else {
                continue;
            };
            if let Some((_, rate)) = rates.iter().find(|(r, _)| *r == id) {
                s.baseline = Some(BaselineRef {
                    ratio: ratio(s.events_per_s, *rate),
                    id,
                    events_per_s: *rate,
                });
            }
        }
    }

    /// Returns the scenario `id`, if it ran.
    pub fn scenario(&self, id: &str) -> Option<&ScenarioResult> {
        self.scenarios.iter().find(|s| s.id == id)
    }

    /// Appends this report's section of the text table to `out`.
    pub(super) fn render_into(&self, out: &mut String) {
        let _ = writeln!(out, "\nlibrary mode (in-process, no gRPC): {}", self.store);
        let per_s =
            |requests: u64, elapsed_s: f64| (elapsed_s > 0.0).then(|| requests as f64 / elapsed_s);
        let rows: Vec<Vec<String>> = self
            .scenarios
            .iter()
            .map(|s| {
                let base = s.baseline.as_ref();
                let base_latency = base.and_then(|b| {
                    let found = self.baselines.iter().find(|r| r.id == b.id)?;
                    found.latency
                });
                vec![
                    s.id.clone(),
                    thousands(s.events_per_s),
                    opt(per_s(s.requests, s.elapsed_s), thousands),
                    opt(s.latency.map(|l| l.p50_ms), short),
                    opt(s.latency.map(|l| l.p99_ms), short),
                    base.map_or_else(|| "-".to_owned(), |b| b.id.clone()),
                    opt(base.map(|b| b.events_per_s), thousands),
                    opt(base_latency.map(|l| l.p50_ms), short),
                    opt(base_latency.map(|l| l.p99_ms), short),
                    opt(base.and_then(|b| b.ratio), short),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "scenario",
                "events/s",
                "ops/s",
                "p50 ms",
                "p99 ms",
                "compared with",
                "its ev/s",
                "its p50",
                "its p99",
                "ratio",
            ],
            &rows,
        ));
        out.push_str(&rounds_table(
            &self.scenarios,
            "ours, then what it is compared with",
        ));
        if !self.baselines.is_empty() {
            out.push('\n');
            let rows: Vec<Vec<String>> = self
                .baselines
                .iter()
                .map(|b| {
                    vec![
                        b.id.clone(),
                        thousands(b.events_per_s),
                        opt(b.latency.map(|l| l.p50_ms), short),
                        opt(b.latency.map(|l| l.p99_ms), short),
                        opt(b.latency.map(|l| l.max_ms), short),
                        b.description.clone(),
                    ]
                })
                .collect();
            out.push_str(&table(
                &[
                    "library baseline",
                    "events/s",
                    "p50 ms",
                    "p99 ms",
                    "max ms",
                    "what",
                ],
                &rows,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::scenario;

    fn baseline(id: &str, rate: f64) -> BaselineResult {
        BaselineResult {
            id: id.to_owned(),
            description: "plain store call".to_owned(),
            connections: 1,
            rows: 10,
            elapsed_s: 1.0,
            events_per_s: rate,
            latency: None,
        }
    }

    fn sample() -> LibraryReport {
        let mut r = LibraryReport::new("SQLite in /tmp/x");
        r.scenarios = vec![
            scenario("lib_aggregate_read", 400_000.0, 2.0),
            scenario("lib_partitions_1", 10_000.0, 0.0),
            scenario("lib_partitions_2", 15_000.0, 0.0),
            scenario("lib_partitions_4", 5_000.0, 0.0),
            scenario("lib_aggregate_append", 800.0, 1.0),
        ];
        r.scenarios[0].round_ratios = vec![0.5, 0.4, 0.45];
        r.baselines = vec![
            baseline("lib_store_read_1000", 800_000.0),
            baseline("lib_store_append", 1_000.0),
        ];
        r.finish();
        r
    }

    #[test]
    fn pairs_with_baselines_and_the_one_worker_run() {
        let r = sample();
        let paired = |id: &str| {
            let b = r.scenario(id).and_then(|s| s.baseline.as_ref())?;
            Some((b.id.clone(), b.ratio?))
        };
        assert_eq!(
            paired("lib_aggregate_read"),
            Some(("lib_store_read_1000".to_owned(), 0.5))
        );
        assert_eq!(
            paired("lib_aggregate_append"),
            Some(("lib_store_append".to_owned(), 0.8))
        );
        assert_eq!(
            paired("lib_partitions_2"),
            Some(("lib_partitions_1".to_owned(), 1.5))
        );
        assert_eq!(
            paired("lib_partitions_4"),
            Some(("lib_partitions_1".to_owned(), 0.5))
        );
        assert_eq!(paired("lib_partitions_1"), None);
    }

    #[test]
    fn renders_its_section() {
        let mut text = String::new();
        sample().render_into(&mut text);
        assert!(
            text.contains("library mode (in-process, no gRPC): SQLite"),
            "{text}"
        );
        let line = text
            .lines()
            .find(|l| l.starts_with("lib_partitions_2 "))
            .expect("row");
        assert!(
            line.contains("lib_partitions_1") && line.ends_with("1.50"),
            "{line}"
        );
        assert!(text.contains("round 3") && text.contains("0.450"), "{text}");
        assert!(text.contains("library baseline") && text.contains("lib_store_append"));
    }
}
