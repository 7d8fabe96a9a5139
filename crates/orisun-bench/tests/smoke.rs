//! Smoke test of the whole instrument: `--scale smoke` against real `orisun serve` children
//! (embedded, and PostgreSQL with its raw baseline when `ORISUN_TEST_PG` or the default local
//! server is reachable), checking every scenario ran and every figure is in the JSON.
//!
//! The server binary belongs to the `orisun` package, so it is found in this test's build
//! directory (`target/<profile>/orisun`, built by `cargo build -p orisun` or by a workspace
//! `cargo test`), or given with `ORISUN_BIN`.

use clap::Parser;
use orisun_bench::{Backend, BenchOptions};
use std::path::PathBuf;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    bench: BenchOptions,
}

fn server_binary() -> PathBuf {
    if let Ok(path) = std::env::var("ORISUN_BIN") {
        return PathBuf::from(path);
    }
    // This test runs as target/<profile>/deps/smoke-<hash>; the binary is target/<profile>/orisun.
    let exe = std::env::current_exe().expect("the test knows its own path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lives in target/<profile>/deps");
    let bin = profile_dir.join(format!("orisun{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p orisun` (or set ORISUN_BIN)",
        bin.display()
    );
    bin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_run_against_a_real_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("bench.json");
    let bin = server_binary();
    let pg = std::env::var("ORISUN_TEST_PG")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres".to_owned());
    let args = [
        "bench",
        "--scale",
        "smoke",
        "--clients",
        "1,4",
        "--pg",
        &pg,
        "--server-bin",
        bin.to_str().expect("utf-8 path"),
        "--json",
        json.to_str().expect("utf-8 path"),
    ];
    let opts = Cli::try_parse_from(args).expect("options parse").bench;
    let report = orisun_bench::run(opts).await.expect("the bench completes");

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
            for s in &b.scenarios {
                if s.id != "commit_to_subscriber" {
                    let base = s
                        .baseline
                        .as_ref()
                        .unwrap_or_else(|| panic!("{} has no baseline", s.id));
                    assert!(base.ratio.is_some_and(|r| r > 0.0), "{s:?}");
                }
            }
        }
        assert!(!b.targets.is_empty());
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
