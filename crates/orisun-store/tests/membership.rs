//! The membership suite on the process-local membership, and its view of claims.

use orisun_core::Position;
use orisun_store::testsuite::membership as suite;
use orisun_store::{Coordination, LocalCoordination, LocalMembership, Membership};
use std::sync::Arc;
use std::time::Duration;

fn local() -> Arc<dyn Membership> {
    Arc::new(LocalMembership::new())
}

#[tokio::test]
async fn members_join_heartbeat_and_leave() {
    suite::members_join_heartbeat_and_leave(local()).await;
}

#[tokio::test]
async fn silent_members_expire() {
    suite::silent_members_expire(local()).await;
}

#[tokio::test]
async fn bad_configuration_is_refused() {
    suite::bad_configuration_is_refused(local()).await;
}

#[tokio::test]
async fn claims_are_the_coordinations_leases_under_a_prefix() {
    let coordination = Arc::new(LocalCoordination::new());
    let membership = LocalMembership::with_coordination(coordination.clone());
    let ttl = Duration::from_secs(5);
    let lease = coordination
        .acquire("p@s:x/0", "w1", ttl)
        .await
        .expect("acquire")
        .expect("free");
    coordination
        .save_checkpoint("p@s:x/0", Position::new(7, 7), Some(&lease))
        .await
        .expect("save");
    coordination
        .acquire("p@other:x/0", "w2", ttl)
        .await
        .expect("acquire")
        .expect("free");
    let claims = membership.claims("p@s:").await.expect("claims");
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].holder, "w1");
    assert!(claims[0].live);
    assert_eq!(claims[0].checkpoint, Some(Position::new(7, 7)));
}
