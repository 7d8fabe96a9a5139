//! The targets and what they are judged on: which raw baseline each scenario is
//! compared with, and the bounds each backend's figures are checked against.

use super::{format::MIB, short, BackendReport, TargetCheck};
use crate::options::Backend;
use crate::stats::ratio;

/// Returns the baseline a scenario is compared with (for library mode's partitioned
/// projection: the run of the same projection with one worker).
pub fn baseline_for(scenario: &str) -> Option<String> {
    if let Some(plain) = scenario.strip_prefix("observed_") {
        return Some(format!("plain_{plain}"));
    }
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
        "lib_aggregate_append" => Some("lib_store_append".to_owned()),
        "lib_aggregate_read" => Some("lib_store_read_1000".to_owned()),
        "lib_projection" => Some("lib_store_paged_read".to_owned()),
        // The speed-up of more workers over one.
        "lib_partitions_2" | "lib_partitions_4" => Some("lib_partitions_1".to_owned()),
        _ => None,
    }
}

/// Returns UmaDB's figure a scenario is compared with (`--baseline umadb`): the same scenario
/// run against UmaDB, or for our two ways of reading the whole preloaded log (catch-up
/// subscription, GetEvents paging), UmaDB's one `Read` stream over it.
pub fn umadb_for(scenario: &str) -> Option<String> {
    match scenario {
        "catch_up" | "get_events" => Some("umadb_read_all".to_owned()),
        s if s.starts_with("single_") || s.starts_with("batch_c") => Some(format!("umadb_{s}")),
        _ => None,
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::{postgres_report, scenario};

    #[test]
    fn pairs_scenarios_with_baselines() {
        assert_eq!(
            baseline_for("single_cond_c16").as_deref(),
            Some("raw_single_c16")
        );
        assert_eq!(baseline_for("batch_100").as_deref(), Some("raw_batch_100"));
        assert_eq!(baseline_for("catch_up").as_deref(), Some("raw_paged_read"));
        assert_eq!(baseline_for("commit_to_subscriber"), None);
        assert_eq!(
            umadb_for("single_cond_c64").as_deref(),
            Some("umadb_single_cond_c64")
        );
        assert_eq!(
            umadb_for("batch_c4_1000").as_deref(),
            Some("umadb_batch_c4_1000")
        );
        assert_eq!(umadb_for("catch_up").as_deref(), Some("umadb_read_all"));
        assert_eq!(umadb_for("batch_1000"), None);
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
}
