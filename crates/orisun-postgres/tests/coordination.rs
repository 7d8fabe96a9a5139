//! The `Coordination` of the PostgreSQL backend: the generic suite, and two nodes (two stores on
//! one database) contending for the same leases.

mod common;

use common::TestDb;
use orisun_core::Position;
use orisun_store::testsuite::coordination as coordination_suite;
use orisun_store::{Coordination, StoreError};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_elect_one_holder() {
    let db = TestDb::create().await;
    let store = db.store().await;
    coordination_suite::leases_elect_one_holder(store.coordination()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_checkpoints_reject_old_holders() {
    let db = TestDb::create().await;
    let store = db.store().await;
    coordination_suite::fenced_checkpoints_reject_old_holders(store.coordination()).await;
}

/// Two nodes race for many leases at once: each lease gets exactly one holder. The holder's
/// node then dies (stops renewing): the other node takes over only after the TTL, with a
/// higher epoch, and the dead node's fenced writes fail from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_contend_for_leases() {
    let db = TestDb::create().await;
    let (a, b) = (db.store().await, db.store().await);
    let (ca, cb): (Arc<dyn Coordination>, Arc<dyn Coordination>) =
        (a.coordination(), b.coordination());
    let ttl = Duration::from_secs(2);

    // 50 simultaneous races, each between four contenders (two per node).
    let mut races = Vec::new();
    for i in 0..50 {
        let name = format!("race:{i}");
        let contenders: Vec<_> = [(&ca, "a1"), (&ca, "a2"), (&cb, "b1"), (&cb, "b2")]
            .into_iter()
            .map(|(c, holder)| {
                let (c, name) = (c.clone(), name.clone());
                tokio::spawn(async move { c.acquire(&name, holder, ttl).await })
            })
            .collect();
        races.push(contenders);
    }
    for (i, contenders) in races.into_iter().enumerate() {
        let mut winners = Vec::new();
        for contender in contenders {
            if let Some(lease) = contender.await.expect("joined").expect("acquire") {
                winners.push(lease);
            }
        }
        assert_eq!(winners.len(), 1, "race {i}: {winners:?}");
        assert_eq!(winners[0].epoch, 1);
    }

    // Node A holds a lease and checkpoints under it; node B cannot take it while it lives.
    let name = "nats_publisher:orders";
    let held = ca
        .acquire(name, "node-a", ttl)
        .await
        .expect("acquire")
        .expect("free");
    ca.save_checkpoint(name, Position::new(5, 4), Some(&held))
        .await
        .expect("fenced save");
    assert!(cb
        .acquire(name, "node-b", ttl)
        .await
        .expect("acquire")
        .is_none());
    assert_eq!(
        cb.load_checkpoint(name).await.expect("load"),
        Some(Position::new(5, 4)),
        "checkpoints are shared"
    );

    // A dies (stops renewing). B polls, as a contender does, and wins once the TTL has passed.
    let died = tokio::time::Instant::now();
    let taken = loop {
        if let Some(lease) = cb.acquire(name, "node-b", ttl).await.expect("acquire") {
            break lease;
        }
        assert!(died.elapsed() < ttl * 3, "B never took over");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let waited = died.elapsed();
    assert!(
        waited >= ttl - Duration::from_millis(300),
        "taken over after {waited:?}, before the TTL ran out"
    );
    assert!(taken.epoch > held.epoch);

    // The dead holder's writes are fenced off; the new holder's go through.
    let err = ca
        .save_checkpoint(name, Position::new(9, 8), Some(&held))
        .await
        .expect_err("fenced");
    assert!(matches!(err, StoreError::LeaseLost { .. }), "{err:?}");
    assert!(ca
        .acquire(name, "node-a", ttl)
        .await
        .expect("acquire")
        .is_none());
    cb.save_checkpoint(name, Position::new(7, 6), Some(&taken))
        .await
        .expect("fenced save by the new holder");
    assert_eq!(
        ca.load_checkpoint(name).await.expect("load"),
        Some(Position::new(7, 6))
    );

    // A release hands over at once, with a higher epoch.
    cb.release(&taken).await.expect("release");
    let back = ca
        .acquire(name, "node-a", ttl)
        .await
        .expect("acquire")
        .expect("released");
    assert!(back.epoch > taken.epoch);
}

/// A fenced save racing a hand-over never lands after the successor took over: each fenced
/// save either fails or is visible to the successor's first load.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fenced_saves_never_land_after_a_hand_over() {
    let db = TestDb::create().await;
    let (a, b) = (db.store().await, db.store().await);
    let (ca, cb) = (a.coordination(), b.coordination());
    let ttl = Duration::from_millis(300);
    for round in 0..10 {
        let name = format!("fence:{round}");
        let held = ca
            .acquire(&name, "old", ttl)
            .await
            .expect("acquire")
            .expect("free");
        // The old holder keeps saving increasing positions until it is fenced off.
        let saver = {
            let (ca, name, held) = (ca.clone(), name.clone(), held.clone());
            tokio::spawn(async move {
                let mut last_ok = None;
                for i in 1..i64::MAX {
                    match ca
                        .save_checkpoint(&name, Position::new(i + 1, i), Some(&held))
                        .await
                    {
                        Ok(()) => last_ok = Some(Position::new(i + 1, i)),
                        Err(StoreError::LeaseLost { .. }) => return last_ok,
                        Err(e) => panic!("save: {e}"),
                    }
                }
                last_ok
            })
        };
        let taken = loop {
            if let Some(lease) = cb.acquire(&name, "new", ttl).await.expect("acquire") {
                break lease;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let seen = cb.load_checkpoint(&name).await.expect("load");
        let last_ok = saver.await.expect("joined");
        assert_eq!(
            seen, last_ok,
            "round {round}: the successor (epoch {}) saw every accepted save and no later one",
            taken.epoch
        );
    }
}
