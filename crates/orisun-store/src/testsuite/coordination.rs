//! The coordination suite: generic tests every [`Coordination`] implementation runs (call
//! each with a fresh instance; they use real time with short TTLs so that database clocks work
//! too).

use crate::{Coordination, StoreError};
use orisun_core::Position;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", Uuid::new_v4().simple())
}

/// One holder at a time; renewal keeps it; expiry hands it over with a higher epoch.
pub async fn leases_elect_one_holder(c: Arc<dyn Coordination>) {
    let name = unique("lease");
    let ttl = Duration::from_millis(1_500);
    let a = c
        .acquire(&name, "a", ttl)
        .await
        .expect("acquire")
        .expect("free");
    assert!(c.acquire(&name, "b", ttl).await.expect("acquire").is_none());
    let renewed = c
        .acquire(&name, "a", ttl)
        .await
        .expect("renew")
        .expect("held");
    assert_eq!(renewed.epoch, a.epoch);
    tokio::time::sleep(ttl + Duration::from_millis(300)).await;
    let b = c
        .acquire(&name, "b", ttl)
        .await
        .expect("acquire")
        .expect("expired");
    assert!(b.epoch > a.epoch, "epoch grows on hand-over");
    assert!(c.acquire(&name, "a", ttl).await.expect("acquire").is_none());
    c.release(&a).await.expect("stale release is a no-op");
    assert!(c.acquire(&name, "a", ttl).await.expect("acquire").is_none());
    c.release(&b).await.expect("release");
    let a2 = c
        .acquire(&name, "a", ttl)
        .await
        .expect("acquire")
        .expect("released");
    assert!(a2.epoch > b.epoch);
}

/// Checkpoints persist, and a fenced save by a superseded holder fails and changes nothing.
pub async fn fenced_checkpoints_reject_old_holders(c: Arc<dyn Coordination>) {
    let name = unique("cp");
    assert_eq!(c.load_checkpoint(&name).await.expect("load"), None);
    c.save_checkpoint(&name, Position::new(1, 0), None)
        .await
        .expect("unfenced save");
    let ttl = Duration::from_millis(1_000);
    let a = c
        .acquire(&name, "a", ttl)
        .await
        .expect("acquire")
        .expect("free");
    c.save_checkpoint(&name, Position::new(3, 2), Some(&a))
        .await
        .expect("fenced save");
    assert_eq!(
        c.load_checkpoint(&name).await.expect("load"),
        Some(Position::new(3, 2))
    );
    tokio::time::sleep(ttl + Duration::from_millis(300)).await;
    let _b = c
        .acquire(&name, "b", ttl)
        .await
        .expect("acquire")
        .expect("expired");
    let err = c
        .save_checkpoint(&name, Position::new(9, 8), Some(&a))
        .await
        .expect_err("superseded");
    assert!(matches!(err, StoreError::LeaseLost { .. }), "{err:?}");
    assert_eq!(
        c.load_checkpoint(&name).await.expect("load"),
        Some(Position::new(3, 2))
    );
}
