//! A sample PostgreSQL backend report, with scenarios and baselines, for the tests of the
//! targets and of the rendering.

use super::{BackendReport, BaselineResult, ScenarioResult};
use crate::options::Backend;
use crate::stats::LatencySummary;

pub(super) fn scenario(id: &str, rate: f64, p50: f64) -> ScenarioResult {
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

pub(super) fn postgres_report() -> BackendReport {
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
