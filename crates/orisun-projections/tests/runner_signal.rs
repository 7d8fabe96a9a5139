//! `Runner::run_until_signal`: SIGTERM stops every processor cleanly (each finishes its batch
//! and releases its lease) and the runner returns `Ok`. In its own test binary, because it
//! signals its own process.

use orisun_projections::testsuite::{seeded, Ledger};
use orisun_projections::{Processor, ProjectionConfig, Runner, State};
use orisun_store::{Coordination, EventStore, LocalCoordination, MemoryStore};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_runner_cleanly() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let coordination: Arc<dyn Coordination> = Arc::new(LocalCoordination::new());
    let boundary = seeded(&store, 2, 3).await;
    let config = |name: &str| ProjectionConfig::new(name, boundary.clone()).expect("valid");
    let first = Processor::new(
        store.clone(),
        coordination.clone(),
        config("one"),
        Arc::new(Ledger::default()),
    );
    let second = Processor::new(
        store.clone(),
        coordination.clone(),
        config("two"),
        Arc::new(Ledger::default()),
    );
    let mut progress = [first.progress(), second.progress()];
    let running = tokio::spawn(Runner::new().with(first).with(second).run_until_signal());
    for p in &mut progress {
        tokio::time::timeout(
            Duration::from_secs(30),
            p.wait_for(|p| p.state == State::Idle),
        )
        .await
        .expect("caught up")
        .expect("progress");
    }
    // The signal handler is installed before the processors start; both are idle now.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .expect("send SIGTERM");
    assert!(status.success());
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the runner stops on SIGTERM")
        .expect("task")
        .expect("clean stop");
    for p in &progress {
        assert_eq!(p.borrow().state, State::Stopped);
    }
    // Both leases were released: a new worker takes a partition at once.
    let lease = coordination
        .acquire(
            &config("one").checkpoint_name(),
            "next",
            Duration::from_secs(1),
        )
        .await
        .expect("acquire");
    assert!(lease.is_some(), "the stopped processor kept its lease");
}
