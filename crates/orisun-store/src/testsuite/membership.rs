//! The membership suite: generic tests every [`Membership`] implementation runs (call each
//! with a fresh instance; they use real time with short TTLs so that database clocks work too).

use crate::{Membership, StoreError};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", Uuid::new_v4().simple())
}

/// Joining creates the set and bumps the generation; a heartbeat that changes nothing keeps
/// it; members are listed in order with what they hold; leaving bumps it again.
pub async fn members_join_heartbeat_and_leave(m: Arc<dyn Membership>) {
    let set = unique("set");
    let ttl = Duration::from_secs(5);
    let first = m.heartbeat(&set, "b", 4, &[], ttl).await.expect("join b");
    assert_eq!(first.partitions, 4);
    assert_eq!(first.members.len(), 1);
    let joined = m.heartbeat(&set, "a", 4, &[], ttl).await.expect("join a");
    assert!(
        joined.generation > first.generation,
        "a join bumps the generation"
    );
    let again = m
        .heartbeat(&set, "b", 4, &[0, 2], ttl)
        .await
        .expect("heartbeat b");
    assert_eq!(again.generation, joined.generation, "a heartbeat does not");
    let names: Vec<_> = again.members.iter().map(|r| r.worker.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(again.members[1].held, [0, 2]);
    assert!(again.members[1].expires_in <= ttl);
    m.leave(&set, "a").await.expect("leave");
    let view = m.view(&set).await.expect("view").expect("exists");
    assert!(
        view.generation > again.generation,
        "a leave bumps the generation"
    );
    assert_eq!(view.members.len(), 1);
    assert!(m.sets().await.expect("sets").contains(&set));
    assert!(m.view(&unique("none")).await.expect("view").is_none());
}

/// A member that stops heartbeating is gone after its TTL, and the generation moves.
pub async fn silent_members_expire(m: Arc<dyn Membership>) {
    let set = unique("set");
    let short = Duration::from_millis(800);
    m.heartbeat(&set, "quiet", 2, &[0, 1], short)
        .await
        .expect("join quiet");
    let both = m
        .heartbeat(&set, "alive", 2, &[], Duration::from_secs(5))
        .await
        .expect("join alive");
    assert_eq!(both.members.len(), 2);
    tokio::time::sleep(short + Duration::from_millis(300)).await;
    let view = m.view(&set).await.expect("view").expect("exists");
    assert_eq!(view.members.len(), 1, "an expired member is not listed");
    let after = m
        .heartbeat(&set, "alive", 2, &[], Duration::from_secs(5))
        .await
        .expect("heartbeat");
    assert_eq!(after.members.len(), 1);
    assert!(
        after.generation > both.generation,
        "expiry bumps the generation"
    );
}

/// A worker with another partition count, or an empty set name, is refused and changes
/// nothing.
pub async fn bad_configuration_is_refused(m: Arc<dyn Membership>) {
    let set = unique("set");
    let ttl = Duration::from_secs(5);
    let view = m.heartbeat(&set, "a", 8, &[], ttl).await.expect("join");
    match m.heartbeat(&set, "b", 4, &[], ttl).await {
        Err(StoreError::Invalid(i)) => {
            assert_eq!(i.field, "partitions");
            assert!(i.reason.contains("has 8 partitions"), "{}", i.reason);
        }
        other => panic!("a mismatching count was accepted: {other:?}"),
    }
    let after = m.view(&set).await.expect("view").expect("exists");
    assert_eq!(after.members.len(), 1, "the refused worker did not join");
    assert_eq!(after.generation, view.generation);
    assert_eq!(after.partitions, 8);
    match m.heartbeat("", "a", 8, &[], ttl).await {
        Err(StoreError::Invalid(i)) => assert_eq!(i.field, "replica_set"),
        other => panic!("an empty set name was accepted: {other:?}"),
    }
    assert!(m.heartbeat(&unique("set"), "a", 0, &[], ttl).await.is_err());
}
