//! `orisun bench --baseline umadb` end to end at a tiny scale: UmaDB 0.7.8 installed from PyPI
//! into a virtualenv under the target directory (kept between runs), started beside a real
//! embedded `orisun serve`, and both driven in alternating rounds. Checks that UmaDB's figures
//! and our ratios to them are in the report and the table, and that UmaDB's log holds every
//! event it acknowledged (its head, read at the end of the run). Without PyPI the virtualenv
//! cannot be built and the test fails, saying so.
//!
//! The server binary is found by `common::server_binary` (`target/<profile>/orisun`, or
//! `ORISUN_BIN`).

mod common;

use std::path::Path;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn umadb_baseline_runs_beside_ours_and_keeps_every_event() {
    let bin = common::server_binary();
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("umadb-venv");
    let args = [
        "bench",
        "--server-bin",
        bin.to_str().expect("utf-8 path"),
        "--backend",
        "embedded",
        "--baseline",
        "umadb",
        "--umadb-venv",
        venv.to_str().expect("utf-8 path"),
        "--scale",
        "smoke",
        "--duration",
        "1s",
        "--rounds",
        "2",
        "--clients",
        "1,4",
        "--preload",
        "2000",
        "--only",
        "single_cond,batch_c4_100,catch_up",
    ];
    let opts = common::options(args);
    let report = orisun_bench::run(opts).await.unwrap_or_else(|e| {
        panic!(
            "the bench with --baseline umadb failed (installing UmaDB needs PyPI: pip install \
             umadb==0.7.8 into {}): {e:#}",
            venv.display()
        )
    });
    let b = &report.backends[0];
    let ids: Vec<&str> = b.scenarios.iter().map(|s| s.id.as_str()).collect();
    // `batch_c4_100` is a prefix of `batch_c4_1000` too.
    assert_eq!(
        ids,
        [
            "single_cond_c1",
            "single_cond_c4",
            "batch_c4_100",
            "batch_c4_1000",
            "preload",
            "catch_up"
        ]
    );
    for s in &b.scenarios {
        assert_eq!(s.errors, 0, "{}: {:?}", s.id, s.first_error);
        assert!(s.events > 0, "{s:?}");
    }
    for (ours, theirs) in [
        ("single_cond_c1", "umadb_single_cond_c1"),
        ("single_cond_c4", "umadb_single_cond_c4"),
        ("batch_c4_100", "umadb_batch_c4_100"),
        ("catch_up", "umadb_read_all"),
    ] {
        let s = b.scenario(ours).expect("ran");
        let paired = s
            .umadb
            .as_ref()
            .unwrap_or_else(|| panic!("{ours} has no UmaDB figure"));
        assert_eq!(paired.id, theirs);
        assert!(paired.events_per_s > 0.0, "{paired:?}");
        assert!(paired.ratio.is_some_and(|r| r > 0.0), "{paired:?}");
        // Two alternating rounds, both with a ratio to UmaDB.
        assert_eq!(s.umadb_round_ratios.len(), 2, "{s:?}");
        let figure = b.umadb.iter().find(|u| u.id == theirs).expect("recorded");
        assert!(figure.rows > 0 && figure.latency.is_some() == (theirs != "umadb_read_all"));
    }
    // Four clients of batches of 100: whole batches only.
    let batches = b
        .umadb
        .iter()
        .find(|u| u.id == "umadb_batch_c4_100")
        .expect("ran");
    assert!(
        batches.rows >= 400 && batches.rows % 100 == 0,
        "{batches:?}"
    );
    assert_eq!(batches.connections, 4);
    // The whole-log read got exactly the preloaded events.
    let read = b
        .umadb
        .iter()
        .find(|u| u.id == "umadb_read_all")
        .expect("ran");
    assert_eq!(read.rows, 2_000);
    // UmaDB's log holds every event it acknowledged, in both rounds (not only the kept one).
    let log = b.umadb_log.expect("UmaDB's head was read at the end");
    let kept: u64 = b
        .umadb
        .iter()
        .filter(|u| u.id != "umadb_read_all")
        .map(|u| u.rows)
        .sum();
    assert_eq!(log.head, log.acknowledged, "{log:?}");
    assert!(
        log.acknowledged > kept,
        "{log:?} vs {kept} in the kept rounds"
    );

    let table = report.render();
    assert!(
        table.contains("UmaDB/s") && table.contains("vs UmaDB"),
        "{table}"
    );
    assert!(table.contains("umadb_single_cond_c4"), "{table}");
    assert!(table.contains("none lost"), "{table}");
    assert!(table.contains("ours / UmaDB"), "{table}");
    // The comparison in the shape of issue 17's table, one row per scenario that ran.
    let summary = table
        .split("== ours and UmaDB 0.7.8")
        .nth(1)
        .unwrap_or_else(|| panic!("no comparison table in:\n{table}"));
    let row = summary
        .lines()
        .find(|l| l.starts_with("1 client, single event, conditional"))
        .expect("the 1-client conditional row");
    // Five words of label, then UmaDB, ours and the ratio.
    assert_eq!(row.split_whitespace().count(), 8, "{row}");
    assert!(summary.contains("4 clients, batches of 100 "), "{summary}");
    assert!(!summary.contains("64 clients"), "{summary}");
}
