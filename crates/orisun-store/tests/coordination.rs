//! The coordination suite and the lease keeper, on the process-local coordinator.

use orisun_store::testsuite::{coordination as suite, FlakyCoordination};
use orisun_store::{
    keep_lease, keep_lease_with_validity, Coordination, LeaseLoss, LeaseValidity, LocalCoordination,
};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

#[tokio::test]
async fn local_leases() {
    suite::leases_elect_one_holder(Arc::new(LocalCoordination::new())).await;
}

#[tokio::test]
async fn local_checkpoints() {
    suite::fenced_checkpoints_reject_old_holders(Arc::new(LocalCoordination::new())).await;
}

const TTL: Duration = Duration::from_secs(3);

/// Takes lease `l` for holder `a` and returns it with the instant the request was sent.
async fn take(c: &dyn Coordination) -> (orisun_store::Lease, Instant) {
    let asked = Instant::now();
    let lease = c
        .acquire("l", "a", TTL)
        .await
        .expect("acquire")
        .expect("free");
    (lease, asked)
}

/// While the store answers, the keeper holds the lease far past its TTL and nobody else gets
/// it; it never returns by itself.
#[tokio::test(start_paused = true)]
async fn a_kept_lease_outlives_its_ttl() {
    let c = LocalCoordination::new();
    let (lease, asked) = take(&c).await;
    let kept = tokio::time::timeout(TTL * 10, keep_lease(&c, &lease, TTL, asked)).await;
    assert!(kept.is_err(), "the keeper returned: {kept:?}");
    assert!(c.acquire("l", "b", TTL).await.expect("acquire").is_none());
    assert!(c.holds_lease(&lease), "still held under the same epoch");
}

/// The validity a keeper publishes stays current while it renews, and lapses one TTL after the
/// last renewal was sent when the keeper cannot run (a stopped process), before the keeper has
/// noticed anything: work checking it stops in time.
#[tokio::test(start_paused = true)]
async fn validity_follows_renewals_and_lapses_without_them() {
    let c = Arc::new(LocalCoordination::new());
    let (lease, asked) = take(&*c).await;
    let validity = LeaseValidity::new(asked);
    let keeper = {
        let (c, lease, validity) = (c.clone(), lease.clone(), validity.clone());
        tokio::spawn(
            async move { keep_lease_with_validity(&*c, &lease, TTL, asked, &validity).await },
        )
    };
    tokio::time::sleep(TTL * 3).await;
    assert!(validity.is_valid(), "renewed while the keeper runs");
    keeper.abort();
    tokio::time::sleep(TTL / 2).await;
    assert!(
        validity.is_valid(),
        "still within a TTL of the last renewal"
    );
    tokio::time::sleep(TTL).await;
    assert!(!validity.is_valid(), "lapsed without renewals");
}

/// A store outage shorter than the TTL is ridden out; a longer one ends the keeper before the
/// lease can have expired in the store.
#[tokio::test(start_paused = true)]
async fn outages_are_ridden_out_until_the_lease_would_expire() {
    let c = Arc::new(FlakyCoordination::new());
    let (lease, asked) = take(&*c).await;
    let keeper = {
        let (c, lease) = (c.clone(), lease.clone());
        tokio::spawn(async move { keep_lease(&*c, &lease, TTL, asked).await })
    };
    c.failing.store(true, Ordering::SeqCst);
    tokio::time::sleep(TTL / 2).await;
    c.failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(TTL * 2).await;
    assert!(!keeper.is_finished(), "a short outage is ridden out");

    c.failing.store(true, Ordering::SeqCst);
    let since = Instant::now();
    let loss = tokio::time::timeout(TTL * 2, keeper)
        .await
        .expect("ends")
        .expect("joined");
    assert!(since.elapsed() <= TTL, "{:?}", since.elapsed());
    assert!(
        matches!(&loss, LeaseLoss::Unrenewable { reason } if reason.contains("database down")),
        "{loss:?}"
    );
}

/// A store that stops answering ends the keeper once the lease would have expired.
#[tokio::test(start_paused = true)]
async fn a_hanging_store_ends_the_keeper_at_expiry() {
    let c = FlakyCoordination::new();
    let (lease, asked) = take(&c).await;
    c.hanging.store(true, Ordering::SeqCst);
    let loss = tokio::time::timeout(TTL * 2, keep_lease(&c, &lease, TTL, asked))
        .await
        .expect("ends");
    assert!(asked.elapsed() <= TTL * 2, "{:?}", asked.elapsed());
    assert!(matches!(loss, LeaseLoss::Unrenewable { .. }), "{loss:?}");
}

/// Another holder taking the lease ends the keeper with `TakenOver`.
#[tokio::test(start_paused = true)]
async fn a_stolen_lease_is_reported() {
    let c = FlakyCoordination::new();
    let (lease, asked) = take(&c).await;
    c.stolen.store(true, Ordering::SeqCst);
    let loss = tokio::time::timeout(TTL, keep_lease(&c, &lease, TTL, asked))
        .await
        .expect("ends within one period");
    assert_eq!(loss, LeaseLoss::TakenOver);
}

/// A keeper that wakes after its lease expired (a paused process) finds it re-taken under a new
/// epoch, reports `Expired` and gives the new lease back at once.
#[tokio::test(start_paused = true)]
async fn a_keeper_that_wakes_too_late_gives_the_lease_back() {
    let c = LocalCoordination::new();
    let (lease, asked) = take(&c).await;
    tokio::time::sleep(TTL * 2).await;
    let loss = keep_lease(&c, &lease, TTL, asked).await;
    assert_eq!(loss, LeaseLoss::Expired);
    let other = c.acquire("l", "b", TTL).await.expect("acquire");
    assert!(
        other.is_some(),
        "given back, so another holder takes it at once"
    );
}
