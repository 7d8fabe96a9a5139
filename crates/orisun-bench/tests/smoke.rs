//! Smoke test of the whole instrument: `--scale smoke` against real `orisun serve` children
//! (embedded, and PostgreSQL with its raw baseline when `ORISUN_TEST_PG` or the default local
//! server is reachable), checking every scenario ran (library mode's too) and every figure is
//! in the JSON; and, at an even smaller scale, the scenarios and the baseline that took over
//! from the former ad-hoc measurement programs, checking their figures one by one.
//!
//! The server binary belongs to the `orisun` package, so it is found in this test's build
//! directory (`target/<profile>/orisun`, built by `cargo build -p orisun` or by a workspace
//! `cargo test`), or given with `ORISUN_BIN`.

mod common;

use orisun_bench::raw::PgServer;
use orisun_bench::{Backend, Report};

/// The PostgreSQL server of the tests (`ORISUN_TEST_PG`, else the default local one).
fn test_pg() -> String {
    std::env::var("ORISUN_TEST_PG")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres".to_owned())
}

/// Runs `orisun bench` with `args` (after `bench`) against this build's server.
async fn bench(args: &[&str]) -> anyhow::Result<Report> {
    let bin = common::server_binary();
    let mut full = vec!["bench", "--server-bin", bin.to_str().expect("utf-8 path")];
    full.extend_from_slice(args);
    let opts = common::options(full);
    orisun_bench::run(opts).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_run_against_a_real_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("bench.json");
    let pg = test_pg();
    let report = bench(&[
        "--scale",
        "smoke",
        "--clients",
        "1,4",
        "--pg",
        &pg,
        "--json",
        json.to_str().expect("utf-8 path"),
    ])
    .await
    .expect("the bench completes");

    assert!(!report.backends.is_empty());
    for b in &report.backends {
        let ids: Vec<&str> = b.scenarios.iter().map(|s| s.id.as_str()).collect();
        for expected in [
            "single_uncond_c1",
            "single_cond_c1",
            "single_uncond_c4",
            "single_cond_c4",
            "batch_100",
            "batch_1000",
            "batch_10000",
            "preload",
            "big_uncond",
            "big_cond",
            "get_events",
            "catch_up",
            "commit_to_subscriber",
        ] {
            assert!(
                ids.contains(&expected),
                "{:?} lacks {expected}: {ids:?}",
                b.backend
            );
        }
        // Two servers can share only a PostgreSQL store.
        assert_eq!(
            ids.contains(&"commit_to_subscriber_two_nodes"),
            b.backend == Backend::Postgres,
            "{ids:?}"
        );
        for s in &b.scenarios {
            assert!(
                s.events > 0,
                "{:?} {} wrote or read nothing",
                b.backend,
                s.id
            );
            assert_eq!(s.errors, 0, "{:?} {}: {:?}", b.backend, s.id, s.first_error);
            assert!(s.events_per_s > 0.0, "{s:?}");
            assert!(s.latency.is_some() || s.id == "catch_up", "{s:?}");
            assert!(s.peak_rss_bytes.is_some(), "{s:?}");
        }
        assert!(b.idle_rss_bytes.is_some());
        let read = b.scenario("get_events").expect("ran");
        assert_eq!(read.events, report.plan.preload);
        if b.backend == Backend::Postgres {
            assert!(b
                .pg_settings
                .as_deref()
                .is_some_and(|s| s.contains("synchronous_commit=on")));
            for size in [100, 1000, 10000] {
                let id = format!("raw_copy_{size}");
                assert!(b.baselines.iter().any(|r| r.id == id), "{id} is missing");
            }
            for s in &b.scenarios {
                if !s.id.starts_with("commit_to_subscriber") {
                    let base = s
                        .baseline
                        .as_ref()
                        .unwrap_or_else(|| panic!("{} has no baseline", s.id));
                    assert!(base.ratio.is_some_and(|r| r > 0.0), "{s:?}");
                }
            }
        }
        assert!(!b.targets.is_empty());
        // Library mode runs by default too (its figures are checked in `library.rs`).
        assert!(
            b.library.as_ref().is_some_and(|l| l.scenarios.len() == 7),
            "{:?}",
            b.library
        );
    }
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written"))
            .expect("json parses");
    assert_eq!(
        written["backends"].as_array().map(Vec::len),
        Some(report.backends.len())
    );
    assert!(written["backends"][0]["scenarios"][0]["events_per_s"]
        .as_f64()
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_across_nodes_copy_baseline_and_ordered_catch_up_at_a_tiny_scale() {
    // The embedded backend cannot share its store: the scenario is skipped, not failed.
    let report = bench(&[
        "--backend",
        "embedded",
        "--scale",
        "smoke",
        "--only",
        "commit_to_subscriber_two_nodes",
    ])
    .await
    .expect("the embedded run completes");
    assert!(report.backends[0].scenarios.is_empty());

    let pg = test_pg();
    if !PgServer::parse(&pg).expect("parses").reachable().await {
        eprintln!("skipped the PostgreSQL part: {pg} is not reachable");
        return;
    }
    let report = bench(&[
        "--backend",
        "postgres",
        "--pg",
        &pg,
        "--scale",
        "smoke",
        "--duration",
        "300ms",
        "--preload",
        "500",
        "--only",
        "batch_100,catch_up,commit_to_subscriber_two_nodes",
    ])
    .await
    .expect("the PostgreSQL run completes");
    let b = &report.backends[0];
    assert_eq!(b.backend, Backend::Postgres);
    let ids: Vec<&str> = b.scenarios.iter().map(|s| s.id.as_str()).collect();
    // `batch_100` is a prefix of the other batch sizes' ids too.
    assert_eq!(
        ids,
        [
            "batch_100",
            "batch_1000",
            "batch_10000",
            "preload",
            "catch_up",
            "commit_to_subscriber_two_nodes"
        ]
    );

    let two = b.scenario("commit_to_subscriber_two_nodes").expect("ran");
    assert_eq!(two.errors, 0, "{:?}", two.first_error);
    assert!(two.events > 0 && two.events_per_s > 0.0, "{two:?}");
    // Every save was delivered to the other node's subscriber.
    assert_eq!(two.events, two.requests, "{two:?}");
    let latency = two.latency.expect("delivery latencies");
    assert!(
        latency.p50_ms > 0.0 && latency.p99_ms >= latency.p50_ms,
        "{latency:?}"
    );
    assert!(two.peak_rss_bytes.is_some());
    assert!(two.baseline.is_none());
    assert!(
        two.description.contains("node A's at the same time p50"),
        "{}",
        two.description
    );

    let copy = b
        .baselines
        .iter()
        .find(|r| r.id == "raw_copy_100")
        .expect("the COPY baseline ran");
    assert!(copy.rows >= 100 && copy.rows % 100 == 0, "{copy:?}");
    assert!(
        copy.events_per_s > 0.0 && copy.latency.is_some(),
        "{copy:?}"
    );
    assert_eq!(copy.connections, 1);
    // Our batches are still judged against the multi-row INSERT, not against COPY.
    let batch = b.scenario("batch_100").expect("ran");
    let paired = batch.baseline.as_ref().expect("paired");
    assert_eq!(paired.id, "raw_batch_100");

    let catch_up = b.scenario("catch_up").expect("ran");
    assert_eq!(catch_up.events, 500);
    assert_eq!(catch_up.errors, 0);

    let table = report.render();
    assert!(table.contains("commit_to_subscriber_two_nodes") && table.contains("raw_copy_100"));
}
