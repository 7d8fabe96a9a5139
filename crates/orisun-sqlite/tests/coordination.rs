//! The `Coordination` of the embedded backend: the generic suite, and checkpoints that survive
//! a restart of the store while leases do not.

use orisun_core::Position;
use orisun_sqlite::{SqliteConfig, SqliteStore, COORDINATION_FILE};
use orisun_store::testsuite::coordination as coordination_suite;
use std::time::Duration;

fn open(dir: &std::path::Path) -> SqliteStore {
    SqliteStore::open(SqliteConfig::new(dir)).expect("open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_elect_one_holder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    coordination_suite::leases_elect_one_holder(store.coordination()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_checkpoints_reject_old_holders() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    coordination_suite::fenced_checkpoints_reject_old_holders(store.coordination()).await;
}

/// Checkpoints are in the coordination file and come back after a restart; the file is never
/// taken for a boundary; clones of the store share one coordinator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path());
        let (c, same) = (store.coordination(), store.clone().coordination());
        let lease = c
            .acquire("nats_publisher:orders", "node", Duration::from_secs(10))
            .await
            .expect("acquire")
            .expect("free");
        assert!(same
            .acquire("nats_publisher:orders", "other", Duration::from_secs(10))
            .await
            .expect("acquire")
            .is_none());
        c.save_checkpoint("nats_publisher:orders", Position::new(7, 6), Some(&lease))
            .await
            .expect("save");
        c.save_checkpoint("projection", Position::new(2, 1), None)
            .await
            .expect("save");
        c.save_checkpoint("projection", Position::new(3, 2), None)
            .await
            .expect("overwrite");
    }
    assert!(dir.path().join(COORDINATION_FILE).exists());
    let store = open(dir.path());
    let c = store.coordination();
    assert_eq!(
        c.load_checkpoint("nats_publisher:orders")
            .await
            .expect("load"),
        Some(Position::new(7, 6))
    );
    assert_eq!(
        c.load_checkpoint("projection").await.expect("load"),
        Some(Position::new(3, 2))
    );
    assert_eq!(c.load_checkpoint("nothing").await.expect("load"), None);
    // Leases died with the process that held them.
    assert!(c
        .acquire("nats_publisher:orders", "other", Duration::from_secs(10))
        .await
        .expect("acquire")
        .is_some());
    use orisun_store::EventStore;
    assert!(store.boundaries().await.expect("boundaries").is_empty());
}
