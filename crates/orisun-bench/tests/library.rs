//! Library mode at the smoke scale: `orisun bench --only lib` opens the stores in this process
//! (SQLite in a temporary directory, and PostgreSQL in a fresh database when `ORISUN_TEST_PG`
//! or the default local server is reachable), starts no server, and must produce every
//! scenario's figures: nonzero rates, a ratio to each baseline, and the partitioned
//! projection at 1, 2 and 4 workers with the speed-ups over one.

mod common;

use orisun_bench::options::LIBRARY_SCENARIOS;
use orisun_bench::raw::PgServer;
use orisun_bench::Backend;

/// The PostgreSQL server of the tests (`ORISUN_TEST_PG`, else the default local one).
fn test_pg() -> String {
    std::env::var("ORISUN_TEST_PG")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres".to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_scenarios_produce_every_figure_on_each_backend() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("bench.json");
    let pg = test_pg();
    let reachable = PgServer::parse(&pg).expect("parses").reachable().await;
    let args = [
        "bench",
        "--scale",
        "smoke",
        "--only",
        "lib",
        "--pg",
        &pg,
        "--json",
        json.to_str().expect("utf-8 path"),
    ];
    let opts = common::options(args);
    let report = orisun_bench::run(opts).await.expect("the bench completes");

    let backends: Vec<Backend> = report.backends.iter().map(|b| b.backend).collect();
    let mut expected = vec![Backend::Embedded];
    if reachable {
        expected.push(Backend::Postgres);
    } else {
        eprintln!("PostgreSQL ({pg}) is not reachable: library mode ran on SQLite only");
    }
    assert_eq!(backends, expected);
    for b in &report.backends {
        assert!(b.error.is_none(), "{:?}: {:?}", b.backend, b.error);
        // No server was started: library mode needs none.
        assert!(b.scenarios.is_empty() && b.server_pid.is_none(), "{b:?}");
        let lib = b.library.as_ref().expect("library mode ran");
        let ids: Vec<&str> = lib.scenarios.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, LIBRARY_SCENARIOS, "{:?}", b.backend);
        for s in &lib.scenarios {
            assert!(s.events > 0 && s.requests > 0, "{:?} {s:?}", b.backend);
            assert!(s.events_per_s > 0.0, "{:?} {s:?}", b.backend);
            assert_eq!(s.errors, 0, "{s:?}");
        }
        for (scenario, compared_with) in [
            ("lib_aggregate_read", "lib_store_read_1000"),
            ("lib_projection", "lib_store_paged_read"),
            ("lib_partitions_2", "lib_partitions_1"),
            ("lib_partitions_4", "lib_partitions_1"),
            ("lib_aggregate_append", "lib_store_append"),
        ] {
            let s = lib.scenario(scenario).expect("ran");
            let base = s.baseline.as_ref().expect("paired");
            assert_eq!(base.id, compared_with);
            assert!(base.events_per_s > 0.0, "{scenario}: {base:?}");
            assert!(base.ratio.is_some_and(|r| r > 0.0), "{scenario}: {base:?}");
        }
        for id in [
            "lib_store_read_1000",
            "lib_store_paged_read",
            "lib_store_append",
        ] {
            let base = lib.baselines.iter().find(|r| r.id == id).expect(id);
            assert!(base.events_per_s > 0.0 && base.rows > 0, "{base:?}");
            assert!(base.latency.is_some(), "{base:?}");
        }
        // Every worker count handled the same events.
        let handled: Vec<u64> = ["lib_partitions_1", "lib_partitions_2", "lib_partitions_4"]
            .iter()
            .map(|id| lib.scenario(id).expect("ran").events)
            .collect();
        assert!(handled.iter().all(|&n| n == handled[0]), "{handled:?}");
        // The preload is whole streams; the projection handled all of it.
        let preloaded = lib.scenario("lib_preload").expect("ran").events;
        assert_eq!(preloaded % 1_000, 0);
        assert_eq!(
            lib.scenario("lib_projection").expect("ran").events,
            preloaded
        );
        // At this scale the partitioned projection starts from a placed checkpoint, as at the
        // full scale: it handles only the last events.
        assert!(
            handled[0] > 0 && handled[0] < preloaded,
            "{handled:?} of {preloaded}"
        );
        let append = lib.scenario("lib_aggregate_append").expect("ran");
        let latency = append.latency.expect("append latencies");
        assert!(latency.p99_ms >= latency.p50_ms && latency.p50_ms > 0.0);
    }
    let table = report.render();
    assert!(
        table.contains("library mode (in-process, no gRPC)"),
        "{table}"
    );
    assert!(table.contains("lib_partitions_4"), "{table}");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written"))
            .expect("json parses");
    assert_eq!(
        written["backends"][0]["library"]["scenarios"]
            .as_array()
            .map(Vec::len),
        Some(LIBRARY_SCENARIOS.len())
    );
}
