//! The `Membership` of the PostgreSQL backend: the generic suite, and many workers of one set
//! joining at once from two nodes.

mod common;

use common::TestDb;
use futures::future::join_all;
use orisun_store::testsuite::membership as suite;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_join_heartbeat_and_leave() {
    let db = TestDb::create().await;
    suite::members_join_heartbeat_and_leave(db.store().await.membership()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_members_expire() {
    let db = TestDb::create().await;
    suite::silent_members_expire(db.store().await.membership()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_is_refused() {
    let db = TestDb::create().await;
    suite::bad_configuration_is_refused(db.store().await.membership()).await;
}

/// Twenty workers on two nodes join one new set at once: the set is created once, every join
/// bumps the generation exactly once, and every worker is listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_joins_count_once_each() {
    let db = TestDb::create().await;
    let (a, b) = (db.store().await.membership(), db.store().await.membership());
    let ttl = Duration::from_secs(10);
    let joins = (0..20).map(|i| {
        let m = if i % 2 == 0 { a.clone() } else { b.clone() };
        async move { m.heartbeat("race", &format!("w{i:02}"), 6, &[], ttl).await }
    });
    for result in join_all(joins).await {
        result.expect("join");
    }
    let view = a.view("race").await.expect("view").expect("exists");
    assert_eq!(view.members.len(), 20);
    assert_eq!(view.generation, 20, "one generation per join");
    assert_eq!(a.sets().await.expect("sets"), ["race"]);
}
